"""scripts/ensure-docker registers gVisor with the engine (issue 12 item 7): scripts/register-runsc
merges the runtime into a dockerd configuration, keeping the rest, idempotently; bad files are
refused untouched."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import docker
import pytest

REPO = Path(__file__).resolve().parents[2]
REGISTER = REPO / "scripts" / "register-runsc"
RUNSC_ENTRY = {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none"]}


def register(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REGISTER), str(config), "/usr/bin/runsc"], capture_output=True, text=True, check=False
    )


def test_runsc_is_merged_into_an_existing_configuration(tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    existing = {"log-level": "warn", "runtimes": {"kata": {"path": "/opt/kata/bin/kata-runtime"}}}
    config.write_text(json.dumps(existing))
    first = register(config)
    assert (first.returncode, first.stdout) == (0, "changed\n"), first.stderr
    merged = json.loads(config.read_text())
    assert merged == {**existing, "runtimes": {**existing["runtimes"], "runsc": RUNSC_ENTRY}}
    before = config.read_bytes()
    second = register(config)
    assert (second.returncode, second.stdout) == (0, "same\n")
    assert config.read_bytes() == before


def test_a_missing_or_empty_file_gets_only_the_runtime(tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    assert register(config).stdout == "changed\n"
    assert json.loads(config.read_text()) == {"runtimes": {"runsc": RUNSC_ENTRY}}
    config.write_text("  \n")
    assert register(config).stdout == "changed\n"
    assert json.loads(config.read_text()) == {"runtimes": {"runsc": RUNSC_ENTRY}}


def test_an_outdated_entry_is_replaced(tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"runtimes": {"runsc": {"path": "/usr/local/bin/runsc"}}}))
    assert register(config).stdout == "changed\n"
    assert json.loads(config.read_text())["runtimes"]["runsc"] == RUNSC_ENTRY


@pytest.mark.parametrize(
    ("text", "message"),
    [("{not json", "is not valid JSON"), ("[]", "must be a JSON object"), ('{"runtimes": 3}', "'runtimes'")],
)
def test_a_bad_file_is_refused_untouched(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "daemon.json"
    config.write_text(text)
    result = register(config)
    assert result.returncode == 1
    assert message in result.stderr and "nothing changed" in result.stderr
    assert config.read_text() == text
    assert list(tmp_path.iterdir()) == [config]


@pytest.mark.docker
def test_where_runsc_is_installed_the_engine_knows_it() -> None:
    """What CI relies on: after ensure-docker (make system-deps), the engine lists runsc."""
    if shutil.which("runsc") is None:
        pytest.skip("runsc is not installed (scripts/install-system-deps installs it)")
    subprocess.run([str(REPO / "scripts" / "ensure-docker")], check=True, timeout=120)
    client = docker.from_env()
    try:
        runtimes = client.info().get("Runtimes") or {}
    finally:
        client.close()
    assert runtimes.get("runsc", {}).get("runtimeArgs") == ["--network=none"], runtimes
