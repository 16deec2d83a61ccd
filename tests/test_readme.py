"""The README's example runs and gives the figures it states."""

import re
from pathlib import Path


def test_readme_example_runs():
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)
    cp, F = ns["cp"], ns["F"]
    assert (ns["prior"] >> ns["sensitivity"]).prob("pos") == F(117, 2000)
    assert cp.invert(ns["sensitivity"], ns["prior"]).at("pos").prob("ill") == F(2, 13)
