"""`csawm admin ...`: operator commands that act on the database directly (audited as ``cli:<user>``).

`create-user` and `issue-token` print the new token alone on stdout, so a script can capture it.
Every other confirmation is a sentence on stderr (`server.cli.admin_words`); ``--json`` prints the
data on stdout for a program.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from server.accounts import service
from server.cli import _server_common as common
from server.cli import admin_words as words
from server.cli import fail, worker_accounts
from server.cli import registrations as registration_cli
from server.cli._server_common import admin_session, cli_actor, settings_or_exit
from server.core.text import visible
from server.models import Role
from server.operations import pause as pausing
from server.phases import service as phases
from server.phases.service import PhaseView
from server.runs import holds

app = typer.Typer(help="Manage teams, users, tokens, quotas, holds and phases.", no_args_is_help=True)

ExpiresDays = Annotated[
    float, typer.Option("--expires-days", min=0.0, help="Token lifetime in days; 0 = never expires.")
]


def _lifetime(days: float) -> timedelta | None:
    return None if days == 0 else timedelta(days=days)


@app.command("create-team")
def create_team(name: Annotated[str, typer.Argument(help="Team name.")]) -> None:
    """Create a team."""
    with admin_session() as session:
        team = service.create_team(session, name, actor=cli_actor())
        typer.echo(f"created team {team.name} (id {team.id})", err=True)


@app.command("create-user")
def create_user(
    email: Annotated[str, typer.Argument(help="The user's email (their login name).")],
    team: Annotated[str | None, typer.Option("--team", help="Team name (required for researchers).")] = None,
    role: Annotated[Role, typer.Option("--role", help="researcher, maintainer or admin.")] = Role.RESEARCHER,
    expires_days: ExpiresDays = 90.0,
    no_token: Annotated[bool, typer.Option("--no-token", help="Do not issue a first token.")] = False,
) -> None:
    """Create a user and print their first API token alone on stdout."""
    with admin_session() as session:
        user = service.create_user(session, email, role=role, team_name=team, actor=cli_actor())
        plaintext = None
        if not no_token:
            _, plaintext = service.issue_token(
                session, user.email, expires_in=_lifetime(expires_days), label="first", actor=cli_actor()
            )
    typer.echo(f"created {role.value} {email}", err=True)
    if plaintext:
        typer.echo(plaintext)


@app.command("issue-token")
def issue_token(
    email: Annotated[str, typer.Argument(help="Whose token.")],
    expires_days: ExpiresDays = 90.0,
    label: Annotated[str, typer.Option("--label", help="A note to tell tokens apart.")] = "",
) -> None:
    """Issue a new API token and print it alone on stdout (it is not stored, only its hash)."""
    with admin_session() as session:
        _, plaintext = service.issue_token(
            session, email, expires_in=_lifetime(expires_days), label=label, actor=cli_actor()
        )
    typer.echo(plaintext)


@app.command("revoke-token")
def revoke_token(token: Annotated[str, typer.Argument(help="The token itself, or its numeric id.")]) -> None:
    """Revoke a token at once."""
    with admin_session() as session:
        row = service.revoke_token(session, token, actor=cli_actor())
        typer.echo(f"revoked token {row.id} ({row.prefix}...)", err=True)


@app.command("deactivate-user")
def deactivate_user(email: Annotated[str, typer.Argument(help="Whose account.")]) -> None:
    """Deactivate an account at once: no web login, its tokens refused, no team mail (audited)."""
    _set_active(email, active=False)


@app.command("reactivate-user")
def reactivate_user(email: Annotated[str, typer.Argument(help="Whose account.")]) -> None:
    """Reactivate an account: its tokens that are neither revoked nor expired work again."""
    _set_active(email, active=True)


def _set_active(email: str, *, active: bool) -> None:
    with admin_session() as session:
        user = service.set_active(session, email, active, actor=cli_actor())
        done = "reactivated" if active else "deactivated"
        typer.echo(f"{done} {visible(user.email)} (id {user.id})", err=True)


@app.command("set-quota")
def set_quota(
    team: Annotated[str, typer.Argument(help="Team name.")],
    per_day: Annotated[int | None, typer.Option("--per-day", min=0)] = None,
    per_week: Annotated[int | None, typer.Option("--per-week", min=0)] = None,
    total: Annotated[int | None, typer.Option("--total", min=0, help="Per phase.")] = None,
    active: Annotated[int | None, typer.Option("--active", min=0, help="Concurrent active runs.")] = None,
    reset: Annotated[bool, typer.Option("--reset", help="Restore the server defaults first.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Override a team's quota limits (unset options keep their current value)."""
    values: dict[str, int | None] = dict.fromkeys(service.QUOTA_FIELDS) if reset else {}
    given = {"per_day": per_day, "per_week": per_week, "total": total, "active": active}
    values |= {key: value for key, value in given.items() if value is not None}
    if not values:
        raise typer.BadParameter("give at least one of --per-day, --per-week, --total, --active, --reset")
    settings = settings_or_exit()
    with admin_session(settings) as session:
        row = service.set_quota(session, team, values, actor=cli_actor())
        overrides = {k: getattr(row, f"quota_{k}") for k in service.QUOTA_FIELDS}
        typer.echo(words.quota_sentence(visible(team), overrides, settings), err=True)
    if as_json:  # the team's overrides; null: the server default
        words.print_json(overrides)


@app.command("rescore")
def rescore(
    ids: Annotated[list[int] | None, typer.Argument(help="Submission ids (or --all).")] = None,
    all_runs: Annotated[
        bool, typer.Option("--all", help="Every succeeded run with stored predictions.")
    ] = False,
) -> None:
    """Re-score stored runs under the current scorer and test set; the previous reports are kept."""
    from server.runs.rescore import rescore as run_rescore
    from server.worker.evaluation import EvaluationSet
    from server.worker.stages import scorer_for

    if bool(ids) == all_runs:
        raise fail("give submission ids or --all (not both)")
    settings = settings_or_exit()
    if settings.benchmark_dir is None:
        raise fail("CSAWM_BENCHMARK_DIR is not set: re-scoring needs the test set")
    evaluation = EvaluationSet.prepare(
        settings.benchmark_dir, settings.data_dir, settings.run.preflight_images
    )
    scorer, wanted = scorer_for(settings), None if all_runs else ids
    with common.open_database(settings) as db, common.reported_errors():
        result = run_rescore(db, settings, evaluation, wanted, actor=cli_actor(), scorer=scorer)
    for sub_id, why in sorted(result.skipped.items()):
        typer.echo(f"skipped {sub_id}: {why}", err=True)
    typer.echo(f"re-scored {len(result.done)} runs, skipped {len(result.skipped)}", err=True)
    if result.skipped and not result.done:
        raise typer.Exit(1)


# -- team holds ------------------------------------------------------------------------------------


@app.command("hold-team")
def hold_team(
    team: Annotated[str, typer.Argument(help="Team name.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (in the audit log).")],
) -> None:
    """Hold a team: none of its queued runs is leased until `release-team`."""
    with admin_session() as session:
        row = holds.hold(session, service.get_team(session, team).id, reason=reason, actor=cli_actor())
        typer.echo(f"team {team} is held since {row.created_at:%Y-%m-%d %H:%M} UTC: {row.reason}", err=True)


@app.command("release-team")
def release_team(team: Annotated[str, typer.Argument(help="Team name.")]) -> None:
    """Release a held team: its queued runs are leased again, in their order."""
    with admin_session() as session:
        holds.release(session, service.get_team(session, team).id, actor=cli_actor())
        typer.echo(f"released team {team}", err=True)


@app.command("holds")
def list_holds(as_json: JsonOpt = False) -> None:
    """List held teams: name, since when, by whom, why."""
    with admin_session(write=False) as session:
        held = [(name, row.created_at, row.held_by, row.reason, row.submission_id)
                for row, name in holds.listed(session)]  # fmt: skip
    if as_json:
        keys = ("team", "since", "held_by", "reason", "submission_id")
        words.print_json([dict(zip(keys, entry, strict=True)) for entry in held])
    elif not held:
        typer.echo("no team is held", err=True)
    else:
        rows = [
            [
                visible(team),
                words.stamp(since),
                visible(by),
                visible(reason) + (f" (run {run})" if run else ""),
            ]
            for team, since, by, reason, run in held
        ]
        typer.echo(words.table(["TEAM", "HELD SINCE", "BY", "REASON"], rows))


# -- phases ----------------------------------------------------------------------------------------

NONE_WORDS = ("none", "never", "")


def _when(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time with its zone (``2027-03-01T00:00:00Z``) or ``now``."""
    if value is None:
        return None
    if value.strip().lower() == "now":
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{option}: {value!r} is not an ISO 8601 time (e.g. 2027-03-01T00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        raise typer.BadParameter(f"{option}: {value!r} has no time zone; add Z or +HH:MM")
    return parsed.astimezone(UTC)


OpensOpt = Annotated[str | None, typer.Option("--opens-at", help="ISO 8601 time with zone, or now.")]
ClosesOpt = Annotated[
    str | None, typer.Option("--closes-at", help="ISO 8601 time with zone, now, or none (open-ended).")
]
TestSetOpt = Annotated[str | None, typer.Option("--test-set", help="private, or public (development).")]
VisibilityOpt = Annotated[str | None, typer.Option("--visibility", help="live, or sealed (final round).")]
LadderOpt = Annotated[bool | None, typer.Option("--ladder/--no-ladder", help="The Ladder on the board.")]
LevelOpt = Annotated[float | None, typer.Option("--ladder-level", help="One-sided test level (0.05).")]
StepOpt = Annotated[float | None, typer.Option("--ladder-step", help="Rounding step of shown values (0.01).")]
SelectedOpt = Annotated[int | None, typer.Option("--max-selected", min=1, help="Runs a team may select.")]
TotalOpt = Annotated[int | None, typer.Option("--total", min=0, help="Submissions per team.")]
PerDayOpt = Annotated[int | None, typer.Option("--per-day", min=0)]
PerWeekOpt = Annotated[int | None, typer.Option("--per-week", min=0)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Also print the result as JSON on stdout.")]
DisclosureOpt = Annotated[
    str | None,
    typer.Option(
        "--disclosure",
        help="What researchers see of a report: full, or summary (default: full for --test-set public, "
        "summary for private).",
    ),
]


def _phase_command(create: bool, name_help: str) -> Callable[..., None]:
    """`create-phase` (`create`) or `update-phase`: the same options, one body."""

    def command(
        name: str = typer.Argument(help=name_help),  # a default: the annotations are read as globals
        opens_at: OpensOpt = None,
        closes_at: ClosesOpt = None,
        test_set: TestSetOpt = None,
        visibility: VisibilityOpt = None,
        ladder: LadderOpt = None,
        ladder_level: LevelOpt = None,
        ladder_step: StepOpt = None,
        max_selected: SelectedOpt = None,
        total: TotalOpt = None,
        per_day: PerDayOpt = None,
        per_week: PerWeekOpt = None,
        disclosure: DisclosureOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        given = {
            "test_set": test_set,
            "visibility": visibility,
            "ladder": ladder,
            "ladder_level": ladder_level,
            "ladder_step": ladder_step,
            "max_selected": max_selected,
            "quota_total": total,
            "quota_per_day": per_day,
            "quota_per_week": per_week,
            "disclosure": disclosure,
        }
        values: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
        if create:
            values["name"] = name
            values["opens_at"] = _when(opens_at, "--opens-at")
            if values["opens_at"] is None:
                raise typer.BadParameter("--opens-at is required")
        elif opens_at is not None:
            values["opens_at"] = _when(opens_at, "--opens-at")
        if closes_at is not None:
            cleared = closes_at.strip().lower() in NONE_WORDS
            if not (create and cleared):  # a new phase without --closes-at is open-ended anyway
                values["closes_at"] = None if cleared else _when(closes_at, "--closes-at")
        if not values:
            raise typer.BadParameter("give at least one option to change")
        with admin_session() as session:
            if create:
                row = phases.create(session, values, actor=cli_actor())
            else:
                row = phases.update(session, name, values, actor=cli_actor())
            view = PhaseView.of(row)
            typer.echo(f"{'created' if create else 'updated'} phase {words.phase_sentence(view)}", err=True)
        if as_json:
            words.print_json(view.to_json())

    return command


app.command(
    "create-phase", help="Create a phase (windows may not overlap; a left-out quota is the server default)."
)(_phase_command(True, "Phase name (a slug, e.g. final-2027)."))
app.command(
    "update-phase",
    help="Change a phase (options left out keep their value; --closes-at none makes it open-ended).",
)(_phase_command(False, "Phase name."))


@app.command("reveal-phase")
def reveal_phase(name: Annotated[str, typer.Argument(help="A sealed phase that has closed.")]) -> None:
    """Reveal a closed sealed phase: its board then ranks the selected runs with exact scores."""
    from server.leaderboard import snapshots  # the board's modules, only for this command

    settings = settings_or_exit()
    with admin_session(settings) as session:
        row = phases.reveal(session, name, actor=cli_actor())
        snapshots.freeze_revealed(session, settings, PhaseView.of(row), cli_actor(), None)  # RevealHook
        typer.echo(f"revealed phase {row.name}", err=True)


# Self-registration (issue 22): server/cli/registrations.py
app.command("registrations")(registration_cli.list_registrations)
app.command("approve")(registration_cli.approve)
app.command("reject")(registration_cli.reject)


# -- maintenance pause (issue 22) -----------------------------------------------------------------


@app.command("pause")
def pause(
    message: Annotated[str, typer.Option("--message", help="Shown on every page and by the CLI.")] = "",
    intake: Annotated[
        bool, typer.Option("--intake/--no-intake", help="Refuse submissions (503 before the upload).")
    ] = True,
    runs: Annotated[
        bool, typer.Option("--runs/--no-runs", help="Lease no run; running runs finish.")
    ] = False,
) -> None:
    """Pause intake and/or runs for maintenance (audited; kept across restarts) until `resume`."""
    with admin_session() as session:
        state = pausing.set_pause(session, intake=intake, runs=runs, message=message, actor=cli_actor())
    what = " and ".join(name for name, on in (("intake", state.intake), ("runs", state.runs)) if on)
    typer.echo(f"paused {what}" if what else "nothing paused", err=True)


@app.command("resume")
def resume() -> None:
    """Lift the maintenance pause: submissions are accepted and runs leased again (audited)."""
    with admin_session() as session:
        pausing.clear_pause(session, actor=cli_actor())
    typer.echo("resumed: intake and runs", err=True)


app.command("create-worker")(worker_accounts.create_worker)
app.command("revoke-worker")(worker_accounts.revoke_worker)
