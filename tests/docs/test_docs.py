"""The contract pages in ``docs/`` stay true to the code (issue 10 item 5).

Each test reads the real thing (the `Settings` model, the Typer command tree, the app's OpenAPI
document, the leaderboard rows) and fails naming what a page leaves out, so whoever adds a setting,
a command, a route or a field documents it in the same change. The repository never points outside
itself, and names no package registry's host (issue 11 item 8).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer.main

from server.app import create_app
from server.cli.main import app as cli
from server.core.settings import Settings, load_settings
from server.leaderboard import service as leaderboard
from server.leaderboard.standing import Standing
from server.scoring.results import Estimate

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
HEADING = re.compile(r"^(#{1,6}) ", re.MULTILINE)
LINK = re.compile(r"\[[^\]]*\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def section(text: str, title: str) -> str:
    """The part of Markdown `text` under the heading whose text is `title`, up to the next heading
    of the same or a higher level; AssertionError when there is no such heading."""
    match = re.search(rf"^(#{{1,6}}) {re.escape(title)}\s*$", text, re.MULTILINE)
    assert match, f"no heading {title!r}"
    level = len(match.group(1))
    rest = text[match.end() :]
    for following in HEADING.finditer(rest):
        if len(following.group(1)) <= level:
            return rest[: following.start()]
    return rest


def test_every_setting_is_in_settings_md() -> None:
    page = _read("settings.md")
    missing = [
        f"CSAWM_{name.upper()}" for name in Settings.model_fields if f"`CSAWM_{name.upper()}`" not in page
    ]
    assert not missing, f"docs/settings.md does not document {missing}"


def _commands() -> Iterator[tuple[str, Any]]:
    """(``"csawm admin create-user"``, click command) for every leaf command of the tree."""

    def walk(command: Any, path: list[str]) -> Iterator[tuple[str, Any]]:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
        else:
            yield " ".join(["csawm", *path]), command

    yield from walk(typer.main.get_command(cli), [])


def test_every_command_and_option_is_in_cli_md() -> None:
    page = _read("cli.md")
    problems = []
    commands = list(_commands())
    assert any(name == "csawm init" for name, _ in commands)
    for name, command in commands:
        try:
            text = section(page, f"`{name}`")
        except AssertionError:
            problems.append(f"{name}: no section")
            continue
        for param in command.params:
            words = (
                [*param.opts, *param.secondary_opts]
                if param.param_type_name == "option"
                else [param.name.upper()]
            )
            problems += [f"{name}: {word}" for word in words if word not in text]
    assert not problems, f"docs/cli.md leaves out {problems}"


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = load_settings(data_dir=tmp_path_factory.mktemp("docs-state"))
    spec: dict[str, Any] = create_app(settings).openapi()
    return spec


def test_every_route_is_in_api_md(openapi: dict[str, Any]) -> None:
    page = _read("api.md")
    routes = [f"{method.upper()} {path}" for path, ops in openapi["paths"].items() for method in ops]
    assert "POST /api/v1/submissions" in routes
    missing = [route for route in routes if f"`{route}`" not in page]
    assert not missing, f"docs/api.md does not list {missing}"


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value.rsplit("/", 1)[-1]
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _api_schemas(openapi: dict[str, Any]) -> dict[str, list[str]]:
    """Name -> property names of every schema a request body or a 2xx response uses, nested ones
    included (enums and FastAPI's own validation-error schemas have no section)."""
    components = openapi["components"]["schemas"]
    todo = []
    for ops in openapi["paths"].values():
        for op in ops.values():
            todo += list(_refs(op.get("requestBody", {})))
            todo += [
                ref for code, resp in op["responses"].items() if code.startswith("2") for ref in _refs(resp)
            ]
    seen: dict[str, list[str]] = {}
    while todo:
        name = todo.pop()
        if name in seen or name not in components:
            continue
        properties = list(components[name].get("properties", {}))
        if properties:
            seen[name] = properties
        todo += list(_refs(components[name]))
    return seen


def _documented(page: str, title: str) -> str:
    """A schema's section plus the sections of the schemas it names (``SubmissionSummary plus``)."""
    text = section(page, title)
    named = {
        word for word in re.findall(r"`(\w+)`", text) if re.search(rf"^### {word}\s*$", page, re.MULTILINE)
    }
    return text + "".join(section(page, other) for other in named - {title})


def test_every_schema_field_is_in_api_md(openapi: dict[str, Any]) -> None:
    page = _read("api.md")
    schemas = _api_schemas(openapi)
    assert {"SubmissionOut", "QuotaOut", "RunEventOut", "ReviewIn"} <= set(schemas)
    problems = []
    for name, fields in sorted(schemas.items()):
        try:
            text = _documented(page, name)
        except AssertionError:
            problems.append(f"{name}: no section")
            continue
        problems += [f"{name}.{field}" for field in fields if f"`{field}`" not in text]
    assert not problems, f"docs/api.md leaves out {problems}"


def test_every_leaderboard_row_field_is_in_api_md() -> None:
    """The rows are built as dicts, not a schema: read the keys of one row of each kind."""
    interval = Estimate(0.7, (0.6, 0.8))
    metrics = {"kendall_tau_b": interval, "amae": interval}
    basis = leaderboard.PairingBasis("2", "a" * 64, 0, 4)
    candidates = [
        leaderboard._Candidate("baseline", "CSAW", "one-hot", 1, "2", metrics, np.zeros(4), basis),
        leaderboard._Candidate("expert", None, "Expert_1", None, "2", metrics, None, None),
    ]
    standing = {id(candidates[0]): Standing((1, 1), 1.0, 1.0, 1)}
    keys = {key for row in leaderboard._with_ties(candidates, standing) for key in row.to_json()}
    text = section(_read("api.md"), "Leaderboard row")
    missing = sorted(key for key in keys if f"`{key}`" not in text)
    assert not missing, f"docs/api.md, Leaderboard row, leaves out {missing}"


def _tracked_files() -> list[Path]:
    """The repository's files as git tracks them (the working tree's, untracked ones included)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [REPO / name for name in listed if (REPO / name).is_file()]


def _text_of(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def test_nothing_points_outside_the_repository() -> None:
    # Built from parts so that this file does not match itself.
    outside = re.compile(
        "|".join(re.escape(p) for p in ("DESIGN" + ".md", "../" + "shared", "shared/" + "reference"))
    )
    hits = []
    for path in _tracked_files():
        text = _text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if outside.search(line):
                hits.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not hits, "references to files outside the repository:\n" + "\n".join(hits)


def test_no_package_registry_host_is_named() -> None:
    """Issue 11 item 8. Scripts use apt's configured source; tests name only reserved ``*.invalid``
    hosts, so `tests/` is left to the network tests that prove names unreachable."""
    hosts = re.compile(
        "|".join(
            re.escape(h)
            for h in ("deb." + "debian.org", "py" + "pi.org", "python" + "hosted", "registry." + "npmjs.org")
        )
    )
    hits = [
        str(path.relative_to(REPO))
        for path in _tracked_files()
        if path.relative_to(REPO).parts[0] != "tests" and hosts.search(_text_of(path) or "")
    ]
    assert not hits, f"package registry hosts named in {hits}"


def test_relative_links_of_the_docs_and_readme_resolve() -> None:
    broken = []
    for page in [REPO / "README.md", *sorted(DOCS.glob("*.md"))]:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert not broken, f"broken links: {broken}"
