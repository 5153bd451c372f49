"""A small accessibility smoke check of server-rendered HTML and of the stylesheet's palette.

Not a full WCAG audit: it catches the mistakes a template change makes most often (an input without
a label, a table header without a scope, an image without alt text, a page without a language or an
``h1``) and computes the WCAG 2.x contrast ratio of the colour pairs the stylesheet uses for text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

LABELLED_INPUT_TYPES_EXEMPT = {"hidden", "submit", "button", "reset", "image"}


@dataclass
class _Element:
    tag: str
    attrs: dict[str, str]
    text: list[str] = field(default_factory=list)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[_Element] = []
        self.open: list[_Element] = []
        self.html_lang: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = _Element(tag, {k: v or "" for k, v in attrs})
        if tag == "html":
            self.html_lang = element.attrs.get("lang")
        self.elements.append(element)
        if tag not in {"input", "img", "meta", "link", "br", "hr", "col", "source"}:
            self.open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.open) - 1, -1, -1):
            if self.open[index].tag == tag:
                del self.open[index:]
                break

    def handle_data(self, data: str) -> None:
        for element in self.open:
            element.text.append(data)


def audit_html(html: str) -> list[str]:
    """Problems found in one page (empty when it passes)."""
    parser = _Collector()
    parser.feed(html)
    elements = parser.elements
    problems: list[str] = []
    if not parser.html_lang:
        problems.append("<html> has no lang attribute")
    h1 = [e for e in elements if e.tag == "h1"]
    if len(h1) != 1:
        problems.append(f"expected exactly one <h1>, found {len(h1)}")
    label_for = {e.attrs.get("for") for e in elements if e.tag == "label"}
    for e in elements:
        if e.tag == "img" and not e.attrs.get("alt", "").strip():
            problems.append(f"<img src={e.attrs.get('src')!r}> has no alt text")
        if e.tag in {"input", "select", "textarea"}:
            if e.attrs.get("type", "text") in LABELLED_INPUT_TYPES_EXEMPT:
                continue
            named = e.attrs.get("aria-label") or e.attrs.get("aria-labelledby")
            if not named and (not e.attrs.get("id") or e.attrs["id"] not in label_for):
                problems.append(f"<{e.tag} name={e.attrs.get('name')!r}> has no label")
        if e.tag == "th" and e.attrs.get("scope") not in {"col", "row"}:
            problems.append(f"<th> {''.join(e.text).strip()[:40]!r} has no scope")
        if e.tag == "button" and not "".join(e.text).strip() and not e.attrs.get("aria-label"):
            problems.append("<button> without text")
        if e.tag == "a" and "href" in e.attrs and not "".join(e.text).strip():
            problems.append(f"link to {e.attrs['href']!r} has no text")
    return problems


_VAR_RE = re.compile(r"--([a-z0-9-]+)\s*:\s*(#[0-9a-fA-F]{6})\s*;")


def css_palette(css: str) -> dict[str, str]:
    """The ``--name: #rrggbb;`` custom properties of a stylesheet."""
    return {name: value.lower() for name, value in _VAR_RE.findall(css)}


def relative_luminance(hex_colour: str) -> float:
    """WCAG 2.x relative luminance of ``#rrggbb`` (sRGB channels linearised)."""
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(a: str, b: str) -> float:
    """(L_lighter + 0.05) / (L_darker + 0.05); 21 for black on white, 1 for equal colours."""
    la, lb = relative_luminance(a), relative_luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)
