"""``scripts/build-base-images`` takes its Debian archive from apt's configuration, never from a host
name in the repository (issue 11 item 8). ``--print-mirror`` stops before debootstrap, so these
tests need neither root nor a Docker engine; ``APT_CONFIG`` points apt-config at a temp ``Dir::Etc``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build-base-images"

pytestmark = pytest.mark.skipif(shutil.which("apt-config") is None, reason="needs Debian's apt-config")


def run(etc: Path, **env: str) -> subprocess.CompletedProcess[str]:
    (etc / "sources.list.d").mkdir(parents=True, exist_ok=True)
    (etc / "apt.conf.d").mkdir(exist_ok=True)
    config = etc / "apt.conf"
    config.write_text(f'Dir::Etc "{etc}/";\n')
    environ = {k: v for k, v in os.environ.items() if k != "CSAWM_DEBIAN_MIRROR"}
    environ.update(APT_CONFIG=str(config), **env)
    return subprocess.run(
        [str(SCRIPT), "--print-mirror"], env=environ, capture_output=True, text=True, timeout=60
    )


def test_deb822_picks_the_first_enabled_binary_bookworm_source(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir(parents=True)
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb-src\nURIs: http://src.example.invalid/debian\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://security.example.invalid/debian-security\nSuites: bookworm-security\n\n"
        "# a comment between stanzas\n"
        "Enabled: no\nTypes: deb\nURIs: http://off.example.invalid/debian\nSuites: bookworm\n\n"
        "Types: deb deb-src\nURIs: http://mirror.example.invalid/debian http://second.example.invalid/d\n"
        "Suites: bookworm-updates bookworm\nComponents: main\n"
    )
    proc = run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "http://mirror.example.invalid/debian\n"


def test_one_line_sources_with_options(tmp_path: Path) -> None:
    tmp_path.joinpath("sources.list").write_text(
        "# deb http://commented.example.invalid/debian bookworm main\n"
        "deb http://updates.example.invalid/debian bookworm-updates main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://one.example.invalid/debian bookworm main\n"
    )
    proc = run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "http://one.example.invalid/debian\n"


def test_no_source_is_a_clear_error(tmp_path: Path) -> None:
    proc = run(tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "apt has no Debian bookworm source configured" in proc.stderr
    assert f"{tmp_path}/sources.list" in proc.stderr and "CSAWM_DEBIAN_MIRROR" in proc.stderr


def test_the_environment_overrides_apt(tmp_path: Path) -> None:
    proc = run(tmp_path, CSAWM_DEBIAN_MIRROR="http://override.example.invalid/debian")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "http://override.example.invalid/debian\n"


def test_unknown_arguments_are_refused(tmp_path: Path) -> None:
    proc = subprocess.run([str(SCRIPT), "scipy"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown argument 'scipy' (expected --force, --print-mirror, python, numpy" in proc.stderr
