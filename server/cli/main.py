"""Entry point of the `csawm` console script (docs/cli.md).

Each command lives in a module named for what it does; this file only wires them together, so the
list below is the whole command surface. Exit codes: 0 ok, 1 model/run failed, 2 usage or validation
error, 3 server unreachable or auth.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="csawm",
    help="CSAW-M private leaderboard: evaluation server, runner and offline scoring tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    """Import command modules and attach them. Kept in a function so importing this module is cheap
    and has no side effects beyond building the Typer tree."""
    from server.cli import admin as admin_cli
    from server.cli import check as check_cli
    from server.cli import client as client_cli
    from server.cli import db as db_cli
    from server.cli import init as init_cli
    from server.cli import k8s as k8s_cli
    from server.cli import rank as rank_cli
    from server.cli import score as score_cli
    from server.cli import serve as serve_cli
    from server.cli import synth as synth_cli
    from server.cli import worker as worker_cli

    # Server and operators
    app.command("serve")(serve_cli.serve)
    app.command("worker")(worker_cli.worker)
    app.add_typer(db_cli.app, name="db")
    app.add_typer(admin_cli.app, name="admin")
    app.add_typer(k8s_cli.app, name="k8s")
    # Researchers: the client of a running server, then offline tools
    client_cli.register(app)
    app.command("score")(score_cli.score)
    app.command("rank")(rank_cli.rank)
    app.command("synth")(synth_cli.synth)
    app.command("check")(check_cli.check)
    app.command("init")(init_cli.init)
    # Maintainers: the reference baselines
    from server.cli import seed as seed_cli

    app.command("seed-baselines")(seed_cli.seed_baselines)


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
