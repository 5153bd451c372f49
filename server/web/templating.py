"""Templates and what they need: number and date formatting, the render helper, error pages.

Every page goes through `render`, which adds the user, a lazily created CSRF nonce for forms (its
cookie is set on the same response) and the security headers (a strict same-origin CSP: the pages
load nothing from elsewhere).
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from sqlalchemy.exc import SQLAlchemyError

from server.clock import iso, utcnow
from server.core.deps import get_state
from server.core.principal import Principal
from server.core.text import visible
from server.leaderboard.baseline_runs import Spread
from server.leaderboard.rows import is_web_url
from server.operations import pause
from server.phases import service as phases
from server.phases.service import PhaseView
from server.scoring.notes import readable
from server.scoring.results import Estimate, Interval
from server.web import queries
from server.web.guides import GUIDES
from server.web.session import CSRF_FIELD, SessionSigner

HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def number(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "–"
    return f"{value:.{digits}f}" if value == value and abs(value) != float("inf") else "–"


def _interval(entry: Any) -> Interval:
    """An `Interval`, an `Estimate` or a report entry (``{"value", "ci95"}``) as a page draws it."""
    if isinstance(entry, Interval):
        return entry
    return (entry if isinstance(entry, Estimate) else Estimate.read(entry)).shown


def interval(entry: Any, digits: int = 3) -> str:
    """``0.731 [0.702, 0.760]`` from a report entry, an estimate or an `Interval`; dashes for
    unknown parts."""
    item = _interval(entry)
    text = number(item.value, digits)
    if item.lo is not None and item.hi is not None:
        text += f" [{number(item.lo, digits)}, {number(item.hi, digits)}]"
    return text


def interval_cell(entry: Any, digits: int = 3) -> Markup:
    """The value, then its CI on a second, smaller line (keeps the wide leaderboard narrow)."""
    item = _interval(entry)
    value = escape(number(item.value, digits))
    if item.lo is None or item.hi is None:
        return Markup(value)
    ci = escape(f"[{number(item.lo, digits)}, {number(item.hi, digits)}]")
    return Markup(f'{value} <span class="ci">{ci}</span>')


def spread_cell(entry: Spread, digits: int = 3) -> Markup:
    """A figure over a reference model's runs: the mean ± the sample SD, then how many runs."""
    sd = f" ± {number(entry.sd, digits)}" if entry.sd is not None else ""
    runs = escape(f"n = {entry.n}")
    return Markup(f'{escape(number(entry.mean, digits) + sd)} <span class="ci">{runs}</span>')


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "–"


def moment(value: datetime | None) -> Markup:
    """A timestamp as ``<time>``: the minute shown, the value (as the API gives it) in ``datetime``."""
    if value is None:
        return Markup("–")
    return Markup(f'<time datetime="{escape(iso(value))}">{escape(when(value))}</time>')


def figure(value: Any, key: str) -> Markup:
    """A runtime figure (``*_s`` seconds, ``*_bytes`` bytes) in a unit a reader takes in; the value as
    the API gives it in ``data-value``, so a page can be checked against the API."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Markup("–")
    text = f"{value / 1024**2:.0f} MiB" if key.endswith("_bytes") else f"{value:.1f} s"
    return Markup(f'<data value="{escape(json.dumps(value))}">{escape(text)}</data>')


def day(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value is not None else "–"


def short_digest(digest: str | None) -> str:
    if not digest:
        return "–"
    return digest.split(":", 1)[-1][:12]


def sort_value(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def shown(value: Any) -> Any:
    """Every ``{{ ... }}`` of every page: plain text with its invisible and direction-changing
    characters escaped (`server.core.text.visible`), so a name stored before issue 19 cannot
    reverse or hide a row. Markup (rendered Markdown, formatted cells) is the server's own: as is."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value, lines=True)
    return value


def _build_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))
    env = templates.env
    env.finalize = shown  # read when a template is compiled: set before the first one loads
    env.filters.update(
        number=number, interval=interval, interval_cell=interval_cell, when=when, day=day, moment=moment,
        figure=figure, spread_cell=spread_cell, note=lambda text: readable(str(text)).text,
        short_digest=short_digest, sort_value=sort_value, iso=lambda v: iso(v) if v is not None else "",
        tojson_pretty=lambda v: json.dumps(v, indent=2, sort_keys=True, allow_nan=True),
    )  # fmt: skip
    env.globals.update(endpoints=queries.ENDPOINTS, guides=GUIDES, now_utc=utcnow)
    env.tests["web_url"] = is_web_url
    return templates


_templates_lock = threading.Lock()
_templates: list[Jinja2Templates] = []


def templates() -> Jinja2Templates:
    """The template environment, built on first use (no work at import)."""
    with _templates_lock:
        if not _templates:
            _templates.append(_build_templates())
        return _templates[0]


def current_phase(request: Request) -> PhaseView | None:
    """The phase every page names in its header (None when the database cannot say)."""
    state = get_state(request)
    try:
        with state.db.session() as session:
            return phases.shown(session, state.settings)
    except SQLAlchemyError:
        return None


def current_pause(request: Request) -> pause.PauseState:
    """The maintenance pause every page shows as a banner (none when the database cannot say)."""
    try:
        with get_state(request).db.session() as session:
            return pause.current(session)
    except SQLAlchemyError:
        return pause.NOT_PAUSED


def render(
    request: Request,
    signer: SessionSigner,
    user: Principal | None,
    name: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """Render a page; a form on it gets a CSRF nonce whose cookie is set on this response."""
    full = {
        "user": user, "csrf_token": lambda: signer.csrf_for_form(request), "csrf_field": CSRF_FIELD,
        "current_phase": current_phase(request), "pause": current_pause(request),
    }  # fmt: skip
    full.update(context)
    response = templates().TemplateResponse(
        request, name, full, status_code=status_code, headers=HTML_HEADERS
    )
    signer.attach_csrf(request, response)
    return response


def error_page(
    request: Request,
    signer: SessionSigner,
    user: Principal | None,
    status_code: int,
    title: str,
    message: str,
) -> HTMLResponse:
    context = {"title": title, "message": message}
    return render(request, signer, user, "error.html", context, status_code=status_code)


def not_found(request: Request, signer: SessionSigner, user: Principal | None, what: str) -> HTMLResponse:
    return error_page(request, signer, user, 404, "Not found", f"{what} was not found.")


def staff_only(request: Request, signer: SessionSigner, user: Principal | None) -> HTMLResponse:
    message = "The review console needs the maintainer or admin role."
    return error_page(request, signer, user, 403, "Maintainers only", message)
