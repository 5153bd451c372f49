"""`csawm admin ...`: operator commands that act on the database directly (audited as ``cli:<user>``).

`create-user` and `issue-token` print the new token alone on stdout, so a script can capture it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from server.accounts import service
from server.cli._server_common import cli_actor, fail, open_database, reported_errors, settings_or_exit
from server.models import Role

app = typer.Typer(help="Manage teams, users, tokens and quotas.", no_args_is_help=True)

ExpiresDays = Annotated[
    float, typer.Option("--expires-days", min=0.0, help="Token lifetime in days; 0 = never expires.")
]


def _lifetime(days: float) -> timedelta | None:
    return None if days == 0 else timedelta(days=days)


@app.command("create-team")
def create_team(name: Annotated[str, typer.Argument(help="Team name.")]) -> None:
    """Create a team."""
    settings = settings_or_exit()
    with open_database(settings) as db, reported_errors(), db.transaction() as session:
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
    settings = settings_or_exit()
    with open_database(settings) as db, reported_errors(), db.transaction() as session:
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
    settings = settings_or_exit()
    with open_database(settings) as db, reported_errors(), db.transaction() as session:
        _, plaintext = service.issue_token(
            session, email, expires_in=_lifetime(expires_days), label=label, actor=cli_actor()
        )
    typer.echo(plaintext)


@app.command("revoke-token")
def revoke_token(token: Annotated[str, typer.Argument(help="The token itself, or its numeric id.")]) -> None:
    """Revoke a token at once."""
    settings = settings_or_exit()
    with open_database(settings) as db, reported_errors(), db.transaction() as session:
        row = service.revoke_token(session, token, actor=cli_actor())
        typer.echo(f"revoked token {row.id} ({row.prefix}...)", err=True)


@app.command("set-quota")
def set_quota(
    team: Annotated[str, typer.Argument(help="Team name.")],
    per_day: Annotated[int | None, typer.Option("--per-day", min=0)] = None,
    per_week: Annotated[int | None, typer.Option("--per-week", min=0)] = None,
    total: Annotated[int | None, typer.Option("--total", min=0, help="Per phase.")] = None,
    active: Annotated[int | None, typer.Option("--active", min=0, help="Concurrent active runs.")] = None,
    reset: Annotated[bool, typer.Option("--reset", help="Restore the server defaults first.")] = False,
) -> None:
    """Override a team's quota limits (unset options keep their current value)."""
    values: dict[str, int | None] = dict.fromkeys(service.QUOTA_FIELDS) if reset else {}
    for key, value in (("per_day", per_day), ("per_week", per_week), ("total", total), ("active", active)):
        if value is not None:
            values[key] = value
    if not values:
        raise typer.BadParameter("give at least one of --per-day, --per-week, --total, --active, --reset")
    settings = settings_or_exit()
    with open_database(settings) as db, reported_errors(), db.transaction() as session:
        row = service.set_quota(session, team, values, actor=cli_actor())
        shown = {k: getattr(row, f"quota_{k}") for k in service.QUOTA_FIELDS}
        typer.echo(f"quota overrides for {team}: {shown} (None = server default)", err=True)


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
    from server.worker.phases import score_report

    if bool(ids) == all_runs:
        raise fail("give submission ids or --all (not both)")
    settings = settings_or_exit()
    if settings.benchmark_dir is None:
        raise fail("CSAWM_BENCHMARK_DIR is not set: re-scoring needs the test set")
    evaluation = EvaluationSet.prepare(settings.benchmark_dir, settings.data_dir, settings.preflight_images)
    with open_database(settings) as db, reported_errors():
        result = run_rescore(
            db, settings, evaluation, None if all_runs else ids, actor=cli_actor(), scorer=score_report
        )
    for sub_id, why in sorted(result.skipped.items()):
        typer.echo(f"skipped {sub_id}: {why}", err=True)
    typer.echo(f"re-scored {len(result.done)} runs, skipped {len(result.skipped)}", err=True)
    if result.skipped and not result.done:
        raise typer.Exit(1)
