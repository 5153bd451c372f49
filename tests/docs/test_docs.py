"""The contract pages in ``docs/`` stay true to the code (issue 10 item 5).

Each test reads the real thing (the `Settings` model, the Typer command tree, the app's OpenAPI
document, the leaderboard rows) and fails naming what a page leaves out, so whoever adds a setting,
a command, a route or a field documents it in the same change. The repository never points outside
itself, and names no package registry's host (issue 11 item 8).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer.main
from pydantic import SecretStr

from server.app import create_app
from server.cli.main import app as cli
from server.core.settings import VARIABLES, Settings, load_settings
from server.leaderboard import service as leaderboard
from server.leaderboard.standing import Standing
from server.scoring.results import Estimate, PairingBasis

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


# A documented row of a settings table: "| `CSAWM_NAME` | ...".
DOCUMENTED_VARIABLE = re.compile(r"^\| `(CSAWM_[A-Z0-9_]+)` \|", re.MULTILINE)


def test_every_setting_is_in_settings_md() -> None:
    """Every variable the settings read has a row in docs/settings.md, and every row is read."""
    documented = set(DOCUMENTED_VARIABLE.findall(_read("settings.md")))
    undocumented, unread = set(VARIABLES) - documented, documented - set(VARIABLES)
    assert not undocumented, f"docs/settings.md does not document {undocumented}"
    assert not unread, f"docs/settings.md documents variables no setting reads: {unread}"


def _samples(tmp: Path) -> dict[str, tuple[str, object]]:
    """A valid value other than the default for every variable: (what is set, what must be read)."""
    (tmp / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    s, m, h, d = timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
    return {
        "CSAWM_DATA_DIR": (str(tmp / "data"), tmp / "data"),
        "CSAWM_DATABASE_URL": ("postgresql://u:p@localhost/db", "postgresql://u:p@localhost/db"),
        "CSAWM_BENCHMARK_DIR": (str(tmp / "bench"), tmp / "bench"),
        "CSAWM_RUNNER": ("kubernetes", "kubernetes"),
        "CSAWM_HOST": ("0.0.0.0", "0.0.0.0"),
        "CSAWM_PORT": ("9000", 9000),
        "CSAWM_QUOTA_PER_DAY": ("3", 3),
        "CSAWM_QUOTA_PER_WEEK": ("6", 6),
        "CSAWM_QUOTA_TOTAL": ("21", 21),
        "CSAWM_QUOTA_ACTIVE": ("2", 2),
        "CSAWM_PHASE": ("dev-1", "dev-1"),
        "CSAWM_CHARGE_USER_FAILURES": ("false", False),
        "CSAWM_MAX_UPLOAD_BYTES": ("1g", 1024**3),
        "CSAWM_KEEP_ARCHIVES": ("true", True),
        "CSAWM_MAX_JSON_BYTES": ("128k", 128 * 1024),
        "CSAWM_MAX_CONCURRENT_UPLOADS": ("3", 3),
        "CSAWM_UPLOAD_IDLE_TIMEOUT": ("2m", 2 * m),
        "CSAWM_FORWARDED_ALLOW_IPS": ("10.0.0.1", "10.0.0.1"),
        "CSAWM_HEADER_TIMEOUT": ("20s", 20 * s),
        "CSAWM_BODY_TIMEOUT": ("40s", 40 * s),
        "CSAWM_MIN_BODY_RATE": ("64k", 64 * 1024),
        "CSAWM_MAX_CONNECTIONS": ("100", 100),
        "CSAWM_MAX_CONNECTIONS_PER_CLIENT": ("10", 10),
        "CSAWM_METRICS_TOKEN": ("t" * 40, "t" * 40),
        "CSAWM_SESSION_SECRET": ("k" * 40, "k" * 40),
        "CSAWM_DUA_FILE": (str(tmp / "dua.md"), tmp / "dua.md"),
        "CSAWM_MAX_TEAM_SIZE": ("9", 9),
        "CSAWM_REGISTRATION_QUESTIONS": (str(tmp / "questions.yaml"), tmp / "questions.yaml"),
        "CSAWM_HIDDEN_LOGS": ("none", "none"),
        "CSAWM_HIDDEN_HINT": ("exception_type", "exception_type"),
        "CSAWM_HIDDEN_RUNTIME": ("coarse", "coarse"),
        "CSAWM_HIDDEN_END_GRID": ("0", timedelta(0)),
        "CSAWM_MIN_FREE_BYTES": ("5g", 5 * 1024**3),
        "CSAWM_IMAGE_TTL": ("12h", 12 * h),
        "CSAWM_PUBLIC_URL": ("https://board.example.org", "https://board.example.org"),
        "CSAWM_EMBEDDED_DISPATCHER": ("false", False),
        "CSAWM_NOTIFY_MAX_ATTEMPTS": ("3", 3),
        "CSAWM_NOTIFY_BACKOFF": ("1m", m),
        "CSAWM_NOTIFY_BACKOFF_MAX": ("2h", 2 * h),
        "CSAWM_WEBHOOK_TIMEOUT": ("5s", 5 * s),
        "CSAWM_WEBHOOK_ALLOW_PRIVATE": ("true", True),
        "CSAWM_EMBEDDED_WORKER": ("false", False),
        "CSAWM_LEASE_TTL": ("30s", 30 * s),
        "CSAWM_POLL_INTERVAL": ("2s", 2 * s),
        "CSAWM_WORKER_LONG_POLLS": ("3", 3),
        "CSAWM_MAX_ATTEMPTS": ("3", 3),
        "CSAWM_RETRY_BACKOFF": ("5s", 5 * s),
        "CSAWM_BOOTSTRAP_RESAMPLES": ("500", 500),
        "CSAWM_SIGNIFICANCE_TOP": ("7", 7),
        "CSAWM_SIGNIFICANCE_ALPHA": ("0.01", 0.01),
        "CSAWM_MIN_STRATUM": ("12", 12),
        "CSAWM_BOOTSTRAP_SEED": ("7", 7),
        "CSAWM_RUN_TIMEOUT": ("45m", 45 * m),
        "CSAWM_RUN_MEMORY": ("8g", 8 * 1024**3),
        "CSAWM_RUN_CPUS": ("3.5", 3.5),
        "CSAWM_RUN_GPUS": ("1", 1),
        "CSAWM_RUN_RUNTIME": ("runsc", "runsc"),
        "CSAWM_PREFLIGHT_TIMEOUT": ("7m", 7 * m),
        "CSAWM_PREFLIGHT_IMAGES": ("8", 8),
        "CSAWM_REGISTRY": ("127.0.0.1:5000", "127.0.0.1:5000"),
        "CSAWM_REGISTRY_USERNAME": ("ru", "ru"),
        "CSAWM_REGISTRY_PASSWORD": ("rp", "rp"),
        "CSAWM_REGISTRY_CA": (str(tmp / "ca.pem"), tmp / "ca.pem"),
        "CSAWM_REGISTRY_INSECURE": ("true", True),
        "CSAWM_SMTP_HOST": ("mail.example.org", "mail.example.org"),
        "CSAWM_SMTP_PORT": ("465", 465),
        "CSAWM_SMTP_TLS": ("tls", "tls"),
        "CSAWM_SMTP_USERNAME": ("mu", "mu"),
        "CSAWM_SMTP_PASSWORD": ("mp", "mp"),
        "CSAWM_SMTP_SENDER": ("board@example.org", "board@example.org"),
        "CSAWM_K8S_NAMESPACE": ("ns-b", "ns-b"),
        "CSAWM_K8S_SERVICE_ACCOUNT": ("sa-b", "sa-b"),
        "CSAWM_K8S_COLLECTOR_IMAGE": ("collector:b", "collector:b"),
        "CSAWM_K8S_NODE_SELECTOR": ("pool=gpu", {"pool": "gpu"}),
        "CSAWM_K8S_TOLERATIONS": ("[]", ()),
        "CSAWM_K8S_RUNTIME_CLASS": ("gvisor", "gvisor"),
        "CSAWM_K8S_GPU_RESOURCE": ("amd.com/gpu", "amd.com/gpu"),
        "CSAWM_K8S_TEST_IMAGES_PVC": ("pvc-b", "pvc-b"),
        "CSAWM_K8S_TEST_SET_DIGEST_FILE": (str(tmp / "MANIFEST.sha256"), tmp / "MANIFEST.sha256"),
        "CSAWM_K8S_INPUT_SUB_PATH": ("in/{phase}", "in/{phase}"),
        "CSAWM_K8S_RECURSIVE_READ_ONLY": ("true", True),
        "CSAWM_K8S_IMAGE_PULL_SECRETS": ("a,b", ("a", "b")),
        "CSAWM_K8S_IMAGE_PULL_POLICY": ("Always", "Always"),
        "CSAWM_K8S_KUEUE_QUEUE": ("q1", "q1"),
        "CSAWM_K8S_TTL_SECONDS": ("2h", 2 * h),
        "CSAWM_K8S_STARTUP_ALLOWANCE": ("20m", 20 * m),
        "CSAWM_K8S_SCHEDULE_TIMEOUT": ("11m", 11 * m),
        "CSAWM_K8S_QUEUE_TIMEOUT": ("2d", 2 * d),
        "CSAWM_K8S_MAX_COLLECT_BYTES": ("8m", 8 * 1024**2),
    }


def _read_back(settings: Settings, variable: str) -> object:
    group, field = VARIABLES[variable]
    value = getattr(settings if group is None else getattr(settings, group), field)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_every_documented_setting_is_read_into_its_attribute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each documented variable, set to a valid non-default value, lands in the attribute `VARIABLES`
    names (the typed groups renamed attributes, never variables). CA and INSECURE exclude each
    other, so CA is read in a second load."""
    for key in list(os.environ):
        if key.startswith("CSAWM_"):
            monkeypatch.delenv(key)
    samples = _samples(tmp_path)
    assert set(samples) == set(VARIABLES)
    default = load_settings()
    for variable, (_, expected) in samples.items():
        assert _read_back(default, variable) != expected, f"{variable}: the sample is the default"
    second = {"CSAWM_REGISTRY", "CSAWM_REGISTRY_CA"}
    for variable, (raw, _) in samples.items():
        if variable != "CSAWM_REGISTRY_CA":
            monkeypatch.setenv(variable, raw)
    first = load_settings()
    read = {v: _read_back(first, v) for v in samples if v != "CSAWM_REGISTRY_CA"}
    for key in list(os.environ):
        if key.startswith("CSAWM_"):
            monkeypatch.delenv(key)
    for variable in second:
        monkeypatch.setenv(variable, samples[variable][0])
    read["CSAWM_REGISTRY_CA"] = _read_back(load_settings(), "CSAWM_REGISTRY_CA")
    wrong = {v: (got, samples[v][1]) for v, got in read.items() if got != samples[v][1]}
    assert not wrong, f"read, expected: {wrong}"


def _commands() -> Iterator[tuple[str, Any]]:
    """(``"csawm admin create-user"``, click command) for every leaf command of the tree."""

    def walk(command: Any, path: list[str]) -> Iterator[tuple[str, Any]]:
        if hasattr(command, "list_commands"):  # not .commands: the top level imports each one lazily
            ctx = typer.Context(command)
            for name in command.list_commands(ctx):
                yield from walk(command.get_command(ctx, name), [*path, name])
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
    """The rows are `BoardRow`s serialised by `to_json`, not a schema: read the keys of one row of
    each kind."""
    interval = Estimate(0.7, (0.6, 0.8))
    metrics = {"kendall_tau_b": interval, "amae": interval}
    basis = PairingBasis("2", "a" * 64, 0, 4)
    candidates = [
        leaderboard._Candidate(
            "baseline",
            "one-hot",
            metrics,
            team="CSAW",
            submission_id=1,
            scorer_version="2",
            replicates=np.zeros(4),
            basis=basis,
        ),
        leaderboard._Candidate("expert", "Expert_1", metrics, scorer_version="2"),
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
