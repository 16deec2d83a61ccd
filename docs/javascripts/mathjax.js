// One delimiter configuration for every page: Markdown pages and docstrings (arithmatex writes
// \( \) and \[ \]) and notebooks (whose Markdown cells keep $ $ and $$ $$). MathJax itself is
// shipped with the site (docs/hooks/maths.py) and typesets each page once it has loaded; code
// and preformatted text are skipped (MathJax's default skipHtmlTags), and so are the notebooks'
// hidden copies of their code cells (for the copy button).
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true
  },
  options: {
    ignoreHtmlClass: "clipboard-copy-txt"
  }
};
