"""The documentation's examples run and show what they claim; the strict build catches bad links.

Every `>>>` example in docs/ is a doctest, every ```python block is executed (and its `test_*`
functions called), and a deliberately broken cross-reference must fail `mkdocs build --strict`.
"""

import doctest
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
MKDOCS = Path(sys.executable).with_name("mkdocs")


def _id(page: Path) -> str:
    return str(page.relative_to(DOCS))


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_doctests(page):
    result = doctest.testfile(str(page), module_relative=False, optionflags=FLAGS,
                              verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {_id(page)}"


PY_PAGES = [p for p in PAGES if "```python" in p.read_text()]


@pytest.mark.parametrize("page", PY_PAGES, ids=_id)
def test_python_blocks(page):
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
    ns: dict = {"__name__": f"docs_{page.stem}"}
    for block in blocks:
        exec(compile(block, str(page), "exec"), ns)
    for name, fn in list(ns.items()):
        if name.startswith("test_") and callable(fn):
            fn()


def _strict_build(config_dir: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(MKDOCS), "build", "--strict", "--site-dir", str(site)],
                          cwd=config_dir, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not MKDOCS.exists(), reason="mkdocs is in the docs extra")
def test_strict_build_rejects_broken_reference(tmp_path):
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(DOCS, tmp_path / "docs")
    page = tmp_path / "docs" / "index.md"
    page.write_text(page.read_text() + "\nSee [`nothing`][condprob.no_such_object].\n")
    out = _strict_build(tmp_path, tmp_path / "site")
    assert out.returncode != 0
    assert "condprob.no_such_object" in out.stderr + out.stdout


def test_notation_guard_finds_markup_that_would_swallow_text():
    spec = importlib.util.spec_from_file_location("notation_hook", DOCS / "hooks" / "notation.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    html = ('<p>joint = marginal &gt;&gt; <id, kernel> and <code>&lt;f, g&gt;</code>, x<t), '
            '<a href="x.html">a link</a>, <svg><path d="M0 0"/></svg> <mjx-container/></p>')
    found = hook.unknown_tags(html)
    assert len(found) == 2 and found[0] == "<id, kernel>" and found[1].startswith("<t), <a href")
