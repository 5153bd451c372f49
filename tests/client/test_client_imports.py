"""The researcher's commands need only the client's dependencies (issue 24 item 1), checked in
seconds: a fresh interpreter that cannot import the server's dependencies (blocked.py) imports every
client command and shows each one's help, and every server command there exits 2 naming the extra.
test_client_install.py proves the same on a real install of the wheel."""

from __future__ import annotations

import pytest

from server.cli.main import CLIENT_MODULES, COMMANDS, RESEARCHERS, SERVER, SERVER_EXTRA_HINT

from .blocked import SERVER_ONLY, csawm_blocked, run_blocked

CLIENT_COMMANDS = [name for name, c in COMMANDS.items() if c.panel == RESEARCHERS]
SERVER_COMMANDS = [name for name, c in COMMANDS.items() if c.panel == SERVER]


def test_the_blocker_blocks() -> None:
    """The check below could not fail if the blocker let the server's packages through."""
    result = run_blocked("import sqlalchemy\n")
    assert result.returncode == 1
    assert "ModuleNotFoundError: No module named 'sqlalchemy'" in result.stderr


def test_every_client_command_imports_without_the_server_dependencies() -> None:
    code = (
        "import importlib, sys\n"
        f"for module in {CLIENT_MODULES!r}:\n"
        "    importlib.import_module(module)\n"
        f"leaked = sorted(m for m in sys.modules if m.partition('.')[0] in {SERVER_ONLY!r}"
        " or m in ('server.models', 'server.core.db', 'server.core.settings'))\n"
        "print('leaked', leaked)\n"
    )
    result = run_blocked(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "leaked []"


def test_the_client_commands_are_the_issue_s_list() -> None:
    expected = {"submit", "status", "logs", "leaderboard", "quota", "select", "agreement"}
    expected |= {"init", "check", "score", "rank", "synth"}
    assert expected <= set(CLIENT_COMMANDS)
    assert set(SERVER_COMMANDS) == {"serve", "worker", "admin", "db", "seed-baselines", "k8s"}


@pytest.mark.parametrize("command", CLIENT_COMMANDS)
def test_each_client_command_shows_its_help_without_the_server(command: str) -> None:
    result = csawm_blocked(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def test_the_command_list_shows_both_panels_without_the_server() -> None:
    result = csawm_blocked("--help")
    assert result.returncode == 0, result.stderr
    assert "Researchers" in result.stdout
    assert "Server (needs the [server] extra)" in result.stdout
    for name in COMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["serve"],
        ["serve", "--host", "127.0.0.1"],
        ["worker", "--help"],
        ["db", "upgrade"],
        ["admin", "create-team", "x"],
        ["seed-baselines"],
        ["k8s", "--help"],
    ],
)
def test_a_server_command_without_the_extra_exits_2_and_names_it(args: list[str]) -> None:
    result = csawm_blocked(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"`csawm {args[0]}` is a server command" in result.stderr
    assert SERVER_EXTRA_HINT in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_module_of_our_own_is_not_blamed_on_the_extra() -> None:
    """Only a missing third-party dependency means "install the extra"; our own bug stays a bug."""
    code = (
        "from server.cli import main\n"
        "main.COMMANDS['serve'] = main.Command('server.cli.nonexistent', main.SERVER, 'x')\n"
        "main.load('serve')\n"
    )
    result = run_blocked(code)
    assert result.returncode == 1
    assert "No module named 'server.cli.nonexistent'" in result.stderr
