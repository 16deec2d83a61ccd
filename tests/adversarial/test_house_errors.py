"""Every validation failure in the library is a house error: no bare `raise ValueError` left."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_bare_value_errors_in_the_library():
    bare = []
    for pkg in ("condprob", "crf", "tpp", "diagrams"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and \
                        getattr(node.exc.func, "id", None) in ("ValueError", "KeyError",
                                                               "IndexError"):
                    bare.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bare, f"raise a condprob.errors class instead: {bare}"
