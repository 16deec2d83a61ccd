"""`crf`: built on the condprob core (filled by its own issue)."""

import condprob  # noqa: F401  (the packages stand on the core, never the reverse)
