"""The README's example is a REPL session: it runs, and the REPL prints what it shows."""

import doctest
import re
from pathlib import Path


def test_readme_example_is_what_a_repl_prints():
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    session = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    test = doctest.DocTestParser().get_doctest(session, {}, "README", "README.md", 0)
    assert len(test.examples) >= 10
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
