"""The web pages: leaderboard, submission report, team page, review console, guides, login, the
data-use agreement.

Server-rendered (Jinja2), readable without JavaScript; `static/sort.js` only adds column sorting.
Everything is served from this origin (no CDN). Plots are SVG images rendered here by `plots`.

Access: the leaderboard and the guides are public; a report is visible to its team and to
maintainers (anyone else gets 404, as the API does); the review console needs the maintainer or
admin role. Login is a pasted API token turned into a signed session cookie (`session`); every form
post carries a CSRF token. The pages call the same services as the API, so the rules live once.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.agreements import service as agreements
from server.agreements.document import Agreement
from server.clock import iso, utcnow
from server.core.deps import (
    DB_INT_MAX,
    DatabaseDep,
    IdPath,
    SessionDep,
    SettingsDep,
    StateDep,
    get_state,
)
from server.core.errors import AgreementOutdated, CsawmError, NotFound
from server.core.principal import Principal, authenticate
from server.core.security import hash_token
from server.core.settings import Settings
from server.core.state import AppState
from server.core.text import visible
from server.disclosure.disclose import ViewCache, board_figures_note, disclose, viewer_of
from server.leaderboard import history, ordering, snapshots
from server.leaderboard import service as board_service
from server.leaderboard.cache import BoardCache
from server.leaderboard.pending import pending_baselines
from server.leaderboard.references import board_references
from server.leaderboard.rows import BoardRow, withheld
from server.models import Submission, Team
from server.notifications import outbox
from server.notifications.router import delivery_out
from server.operations import budgets
from server.operations import status as ops_status
from server.operations.router import status_out
from server.phases import service as phases
from server.phases.service import PhaseView
from server.quota import service as quota
from server.registrations import service as registrations
from server.review import flags as review_flags
from server.review import service as review
from server.review.schemas import FlagsOut, ReviewAction
from server.runs.words import NO_REVIEW, REVIEW_WORDS
from server.scoring.results import Estimate, Report
from server.scoring.summary import summary_report
from server.submissions import service as submissions
from server.web import admin, downloads, guides, plots, queries
from server.web.cache import PlotCache, clinical_board, plot_version
from server.web.cache import board as cache_board
from server.web.deps import PlotCacheDep, SignerDep, WebUser
from server.web.registration import open_registrations
from server.web.registration import router as registration_router
from server.web.session import CsrfError, SessionSigner
from server.web.session import revoke as revoke_session
from server.web.templating import error_page, not_found, render, staff_only
from server.worker.loop import Worker
from server.worker_api import accounts as worker_accounts

log = logging.getLogger("csawm.web")

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"style.css": "text/css; charset=utf-8", "sort.js": "text/javascript; charset=utf-8"}
REPORT_PLOTS = ("confusion", "group-amae", "odds-ratios", "agreement", "strata")
CSV_COLUMNS = (
    "rank", "kind", "team", "name", "submission_id", "kendall_tau_b", "kendall_tau_b_ci_low",
    "kendall_tau_b_ci_high", "amae", "amae_ci_low", "amae_ci_high", "amae_unit", "tied_with_leader",
    *(f"{key}_or_q4{part}" for key in queries.ENDPOINTS for part in ("", "_ci_low", "_ci_high")),
    "submitted_at", "image_digest", "tier", "rank_ci_low", "rank_ci_high", "median_rank", "p_first",
    "n_runs", "kendall_tau_b_sd", "amae_sd",
)  # fmt: skip

CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

router = APIRouter(include_in_schema=False)


# -- helpers ---------------------------------------------------------------------------------------


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)


def _safe_next(target: str | None) -> str:
    """Only same-site paths (``/x``), never ``//host`` or a scheme, so login cannot redirect away."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/team"


def csv_text(value: str) -> str:
    """A text cell a spreadsheet will not run: a leading ``= + - @``, tab or carriage return is
    prefixed with ``'`` (OWASP CSV injection). Only text cells pass here; numbers stay numbers.
    Invisible and direction-changing characters are escaped first (`visible`), line breaks too."""
    value = visible(value)
    return "'" + value if value.startswith(CSV_FORMULA_STARTS) else value


def _svg(plot: plots.Plot) -> Response:
    return Response(
        plot.svg,
        media_type="image/svg+xml",
        headers={"Cache-Control": "private, max-age=60", "X-Content-Type-Options": "nosniff"},
    )


# -- static files ----------------------------------------------------------------------------------


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    """The stylesheet and the sorting script; a fixed list, so no path ever reaches the disk."""
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(
        STATIC_DIR / name,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


# -- leaderboard -----------------------------------------------------------------------------------


def _label(row: BoardRow) -> str:
    return f"{row.team} / {row.name}" if row.team else row.name.replace("_", " ")


def _tau_plot(rows: list[BoardRow]) -> plots.Plot:
    points = [plots.TauPoint(_label(row), row.kind, row.tau.value, row.tau.lo, row.tau.hi) for row in rows]
    return plots.tau_plot(points)


def _rank_plot(rows: list[BoardRow]) -> plots.Plot:
    return plots.rank_interval_plot(
        [
            plots.RankPoint(_label(row), s.median_rank, *s.rank_ci95)
            for row in rows
            if (s := row.standing) is not None and s.rank_ci95 is not None and s.median_rank is not None
        ]
    )


def _significance_plot(session: Session, state: AppState, shown: PhaseView) -> plots.Plot:
    found = state.parts.get(BoardCache).board(session, board_references(state), shown).significance
    if found is None:
        return plots.significance_heatmap([], [], 0.05)
    top = found.top(state.settings.significance_top)
    return plots.significance_heatmap(top["names"], top["p_holm"], found.alpha)


PhaseQuery = Annotated[str | None, Query(min_length=1, max_length=64)]
AsOfQuery = Annotated[str | None, Query(min_length=1, max_length=64)]  # the board as it stood then


def _board_as_of(
    session: Session, state: AppState, user: Principal | None, name: str | None, raw: str
) -> tuple[PhaseView, datetime, list[BoardRow]]:
    """The board as it stood at ``?as_of=`` (`server.leaderboard.history`): its phase, instant, rows,
    the rank figures withheld from `user` as the live board's are (`board_figures_note`)."""
    at = history.parse(session, raw)
    shown = history.phase_at(phases.board_phase(session, state.settings, name, at), at)
    alpha = state.settings.significance_alpha
    board = board_service.build_board(
        session, references=board_references(state), phase=shown, alpha=alpha, as_of=at
    )
    return shown, at, withheld(board.rows, board_figures_note(shown, user))


def _board_page_as_of(
    request: Request, session: Session, state: AppState, signer: SessionSigner, user: Principal | None,
    phase: str | None, as_of: str,
) -> HTMLResponse:  # fmt: skip
    try:
        shown, at, rows = _board_as_of(session, state, user, phase, as_of)
    except CsawmError as exc:
        return error_page(request, signer, user, exc.status_code, "No board at that instant", exc.message)
    context = {
        "rows": rows,
        "pending": [],
        "clinical_rows": board_service.build_clinical(
            session, references=board_references(state), phase=shown, as_of=at
        ),
        "board_phase": shown,
        "phase_names": [row.name for row in phases.rows(session)],
        "phase_query": f"?{urlencode({'phase': shown.name, 'as_of': iso(at)})}",
        "as_of": iso(at),
        "alpha": state.settings.significance_alpha,
        "ranked": False,  # the rank plots draw the live board only
    }
    return render(request, signer, user, "leaderboard.html", context)


def _arranged_context(
    session: Session, state: AppState, shown: PhaseView, user: Principal | None, rows: list[BoardRow],
    reference: str | None, group: str | None,
) -> dict[str, Any]:  # fmt: skip
    """The page's order and grouping controls (`server.leaderboard.ordering`): the rows as asked
    for (tier by tier with ``group=tier``), each row's mark under the reference, where each tier's
    heading goes, and the stability table; the order and the table withheld as the API withholds
    them."""
    note = board_figures_note(shown, user)
    arranged = ordering.arrange(rows, reference=reference, group=group, note=note)
    groups = arranged.groups or []
    order = [i for g in groups for i in g.rows] if groups else list(range(len(arranged.rows)))
    headings = {position: g.tier for g in groups for position in g.rows[:1]}
    stability = state.parts.get(BoardCache).board(session, board_references(state), shown).stability
    return {
        "rows": [arranged.rows[i] for i in order],
        "reference_marks": [arranged.marks[i] for i in order] if arranged.marks is not None else None,
        "tier_headings": {order.index(position): tier for position, tier in headings.items()},
        "reference": reference,
        "reference_note": arranged.note,
        "group": group,
        "experts": ordering.EXPERTS,
        "stability": stability.to_json(note) if stability is not None else None,
        "alpha": state.settings.significance_alpha,
    }


@router.get("/", response_class=HTMLResponse)
def leaderboard_page(
    request: Request,
    session: SessionDep,
    state: StateDep,
    signer: SignerDep,
    user: WebUser,
    cache: PlotCacheDep,
    phase: PhaseQuery = None,
    as_of: AsOfQuery = None,
    reference: Annotated[str | None, Query(max_length=64)] = None,
    group: Annotated[str | None, Query(max_length=64)] = None,
    view: Literal["masking", "strata"] = "masking",
) -> HTMLResponse:
    try:
        expert, grouping = ordering.parse_reference(reference), ordering.parse_group(group)
    except ordering.InvalidBoardQuery as exc:
        return error_page(request, signer, user, exc.status_code, "No such board order", exc.message)
    if as_of is not None:
        return _board_page_as_of(request, session, state, signer, user, phase, as_of)
    try:
        shown = phases.board_phase(session, state.settings, phase)
    except NotFound:
        return not_found(request, signer, user, f"Phase {phase!r}")
    version, rows = cache_board(session, state, shown, user)
    plot = cache.get(("board", *version), lambda: _tau_plot(rows))
    query = f"?{urlencode({'phase': shown.name})}" if phase else ""
    context = {
        **_arranged_context(session, state, shown, user, rows, expert, grouping),
        "pending": pending_baselines(session),
        "clinical_rows": clinical_board(session, state, shown),
        "plot_alt": plot.alt,
        "plot_version": plot_version(state, *version),
        "ranked": any(row.standing is not None and row.standing.tier is not None for row in rows),
        "significance_top": state.settings.significance_top,
        "board_phase": shown,
        "phase_names": [row.name for row in phases.rows(session)],
        "phase_query": query,
        # the strata view (`?view=strata`): each model row's strata as its summary shows them
        "strata_view": view == "strata",
        "strata_names": list(dict.fromkeys(k for row in rows for k in row.strata or ())),
        "strata_differences": list(dict.fromkeys(k for row in rows for k in row.strata_differences or ())),
        "strata_query": urlencode({**({"phase": shown.name} if phase else {}), "view": "strata"}),
    }
    return render(request, signer, user, "leaderboard.html", context)


@router.get("/plots/leaderboard-tau.svg")
def leaderboard_plot(
    session: SessionDep, state: StateDep, cache: PlotCacheDep, user: WebUser, phase: PhaseQuery = None
) -> Response:
    version, rows = cache_board(session, state, phases.board_phase(session, state.settings, phase), user)
    return _svg(cache.get(("board", *version), lambda: _tau_plot(rows)))


@router.get("/plots/leaderboard-{name}.svg")
def leaderboard_rank_plot(
    name: Literal["ranks", "significance"],
    session: SessionDep,
    state: StateDep,
    cache: PlotCacheDep,
    user: WebUser,
    phase: PhaseQuery = None,
) -> Response:
    """The rank-interval plot and the significance map of the top rows; 404 where the phase
    withholds rank figures from this viewer (`board_figures_note`)."""
    shown = phases.board_phase(session, state.settings, phase)
    if board_figures_note(shown, user) is not None:
        raise NotFound("plot not found")
    version, rows = cache_board(session, state, shown, user)
    if name == "ranks":
        return _svg(cache.get((name, *version), lambda: _rank_plot(rows)))
    return _svg(cache.get((name, *version), lambda: _significance_plot(session, state, shown)))


def _download_rows(
    session: Session, state: AppState, user: Principal | None, phase: str | None, as_of: str | None
) -> tuple[PhaseView, list[BoardRow], dict[str, str]]:
    """The rows of a download as `user` sees them: the live board's, or with ``as_of`` the board as
    it stood then (400 or 404 as the API answers it)."""
    if as_of is not None:
        shown, at, rows = _board_as_of(session, state, user, phase, as_of)
        return shown, rows, {"as_of": iso(at)}
    shown = phases.board_phase(session, state.settings, phase)
    return shown, cache_board(session, state, shown, user)[1], {}


@router.get("/leaderboard.json")
def leaderboard_json(
    session: SessionDep, state: StateDep, user: WebUser, phase: PhaseQuery = None, as_of: AsOfQuery = None
) -> Response:
    shown, rows, extra = _download_rows(session, state, user, phase, as_of)
    body = {
        "generated_at": iso(utcnow()),
        "phase": shown.name,
        **extra,
        "rows": [row.to_export_json() for row in rows],
    }
    return Response(
        json.dumps(body, allow_nan=False, indent=1),
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="csawm-leaderboard.json"'},
    )


@router.get("/leaderboard.csv")
def leaderboard_csv(
    session: SessionDep,
    state: StateDep,
    user: WebUser,
    phase: PhaseQuery = None,
    as_of: AsOfQuery = None,
    reference: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The board as CSV; with ``reference=expert_k`` in that order with two more columns, the row's
    rank and tau-b under the reference (`server.leaderboard.ordering`; withheld as the API does)."""
    expert = ordering.parse_reference(reference)
    shown, rows, _ = _download_rows(session, state, user, phase, as_of)
    arranged = ordering.arrange(rows, reference=expert, group=None, note=board_figures_note(shown, user))
    rows, marks = arranged.rows, arranged.marks
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *(("reference_rank", "reference_kendall_tau_b") if marks else ())])
    for position, row in enumerate(rows):
        amae = row.amae.shown
        values: list[Any] = [
            row.rank, csv_text(row.kind), csv_text(row.team or ""), csv_text(row.name),
            row.submission_id or "",
            row.tau.value, row.tau.lo, row.tau.hi, amae.value, amae.lo, amae.hi,
            row.amae_unit or "", "" if row.tied_with_leader is None else str(row.tied_with_leader).lower(),
        ]  # fmt: skip
        for key in queries.ENDPOINTS:
            ratio = row.odds_ratios[key].shown
            values += [ratio.value, ratio.lo, ratio.hi]
        values += [row.submitted_at.isoformat() if row.submitted_at else "", csv_text(row.image_digest or "")]
        standing = row.standing
        ranks = standing.rank_ci95 if standing is not None and standing.rank_ci95 else (None, None)
        values += [standing.tier if standing else None, *ranks, standing.median_rank if standing else None]
        values += [standing.p_first if standing else None]
        runs = row.runs  # a reference model of several runs: the figures above are their means
        values += [len(runs.runs), runs.kendall_tau_b.sd, runs.amae.sd] if runs else [None, None, None]
        if marks is not None:
            values += [marks[position].rank, marks[position].value]
        writer.writerow(["" if v is None else v for v in values])
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="csawm-leaderboard.csv"'},
    )


@router.get("/snapshots/{snapshot_id}", response_class=HTMLResponse)
def snapshot_page(
    request: Request,
    snapshot_id: IdPath,
    session: SessionDep,
    state: StateDep,
    signer: SignerDep,
    user: WebUser,
) -> HTMLResponse:
    """The citable page of a frozen board (`server.leaderboard.snapshots`), drawn from its bytes."""
    try:
        info, data = snapshots.one(session, state.settings, snapshot_id)
    except NotFound:
        return not_found(request, signer, user, f"Snapshot {snapshot_id}")
    return render(request, signer, user, "snapshot.html", {"info": info, "frozen": json.loads(data)})


# -- login -----------------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, signer: SignerDep, user: WebUser, next: str | None = None) -> HTMLResponse:
    return render(request, signer, user, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    signer: SignerDep,
    db: DatabaseDep,
    token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/team",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    target = _safe_next(next)
    try:
        signer.check_csrf(request, csrf_token)
    except CsrfError as exc:
        return render(
            request, signer, None, "login.html", {"next": target, "error": str(exc)}, status_code=400
        )
    token = token.strip()
    if not token:
        error = "Paste your API token (it starts with csawm_)."
        return render(request, signer, None, "login.html", {"next": target, "error": error}, status_code=400)
    try:
        with db.session() as session:
            authenticate(session, token)
    except CsawmError as exc:
        error = f"That token was not accepted: {exc.message}."
        return render(request, signer, None, "login.html", {"next": target, "error": error}, status_code=401)
    response = RedirectResponse(target, status_code=303)
    signer.start_session(request, response, hash_token(token))
    return response


@router.post("/logout")
def logout(
    request: Request, signer: SignerDep, db: DatabaseDep, csrf_token: Annotated[str, Form()] = ""
) -> Response:
    try:
        signer.check_csrf(request, csrf_token)
    except CsrfError as exc:
        return error_page(request, signer, None, 400, "Logout refused", str(exc))
    web_session = signer.session(request)
    if web_session is not None:  # ended on the server too: a saved copy of the cookie stops working
        with db.transaction() as session:
            revoke_session(session, web_session.session_id)
    response = RedirectResponse("/", status_code=303)
    signer.end_session(response)
    return response


# -- team page -------------------------------------------------------------------------------------


@router.get("/status", response_class=HTMLResponse)
def status_page(
    request: Request, session: SessionDep, settings: SettingsDep, signer: SignerDep, user: WebUser
) -> HTMLResponse:
    """The server's status as `GET /api/v1/status` gives it to this viewer (anyone)."""
    current = ops_status.server_status(session, settings.lease_ttl)
    body = status_out(current, staff=user is not None and user.is_staff)
    return render(request, signer, user, "status.html", {"status": body, "title": "Server status"})


@router.get("/team", response_model=None)
def own_team(request: Request, signer: SignerDep, user: WebUser) -> Response:
    if user is None:
        return _login_redirect(request)
    if user.team_name is None:
        target = "/admin" if user.is_staff else "/"
        return RedirectResponse(target, status_code=303)
    return RedirectResponse(f"/teams/{quote(user.team_name, safe='')}", status_code=303)


@router.get("/teams/{name:path}", response_model=None)  # a team name may hold "/"
def team_page(
    name: str,
    request: Request,
    session: SessionDep,
    state: StateDep,
    settings: SettingsDep,
    signer: SignerDep,
    user: WebUser,
) -> Response:
    if user is None:
        return _login_redirect(request)
    team = session.scalar(select(Team).where(Team.name == name))
    if team is None or (not user.is_staff and team.id != user.team_id):
        return not_found(request, signer, user, f"Team {name!r}")
    status = quota.compute_status(session, team, settings)
    rows = submissions.list_visible(session, user, status=None, team=team.name, limit=200, offset=0)
    own = [sub for sub, _ in rows if sub.team_id == team.id]
    sent = outbox.team_deliveries(session, team.id, limit=50, offset=0)
    deliveries = [delivery_out(row, [], viewer_of(user, settings)) for row in sent]
    cache = ViewCache()
    views = {sub.id: disclose(session, settings, sub, user, cache) for sub in own}
    context = {
        "team": team,
        "quota": status,
        "compute": budgets.usage(session, team.id, status.phase),
        "submissions": own,
        "deliveries": deliveries,
        "views": views,
        "now": utcnow(),
        "settings": settings,
        "agreement_missing": _agreement_missing(session, state, user),
        "join_requests": registrations.join_requests(session, team.name),  # issue 22
    }
    return render(request, signer, user, "team.html", context)


def _agreement_missing(session: Session, state: AppState, user: Principal) -> bool:
    """Whether the viewer must still accept the current data-use agreement to submit."""
    agreement = state.parts.find(Agreement)
    return agreement is not None and agreements.accepted_at(session, user.user_id, agreement.version) is None


# -- submission report -----------------------------------------------------------------------------


def _visible(session: Session, user: Principal, submission_id: int) -> Submission | None:
    try:
        return submissions.get_visible(session, user, submission_id, full=True)
    except NotFound:
        return None


@router.get("/submissions/{submission_id}", response_model=None)
def report_page(
    submission_id: IdPath,
    request: Request,
    session: SessionDep,
    state: StateDep,
    signer: SignerDep,
    user: WebUser,
    cache: PlotCacheDep,
) -> Response:
    if user is None:
        return _login_redirect(request)
    sub = _visible(session, user, submission_id)
    if sub is None:
        return not_found(request, signer, user, f"Submission {submission_id}")
    team = session.get(Team, sub.team_id)
    settings = state.settings
    view = disclose(session, settings, sub, user, outcome=True)
    report = view.report_of(sub.metrics) or None
    board_row = None
    if report is not None and board_figures_note(view.phase, user) is None:
        rows = cache_board(session, state, view.phase, user)[1]
        board_row = next((row for row in rows if row.kind != "expert" and row.submission_id == sub.id), None)
    alts: dict[str, str] = {}
    for plot_name in REPORT_PLOTS:
        if report is not None and (plot := _report_plot(session, cache, sub, report, plot_name)) is not None:
            alts[plot_name] = plot.alt
    context = {
        "sub": sub,
        "team_name": team.name if team else "",
        "report": report,
        "scores": Report.read(report),  # what the page reads of the report (typed)
        "alts": alts,
        "plot_version": plot_version(state, sub.id, sub.updated_at.isoformat()),
        # Figures, timestamps and maintainer-only texts as the API shows them (server.disclosure).
        "run": view.run,
        "staff": view.viewer.staff,
        "hidden_log_tail": view.hidden_log_tail,
        "view": view,
        "board_row": board_row,  # the run's row on its phase's board (rank figures), if it is one
        "board_query": urlencode({"phase": view.phase.name}),
        "queue": ops_status.queue_place(session, sub, settings.lease_ttl),
        "review": REVIEW_WORDS[said.value] if (said := view.review) else NO_REVIEW,
    }
    return render(request, signer, user, "report.html", context)


@router.post("/submissions/{submission_id}/cancel", response_model=None)
def cancel_run(
    submission_id: IdPath,
    request: Request,
    session: SessionDep,
    signer: SignerDep,
    user: WebUser,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """The report page's cancel button: the API's cancel (`submissions.cancel`, the policy table
    decides the refund), behind the session's CSRF token."""
    if user is None:
        return _login_redirect(request)
    try:
        signer.check_csrf(request, csrf_token)
        submissions.cancel(
            session, user, submission_id, keep_archives=get_state(request).settings.keep_archives
        )
    except CsrfError as exc:
        return error_page(request, signer, user, 400, "Not cancelled", str(exc))
    except CsawmError as exc:
        session.rollback()
        return error_page(request, signer, user, exc.status_code, "Not cancelled", exc.message)
    return RedirectResponse(f"/submissions/{submission_id}", status_code=303)


def _report_plot(
    session: Session, cache: PlotCache, sub: Submission, report: dict[str, Any], name: str
) -> plots.Plot | None:
    """One of the plots of `report` (the run's report as the viewer may see it, `report_of` of
    server.disclosure), or None when it lacks what the plot needs: a summary has no confusion matrix."""
    read = Report.read(report)
    if read is None:
        return None
    levels = read.levels
    level = read.disclosure or "full"
    key: tuple[Any, ...] = (name, sub.id, sub.updated_at.isoformat(), level)
    if name == "confusion":
        matrix = levels.confusion_matrix
        return cache.get(key, lambda: plots.confusion_heatmap(matrix)) if matrix else None
    if name == "group-amae":
        groups = dict(levels.group_amae)
        return cache.get(key, lambda: plots.group_amae_bars(groups)) if groups else None
    if name == "odds-ratios":
        if not read.has_clinical:
            return None
        baselines = [
            (n, r if level == "full" else summary_report(r))
            for i, n, r in queries.baseline_reports(session)
            if i != sub.id
        ]
        key = (*key, tuple(n for n, _ in baselines))
        return cache.get(key, lambda: _forest(sub, report, baselines))
    if name == "agreement":
        raters, experts, cells = queries.agreement_matrix(report)
        return cache.get(key, lambda: plots.agreement_heatmap(raters, experts, cells)) if cells else None
    if name == "strata":  # what the viewer may see of them: a summary has no outcome strata
        points = []
        for stratum, entry in read.strata.items():
            tau = (entry.kendall_tau_b or Estimate()).shown
            points.append(plots.TauPoint(stratum.replace("_", " "), "submission", tau.value, tau.lo, tau.hi))
        return cache.get(key, lambda: plots.strata_dots(points)) if points else None
    return None


def _forest(
    sub: Submission, report: dict[str, Any], baselines: list[tuple[str, dict[str, Any]]]
) -> plots.Plot:
    models = [(f"this: {sub.name}", report)] + [(f"baseline: {name}", r) for name, r in baselines]
    points = []
    for model, model_report in models:
        for key in queries.ENDPOINTS:
            ratio = queries.odds_ratio_q4(model_report, key)
            points.append(plots.OddsRatioPoint(model, key, ratio.value, ratio.lo, ratio.hi))
    for key in queries.ENDPOINTS:  # the LIBRA comparators of this report's test set (scorer v2)
        for label, ratio in queries.density_odds_ratios(report, key):
            points.append(plots.OddsRatioPoint(f"density: {label}", key, ratio.value, ratio.lo, ratio.hi))
    return plots.odds_ratio_forest(points, queries.ENDPOINTS)


@router.get("/submissions/{submission_id}/plots/{name}.svg", response_model=None)
def report_plot(
    submission_id: IdPath,
    name: str,
    request: Request,
    session: SessionDep,
    user: WebUser,
    cache: PlotCacheDep,
) -> Response:
    sub = _visible(session, user, submission_id) if user is not None else None
    if sub is None or user is None:
        return Response("not found", status_code=404, media_type="text/plain")
    report = disclose(session, get_state(request).settings, sub, user).report_of(sub.metrics)
    # a withheld score has no plot, nor a withheld figure of a summary
    plot = _report_plot(session, cache, sub, report, name) if report else None
    if plot is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return _svg(plot)


# -- review console --------------------------------------------------------------------------------


def _admin_context(session: Session, request: Request) -> dict[str, Any]:
    state = get_state(request)
    settings: Settings = state.settings
    teams = queries.teams(session)
    names = {team.id: team.name for team in teams}
    pending = []
    for sub in review.review_queue(session):
        best = queries.previous_best(session, sub.team_id, sub.id)
        pending.append({"sub": sub, "team": names.get(sub.team_id, ""), "best": best})
    team_quota = [(team, quota.compute_status(session, team, settings)) for team in teams]
    flags = review_flags.compute_flags(session, settings.data_dir, state.parts.get(review_flags.RankCache))
    audit = review.audit_log(session, action=None, limit=50, offset=0)
    return {
        "pending": pending,
        "flags": flags,
        "flagged": _flag_kinds(flags),
        "approved": [(s, names.get(s.team_id, "")) for s in queries.approved_submissions(session)],
        "audit": audit,
        "audit_names": admin.audit_names(session, audit),
        "selections": admin.sealed_selections(session),
        "team_quota": team_quota,
        "counts": queries.status_counts(session),
        "active": [(s, names.get(s.team_id, "")) for s in queries.active_runs(session)],
        "failed": [(s, names.get(s.team_id, "")) for s in queries.failed_runs(session)],
        "embedded_worker": state.parts.find(Worker) is not None,
        "remote_workers": worker_accounts.list_workers(session),
        "now": utcnow(),
        "actions": [a.value for a in ReviewAction],
        "registrations": open_registrations(session),  # issue 22: templates/admin_registrations.html
    }


def _flag_kinds(flags: FlagsOut) -> dict[int, list[str]]:
    """Each flagged run's flag kinds (the badges of its pending row), in the flags' order."""
    kinds: dict[int, list[str]] = {}
    for flag in flags.flags:
        for run in flag.runs:
            if flag.kind.value not in kinds.setdefault(run.id, []):
                kinds[run.id].append(flag.kind.value)
    return kinds


@router.get("/admin", response_model=None)
def admin_page(
    request: Request,
    session: SessionDep,
    signer: SignerDep,
    user: WebUser,
    reviewed: Annotated[int | None, Query(ge=1, le=DB_INT_MAX)] = None,
    action: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    if user is None:
        return _login_redirect(request)
    if not user.is_staff:
        return staff_only(request, signer, user)
    recorded = reviewed is not None and action in {a.value for a in ReviewAction}
    notice = f"Submission {reviewed}: {action} recorded." if recorded else None
    return render(
        request,
        signer,
        user,
        "admin.html",
        {**_admin_context(session, request), "notice": notice, "error": None},
    )


@router.post("/admin/submissions/{submission_id}/review", response_model=None)
def admin_review(
    submission_id: IdPath,
    request: Request,
    session: SessionDep,
    signer: SignerDep,
    user: WebUser,
    action: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    confirm_flags: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Record a decision. Approving a flagged run needs the form's ``confirm_flags`` box ticked,
    checked here against the flags computed now (the API's review is unchanged: flags never block)."""
    if user is None:
        return _login_redirect(request)
    if not user.is_staff:
        return staff_only(request, signer, user)
    problem: tuple[int, str] | None = None
    try:
        signer.check_csrf(request, csrf_token)
        if action == ReviewAction.APPROVE.value and confirm_flags != "yes":  # never approved unseen
            state = get_state(request)
            flags = review_flags.compute_flags(
                session, state.settings.data_dir, state.parts.get(review_flags.RankCache)
            )
            kinds = ", ".join(k.replace("_", " ") for k in _flag_kinds(flags).get(submission_id, []))
            if kinds:
                problem = (
                    409,
                    f"not approved: the run is flagged ({kinds}); read the evidence under "
                    'Review flags, then tick "Approve despite the flags" to approve it',
                )
        if problem is None:
            review.review(session, user, submission_id, ReviewAction(action), reason[:2000])
    except CsrfError as exc:
        problem = (400, str(exc))
    except ValueError:
        problem = (400, f"unknown action {action!r}; expected approve, hide or disqualify")
    except CsawmError as exc:
        problem = (exc.status_code, exc.message)
    if problem is not None:
        session.rollback()
        context = _admin_context(session, request)
        context.update(notice=None, error=f"Submission {submission_id}: {problem[1]}")
        return render(request, signer, user, "admin.html", context, status_code=problem[0])
    query = urlencode({"reviewed": submission_id, "action": action})
    return RedirectResponse(f"/admin?{query}", status_code=303)


# -- data-use agreement ----------------------------------------------------------------------------


def _agreement_page(
    request: Request,
    session: Session,
    signer: SessionSigner,
    user: Principal | None,
    agreement: Agreement,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The agreement rendered from its Markdown with raw HTML off (`guides.render_markdown`), so
    the file's text can never put markup or script on the page; an accept form for a logged-in
    user who has not accepted this version."""
    when = agreements.accepted_at(session, user.user_id, agreement.version) if user is not None else None
    context = {
        "version": agreement.version,
        "html": guides.render_markdown(agreement.text, heading_offset=1),
        "accepted_at": when,
        "error": error,
    }
    return render(request, signer, user, "agreement.html", context, status_code=status_code)


@router.get("/agreement", response_class=HTMLResponse)
def agreement_page(
    request: Request, session: SessionDep, state: StateDep, signer: SignerDep, user: WebUser
) -> HTMLResponse:
    agreement = state.parts.find(Agreement)
    if agreement is None:
        return not_found(request, signer, user, "A data-use agreement (CSAWM_DUA_FILE is not set)")
    return _agreement_page(request, session, signer, user, agreement)


@router.post("/agreement", response_model=None)
def accept_agreement(
    request: Request,
    session: SessionDep,
    state: StateDep,
    signer: SignerDep,
    user: WebUser,
    version: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    if user is None:
        return _login_redirect(request)
    agreement = state.parts.find(Agreement)
    if agreement is None:
        return not_found(request, signer, user, "A data-use agreement (CSAWM_DUA_FILE is not set)")
    try:
        signer.check_csrf(request, csrf_token)
        agreements.accept(session, user, agreement, version, request.url.path)
    except CsrfError as exc:
        return _agreement_page(request, session, signer, user, agreement, error=str(exc), status_code=400)
    except AgreementOutdated:
        error = "The agreement changed since that page was loaded: read the current version and accept it."
        return _agreement_page(request, session, signer, user, agreement, error=error, status_code=409)
    return RedirectResponse("/agreement", status_code=303)


# -- guides ----------------------------------------------------------------------------------------


@router.get("/guide/{name}", response_class=HTMLResponse)
def guide_page(
    name: str, request: Request, settings: SettingsDep, signer: SignerDep, user: WebUser
) -> HTMLResponse:
    title = guides.GUIDES.get(name)
    path = guides.find_guide(name)
    if title is None or path is None:
        if title is not None:
            log.warning("guide %r not found in %s", name, ", ".join(map(str, guides.DOCS_DIRS)))
        return not_found(request, signer, user, f"Guide {name!r}")
    source = path.read_text(encoding="utf-8").replace(downloads.WHEEL_MARKER, downloads.wheel_link())
    before, marker, after = source.partition(guides.LIMITS_MARKER)
    context = {
        "title": title,
        "before": guides.render_markdown(before),
        "after": guides.render_markdown(after) if marker else "",
        "limits": guides.limits(settings) if marker else None,
    }
    return render(request, signer, user, "guide.html", context)


router.include_router(registration_router)  # /register, /register/verify, /welcome (issue 22)
router.include_router(
    admin.router
)  # /admin/phases, /admin/accounts, /admin/quotas, /admin/rescore (issue 23)
