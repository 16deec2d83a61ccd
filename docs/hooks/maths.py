"""MkDocs hook: ships MathJax with the site, so formulas typeset without network.

MathJax 3 comes from the `django-static-mathjax` package (the official build as plain static files,
installed by the `docs` extra; nothing of Django is used). After each build the parts the pages use
are copied to `javascripts/mathjax/`: the TeX-to-CommonHTML bundle (with its menu), the TeX
extensions it loads on demand and its fonts. `docs/javascripts/mathjax.js` holds the one delimiter configuration
for Markdown pages, docstrings and notebooks.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import mathjax

SOURCE = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
PARTS = ("tex-chtml.js", "input/tex/extensions", "output/chtml/fonts/woff-v2")


def on_post_build(config) -> None:
    target = Path(config["site_dir"]) / "javascripts" / "mathjax"
    for part in PARTS:
        src, dst = SOURCE / part, target / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)
