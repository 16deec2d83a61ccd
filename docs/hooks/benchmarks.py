"""MkDocs hook: the "Benchmarks" page, generated at build time from the committed tables.

It shows `benchmarks/RESULTS.md` (written by `condprob bench`) or, before a full run, every table
in `benchmarks/results/`, after a short text on how to reproduce them. Markdown links in the
tables are reduced to their text, since their targets are outside the site.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"(?<!!)\[([^\]]+)\]\([^)]*\)")

INTRO = """# Benchmarks

To reproduce, run

```bash
make bench
```

which creates each peer library's own virtual environment under `.peers/`, then runs
`condprob bench`: every `benchmarks/bench_*.py` writes one table per area into
`benchmarks/results/`, and they are collected into `benchmarks/RESULTS.md`. The figures below are
the ones committed with this version of the code. The Triton kernels need a CUDA GPU: there,
`python -m benchmarks.gpu_check OUTDIR` checks each against its torch twin and times both (one
table); no GPU table has been committed yet.

"""


def page() -> str:
    """The page's markdown: the intro, then the latest results."""
    combined = ROOT / "benchmarks" / "RESULTS.md"
    tables = sorted((ROOT / "benchmarks" / "results").glob("*.md"))
    if combined.exists():
        body = combined.read_text()
        body = re.sub(r"^# .*\n", "", body, count=1)
    elif tables:
        body = "\n\n".join(t.read_text() for t in tables)
    else:
        body = "No benchmark results are recorded yet."
    return INTRO + LINK.sub(r"\1", body)


def on_files(files: Files, config) -> Files:
    files.append(File.generated(config, "benchmarks.md", content=page()))
    return files
