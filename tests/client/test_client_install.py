"""`pip install csawm-leaderboard` on the oldest and the newest supported Python (issue 24 item 1).

The wheel is built from this tree (``pip wheel --no-deps``) and installed alone, with pip's
configured index, into a fresh virtualenv of Python 3.11 and of Python 3.13. There the client's
import test runs (no module of the ``server`` extra may be installed or imported), then
``csawm --help``, ``csawm synth`` and ``csawm score`` (whose tau-b must equal this tree's), and a
server command must exit 2 naming the extra.

A Python that is not on this machine (under ``pyenv root``, or ``pythonX.Y`` on PATH) skips its case
with the reason shown by ``-ra``; CI's machine has both (README.md, "Tests").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from server.cli.main import CLIENT_MODULES, SERVER_EXTRA_HINT

from .blocked import ROOT, SERVER_ONLY

pytestmark = pytest.mark.client_pythons

OLDEST, NEWEST = "3.11", "3.13"  # pyproject.toml: requires-python = ">=3.11,<3.14"


def find_python(version: str) -> Path | None:
    """An interpreter of `version`: this one, pyenv's newest of it, or ``pythonX.Y`` on PATH (not a
    pyenv shim: a shim of a version that is not selected only prints an error)."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return Path(sys.executable)
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False).stdout.strip()
        found = sorted(Path(root, "versions").glob(f"{version}.*/bin/python{version}")) if root else []
        if found:
            return found[-1]
    on_path = shutil.which(f"python{version}")
    if on_path and "shims" not in Path(on_path).parts:
        return Path(on_path)
    return None


def run(*args: str | Path, timeout: float = 600, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, ROOT)
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("csawm_leaderboard-*-py3-none-any.whl")
    return path


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
def test_the_client_alone_installs_and_works(version: str, wheel: Path, tmp_path: Path) -> None:
    python = find_python(version)
    if python is None:
        pytest.skip(f"Python {version} is not on this machine (no python{version} on PATH or under pyenv)")
    venv = tmp_path / "venv"
    made = run(python, "-m", "venv", venv)
    assert made.returncode == 0, made.stderr
    bin_ = venv / "bin"
    installed = run(bin_ / "python", "-m", "pip", "install", "-q", wheel)
    assert installed.returncode == 0, installed.stderr[-3000:]

    # The import test: none of the extra is installed, and every client command imports.
    code = (
        "import importlib, importlib.util, sys\n"
        f"print('installed', [m for m in {SERVER_ONLY!r} if importlib.util.find_spec(m)])\n"
        f"for module in {CLIENT_MODULES!r}:\n"
        "    importlib.import_module(module)\n"
        "print('python', sys.version_info[:2])\n"
    )
    imported = run(bin_ / "python", "-c", code, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert "installed []" in imported.stdout
    assert f"python {tuple(int(p) for p in version.split('.'))}" in imported.stdout

    shown = run(bin_ / "csawm", "--help")
    assert shown.returncode == 0, shown.stderr
    assert "submit" in shown.stdout

    data = tmp_path / "synthetic"
    synth = run(bin_ / "csawm", "synth", data, "--n-train", "8", "--n-public", "8", "--n-private", "16",
                "--resolution", "64x52", "--workers", "1")  # fmt: skip
    assert synth.returncode == 0, synth.stderr
    latent = (data / "synthetic" / "latent.csv").read_text().splitlines()[1:]
    predictions = tmp_path / "predictions.csv"
    rows = [line for line in latent if line.startswith("private_")]
    predictions.write_text("Filename;Final_score\n" + "\n".join(rows) + "\n")
    labels = data / "labels" / "CSAW-M_test_private.csv"
    args = ("score", predictions, "--labels", labels, "--json", "--bootstrap", "0")
    there = run(bin_ / "csawm", *args)
    assert there.returncode == 0, there.stderr
    here = run(sys.executable, "-m", "server.cli.main", *args, cwd=ROOT)
    assert here.returncode == 0, here.stderr
    tau = json.loads(there.stdout)["masking"]["kendall_tau_b"]["value"]
    assert tau == pytest.approx(json.loads(here.stdout)["masking"]["kendall_tau_b"]["value"], abs=1e-12)
    assert tau > 0.3  # the latent score predicts the experts' ranks: a real score, not a degenerate one

    refused = run(bin_ / "csawm", "serve")
    assert refused.returncode == 2
    assert SERVER_EXTRA_HINT in refused.stderr
