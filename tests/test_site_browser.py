"""The built docs site as a reader sees it, in a real browser (headless Chromium).

Every page is served from a local server with the network blocked and loaded once MathJax has
typeset it; a page fails on raw TeX left in its visible text, a formula MathJax could not parse,
an error in the browser console (a script that throws, a file that fails to load), an image that
did not load, a request to anything but the local site, or notation a docstring lost as an HTML
tag (`<id, kernel>` read as an element). The 404 page is checked at a nested address, and one page
from disk (file://). Screenshots of a few key pages, and the per-page report, are saved to
$CONDPROB_SCREENSHOTS (default: a folder in the system's temporary directory).

The site is $CONDPROB_SITE when set (`make test` passes the one `make docs` just built), else it
is built here. Chromium comes from the Debian packages `chromium` and `chromium-driver` (`.ci/run`
installs them); without them the test is skipped, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(os.environ.get("CONDPROB_SCREENSHOTS",
                                  Path(tempfile.gettempdir()) / "condprob-site-screenshots"))
KEY_PAGES = ("index.html", "concepts/kernels.html", "api/conditioning.html", "benchmarks.html",
             "notebooks/01_exact_conditioning_and_laws.html")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "--window-size=1280,1000")

# Runs in the page once MathJax (when the page loaded it) has typeset it; returns what it found.
CHECK = r"""
const done = arguments[arguments.length - 1];
function inspect() {
  const skip = new Set(["PRE", "CODE", "SCRIPT", "STYLE", "TEXTAREA", "NOSCRIPT", "MJX-CONTAINER"]);
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      const parent = node.parentElement;
      if (!parent || !parent.checkVisibility()) return NodeFilter.FILTER_REJECT;
      for (let el = parent; el; el = el.parentElement) {
        if (skip.has(el.tagName.toUpperCase())) return NodeFilter.FILTER_REJECT;
      }
      return NodeFilter.FILTER_ACCEPT;
    }
  });
  let text = "";
  while (walker.nextNode()) text += walker.currentNode.nodeValue;
  const rawTex = [];
  const tex = /\\[A-Za-z]+|\\[()[\]]|\$[^$\n]{1,120}\$/g;
  for (let m; (m = tex.exec(text)) && rawTex.length < 5;) {
    rawTex.push(text.slice(Math.max(0, m.index - 30), m.index + 40));
  }
  const origin = location.protocol === "file:" ? "file:" : location.origin;
  return {
    rawTex,
    mathErrors: Array.from(document.querySelectorAll("mjx-merror"), e => e.textContent),
    lostNotation: Array.from(document.body.querySelectorAll("*"))
      .filter(e => e instanceof HTMLUnknownElement).map(e => e.outerHTML.slice(0, 80)),
    brokenImages: Array.from(document.images)
      .filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute("src")),
    outside: performance.getEntriesByType("resource").map(r => r.name)
      .filter(name => !name.startsWith(origin)),
    formulas: document.querySelectorAll("mjx-container").length,
    images: document.images.length,
    heading: (document.querySelector("h1") || {textContent: ""}).textContent,
  };
}
if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
  MathJax.startup.promise.then(() => done(inspect()), e => done({failed: String(e)}));
} else {
  done(inspect());
}
"""


def problems(driver, url: str) -> tuple[list[str], dict]:
    """Load `url`; return what is wrong with it (empty when nothing) and what the page holds."""
    driver.get(url)
    found = driver.execute_async_script(CHECK)
    console = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    if "failed" in found:
        return [f"MathJax failed: {found['failed']}"] + console, found
    wrong = [f"raw TeX: {s!r}" for s in found["rawTex"]]
    wrong += [f"formula MathJax could not parse: {s!r}" for s in found["mathErrors"]]
    wrong += [f"notation lost as an HTML tag: {s!r}" for s in found["lostNotation"]]
    wrong += [f"image did not load: {s}" for s in found["brokenImages"]]
    wrong += [f"request outside the site: {s}" for s in found["outside"]]
    wrong += [f"console error: {s}" for s in console]
    return wrong, found


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the site as a host would: a missing file gets the site's 404 page."""

    def log_message(self, *args) -> None:
        pass

    def send_error(self, code, message=None, explain=None) -> None:
        page = Path(self.directory) / "404.html"
        if code != 404 or not page.exists():
            return super().send_error(code, message, explain)
        body = page.read_bytes()
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def serve(site: Path) -> Iterator[str]:
    """A local HTTP server of `site` at the root of its address; yields the base URL."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    given = os.environ.get("CONDPROB_SITE")
    if given:
        return Path(given).resolve()
    out = tmp_path_factory.mktemp("site")
    mkdocs = Path(sys.executable).with_name("mkdocs")
    subprocess.run([str(mkdocs), "build", "--strict", "--quiet", "--site-dir", str(out)],
                   cwd=ROOT, check=True, timeout=600,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI"):
            pytest.fail("CI needs chromium and chromium-driver (installed by .ci/run)")
        pytest.skip("needs the Debian packages chromium and chromium-driver (see README)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def pages(site: Path) -> list[str]:
    return sorted(str(p.relative_to(site)) for p in site.rglob("*.html"))


def test_every_page_renders_as_written(site: Path, browser) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    failures, report = {}, []
    with serve(site) as base:
        for page in pages(site):
            wrong, found = problems(browser, base + page)
            if wrong:
                failures[page] = wrong
            report.append(f"{page}: {found.get('formulas', 0)} formulas typeset, "
                          f"{found.get('images', 0)} images, "
                          + ("; ".join(wrong) if wrong else "ok"))
            if page in KEY_PAGES:
                browser.save_screenshot(str(SCREENSHOTS / (page.replace("/", "_") + ".png")))
        missing = base + "concepts/no-such-page.html"
        wrong, found = problems(browser, missing)
        wrong = [w for w in wrong if not w.startswith(f"console error: {missing} ")]
        report.append(f"404 page at a nested address: {'; '.join(wrong) or 'ok'}")
        if wrong or "404" not in found["heading"]:
            failures["404 page at a nested address"] = wrong or [f"heading {found['heading']!r}"]
    wrong, found = problems(browser, (site / "concepts" / "kernels.html").as_uri())
    report.append(f"concepts/kernels.html from disk: {found.get('formulas', 0)} formulas typeset, "
                  + ("; ".join(wrong) or "ok"))
    if wrong:
        failures["concepts/kernels.html from disk"] = wrong
    (SCREENSHOTS / "report.txt").write_text("\n".join(report) + "\n")
    print("\n".join(report))
    print(f"screenshots and report in {SCREENSHOTS}")
    assert not failures, "\n".join(f"{page}: {w}" for page, ws in failures.items() for w in ws)
    assert len(report) > 30


def test_a_broken_formula_figure_or_docstring_fails(site: Path, browser, tmp_path: Path) -> None:
    broken = tmp_path / "site"
    shutil.copytree(site, broken)
    kernels = broken / "concepts" / "kernels.html"
    html = kernels.read_text()
    assert 'src="../figures/counit.svg"' in html
    html = html.replace('src="../figures/counit.svg"', 'src="../figures/no-such-figure.svg"')
    kernels.write_text(html.replace("</article>", '<p class="arithmatex">\\(x^1^2\\)</p>'
                                    "</article>", 1))
    api = broken / "api" / "conditioning.html"
    api.write_text(api.read_text().replace(
        "</article>", "<p>joint = marginal &gt;&gt; <id, kernel></p></article>", 1))
    with serve(broken) as base:
        found = "\n".join(problems(browser, base + "concepts/kernels.html")[0])
        assert "image did not load: ../figures/no-such-figure.svg" in found
        assert "formula MathJax could not parse" in found
        assert "console error" in found and "no-such-figure.svg" in found
        found = "\n".join(problems(browser, base + "api/conditioning.html")[0])
        assert "notation lost as an HTML tag: '<id, kernel" in found
    (broken / "javascripts" / "mathjax" / "tex-chtml.js").unlink()
    with serve(broken) as base:  # a new address, so the browser has nothing of it cached
        found = "\n".join(problems(browser, base + "concepts/disintegration.html")[0])
        assert "raw TeX" in found and "console error" in found and "tex-chtml.js" in found
