"""Entry point of the `csawm` console script (docs/cli.md).

`COMMANDS` is the whole command surface: each command lives in a module named for what it does and
is imported only when it runs (or when its own ``--help`` is asked for), so `csawm submit` never
imports the server. The researcher's commands need only the client's dependencies (``pip install
csawm-leaderboard``); the server's need the ``[server]`` extra, and without it they exit 2 and name
the extra to install. The boundary is held by tests/client and by the import-linter contract "The
researcher's client knows nothing of the server" in pyproject.toml.

Exit codes: 0 ok, 1 model/run failed, 2 usage or validation error, 3 server unreachable or auth.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, NoReturn

import typer
from typer._click import Command as ClickCommand  # typer vendors click: its own classes, not click's
from typer._click import Context, HelpFormatter
from typer.core import TyperCommand, TyperGroup

from server.cli import fail

RESEARCHERS = "Researchers"
SERVER = r"Server (needs the \[server] extra)"  # \[: rich markup for a literal [
SERVER_EXTRA_HINT = "pip install 'csawm-leaderboard[server]'"
#: Where a module of ours can be missing from: anything else missing is a missing dependency.
OWN_PACKAGES = frozenset({"server", "runner", "reference_models"})
_LISTING = "csawm.listing"


@dataclass(frozen=True)
class Command:
    """A command: the module it lives in (its function named as the command, ``seed-baselines`` as
    ``seed_baselines``, or for a group the Typer ``app``), the panel of ``csawm --help``, and its
    one-line help there (listing imports no module)."""

    module: str
    panel: str
    help: str
    group: bool = False

    def attr(self, name: str) -> str:
        return "app" if self.group else name.replace("-", "_")


COMMANDS: dict[str, Command] = {
    # Researchers: the client of a running server, then offline tools
    "submit": Command(
        "server.cli.client",
        RESEARCHERS,
        "Upload a model image or send a registry reference, and queue it for evaluation.",
    ),
    "status": Command(
        "server.cli.client", RESEARCHERS, "Show a submission: status timeline, error, metrics."
    ),
    "logs": Command("server.cli.client", RESEARCHERS, "Print the tail of the model's output."),
    "cancel": Command(
        "server.cli.client", RESEARCHERS, "Cancel a run; says whether its quota slot was refunded."
    ),
    "leaderboard": Command("server.cli.client", RESEARCHERS, "Print the public leaderboard."),
    "quota": Command(
        "server.cli.client",
        RESEARCHERS,
        "Show your team's quota: used, limits and the next free slot.",
    ),
    "agreement": Command(
        "server.cli.client",
        RESEARCHERS,
        "Print the server's data-use agreement and whether you accepted it; --accept accepts it.",
    ),
    "select": Command(
        "server.cli.client",
        RESEARCHERS,
        "Select a run for the final ranking of its sealed phase (--undo unselects).",
    ),
    "score": Command(
        "server.cli.score",
        RESEARCHERS,
        "Score PREDICTIONS against a CSAW-M label file (Kendall tau-b, AMAE, AUC, odds ratios).",
    ),
    "rank": Command(
        "server.cli.rank",
        RESEARCHERS,
        "Rank PRED files as the board would: rank intervals, p_first, tiers, strata, stability.",
    ),
    "synth": Command(
        "server.cli.synth",
        RESEARCHERS,
        "Generate a synthetic CSAW-M dataset (images, label files, synthetic ground truth).",
    ),
    "check": Command(
        "server.cli.check",
        RESEARCHERS,
        "Run an image on synthetic images in the production sandbox; say what the server would.",
    ),
    "init": Command(
        "server.cli.init",
        RESEARCHERS,
        "Write a starter model (Dockerfile, predict.py, method card, README) that passes `csawm check`.",
    ),
    # Server, operators and maintainers
    "serve": Command(
        "server.cli.serve",
        SERVER,
        "Run the evaluation server. An embedded SQLite database is upgraded to the latest schema first.",
    ),
    "worker": Command(
        "server.cli.worker", SERVER, "Lease runs from the queue and execute them until stopped."
    ),
    "seed-baselines": Command(
        "server.cli.seed",
        SERVER,
        "Train (or take --weights), build and queue both reference models as leaderboard baselines.",
    ),
    "db": Command(
        "server.cli.db", SERVER, "Database schema management (Alembic migrations only).", group=True
    ),
    "admin": Command(
        "server.cli.admin",
        SERVER,
        "Manage teams, users, tokens, quotas, holds and phases.",
        group=True,
    ),
    "k8s": Command("server.cli.k8s", SERVER, "Kubernetes runner tools.", group=True),
}
CLIENT_MODULES = sorted({c.module for c in COMMANDS.values() if c.panel == RESEARCHERS})


def _missing_extra(name: str, entry: Command, missing: str) -> ClickCommand:
    """What a server command is without the extra: any argument (``--help`` too) exits 2 with the fix."""

    def refuse() -> NoReturn:
        raise fail(
            f"`csawm {name}` is a server command and needs the server's dependencies "
            f"({missing} is not installed): {SERVER_EXTRA_HINT}"
        )

    return _single(
        name,
        refuse,
        help=entry.help,
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


def _single(name: str, function: Any, **options: Any) -> ClickCommand:
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    single.command(name, **options)(function)
    return typer.main.get_command(single)


def load(name: str) -> ClickCommand:
    """Import command `name` and build its click command (a server command without the extra
    becomes the one that says so)."""
    entry = COMMANDS[name]
    try:
        target: Any = getattr(importlib.import_module(entry.module), entry.attr(name))
    except ModuleNotFoundError as exc:
        root = (exc.name or "").partition(".")[0]
        if entry.panel != SERVER or not root or root in OWN_PACKAGES:
            raise
        return _missing_extra(name, entry, root)
    if entry.group:
        group = typer.main.get_group(target)
        group.rich_help_panel = entry.panel
        return group
    return _single(name, target, rich_help_panel=entry.panel)


class LazyGroup(TyperGroup):
    """The top-level group: lists `COMMANDS` from the table and imports one only to run it."""

    def list_commands(self, ctx: Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Context, cmd_name: str) -> ClickCommand | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        if ctx.meta.get(_LISTING):
            return TyperCommand(cmd_name, help=entry.help, rich_help_panel=entry.panel)
        return load(cmd_name)

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        ctx.meta[_LISTING] = True
        try:
            super().format_help(ctx, formatter)
        finally:
            ctx.meta[_LISTING] = False


app = typer.Typer(
    name="csawm",
    cls=LazyGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def csawm() -> None:
    """CSAW-M private leaderboard: the researcher's client and offline tools; with the \\[server]
    extra, the evaluation server, its worker and its administration."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()
