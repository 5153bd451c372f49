"""``csawm synth``: arguments, summary, refusal of a non-empty OUTDIR, exit codes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import typer
from typer.testing import CliRunner

from server.benchmark.dataset import Benchmark
from server.cli import synth

SMALL = ["--n-train", "8", "--n-public", "16", "--n-private", "12", "--resolution", "32x26"]

# The command alone, so these tests do not depend on every other command importing cleanly.
app = typer.Typer()
app.command("synth")(synth.synth)
app.command("unused")(lambda: None)  # two commands: Typer keeps the "synth" subcommand name


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["synth", *args])
    return result.exit_code, result.stdout, result.stderr


def test_registered_in_the_csawm_console_script() -> None:
    from server.cli.main import app as csawm

    result = CliRunner().invoke(csawm, ["synth", "--help"])
    assert result.exit_code == 0
    for option in ("--seed", "--n-train", "--n-public", "--n-private", "--resolution", "--force"):
        assert option in result.stdout


def test_writes_a_dataset_and_prints_a_summary(tmp_path: Path) -> None:
    code, out, err = run(str(tmp_path / "out"), "--seed", "4", *SMALL)
    assert code == 0, err
    assert "seed 4, 32x26" in out
    assert "private" in out and "12 images" in out
    assert "images/s" in out and "synthetic/latent.csv" in out
    bench = Benchmark.open(tmp_path / "out")
    assert len(bench.read_private()) == 12 and bench.train_labels is not None


def test_refuses_a_non_empty_outdir_then_force_replaces_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    code, stdout, err = run(str(out), *SMALL)
    assert code == 2
    assert "not empty" in err and "--force" in err and stdout == ""
    assert (out / "notes.txt").read_text() == "keep"
    code, _, err = run(str(out), "--force", *SMALL)
    assert code == 0, err
    assert not (out / "notes.txt").exists()


def test_bad_resolution_and_sizes_exit_2(tmp_path: Path) -> None:
    for args in (["--resolution", "632"], ["--resolution", "4x4"], ["--n-public", "3"], ["--n-train", "-1"]):
        code, _, err = run(str(tmp_path / "out"), *args)
        assert code == 2, args
        assert err.startswith("error: ")
    assert not (tmp_path / "out").exists()


def test_sigterm_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "out"
    script = "import typer; from server.cli.synth import synth; typer.run(synth)"
    args = [sys.executable, "-c", script, str(out), "--n-train", "5000", "--resolution", "64x52"]
    process = subprocess.Popen([*args, "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not any(tmp_path.glob(".out.tmp-*/images/preprocessed/train/*.png")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "generation never started"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []
