"""MkDocs hook: a page whose text would lose notation to the HTML parser fails the strict build.

Markdown passes `<...>` through as raw HTML, so a docstring or page that writes a pairing such as
`<id, kernel>` or a prefix such as `x<t` without code or maths markup shows nothing of it in the
browser (the browser reads an element named `id,`). Every start tag of each rendered page is
checked against the element names of HTML and SVG (and the placeholder `autoref` that the
autorefs plugin resolves later); any other (custom elements, whose names hold a
hyphen, aside) is reported as a warning naming the page and the text, which `--strict` turns into
a failed build. Write such notation as code (backticks) or maths, or escape `<` as `&lt;`.
"""

from __future__ import annotations

import logging
from html.parser import HTMLParser

log = logging.getLogger("mkdocs.hooks.notation")

HTML = """a abbr address area article aside audio b base bdi bdo blockquote body br button canvas
caption cite code col colgroup data datalist dd del details dfn dialog div dl dt em embed fieldset
figcaption figure footer form h1 h2 h3 h4 h5 h6 head header hgroup hr html i iframe img input ins
kbd label legend li link main map mark menu meta meter nav noscript object ol optgroup option
output p param picture pre progress q rp rt ruby s samp script search section select slot small
source span strong style sub summary sup table tbody td template textarea tfoot th thead time
title tr track u ul var video wbr math
autoref"""
SVG = """svg g defs symbol use path rect circle ellipse line polyline polygon text tspan textpath
marker lineargradient radialgradient stop clippath mask pattern image title desc metadata style
filter foreignobject"""
KNOWN = frozenset((HTML + " " + SVG).split())


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.unknown: list[str] = []

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag not in KNOWN and "-" not in tag:
            self.unknown.append(self.get_starttag_text() or tag)


def unknown_tags(html: str) -> list[str]:
    """The start tags in `html` that are no HTML or SVG element: notation read as markup."""
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return parser.unknown


def on_page_content(html: str, page, config, files) -> str:
    for tag in unknown_tags(html):
        log.warning("%s: %r would be read as an HTML tag and vanish; write it as code or maths "
                    "(or escape < as &lt;)", page.file.src_uri, tag)
    return html
