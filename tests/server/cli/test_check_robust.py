"""``csawm check --robust`` and ``GET /api/v1/test-set/shape`` (issue 23 item 2).

The attacker's view of the endpoint: anyone may call it, and it gives the whole set's figures and
the run limits, nothing per image. The researcher's view of the check: a model that fails only at
the hidden set's scale or on its extreme content passes a plain check and fails the robust one,
which names the inputs and how; a good model passes both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image
from srvtest import factories as f
from srvtest.app import make_settings, open_api
from srvtest.images import build, ensure_base, remove_all
from srvtest.live import free_port, live_server
from typer.testing import CliRunner

from server.app import create_app
from server.benchmark.robust import EXTREMES, ORDINARY, extreme_positions, generate_inputs
from server.benchmark.shape import CSAW_M, HiddenSetShape
from server.benchmark.synth import generate
from server.cli.main import app as cli
from tests.client.blocked import run_blocked

MODELS = Path(__file__).with_name("robust_models.py")
NUMPY_BASE = "csawm-base/numpy:bookworm"
SHAPE = "/api/v1/test-set/shape"


def _check(*args: str, server: str = "") -> tuple[int, dict[str, Any], str]:
    """Run ``csawm check ... --json``; `server` is ``CSAWM_SERVER_URL`` ("": none configured)."""
    result = CliRunner().invoke(cli, ["check", *args, "--json"], env={"CSAWM_SERVER_URL": server})
    body = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, body, result.stderr


# The endpoint -------------------------------------------------------------------------------


def test_the_shape_endpoint_gives_counts_size_depth_patterns_and_limits_to_anyone(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path
) -> None:
    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark, run_memory="300m")
    for api in open_api(settings):
        response = api.client.get(SHAPE)  # no token
    assert response.status_code == 200, response.text
    assert response.json() == {
        "test_set": {
            "private_images": 60,
            "public_images": 64,
            "width": 52,
            "height": 64,
            "bit_depth": 8,
            "name_patterns": {"private": "private_<i>.png", "public": "test_<i>.png"},
        },
        "limits": {"timeout_s": 1800.0, "memory_bytes": 300 * 1024**2, "cpus": 2.0, "gpus": 0},
    }


def test_the_shape_reveals_no_image_name_digest_or_label(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path
) -> None:
    """Nothing per image: no file name (the patterns hold none), no hash, no label value."""
    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark)
    for api in open_api(settings):
        text = api.client.get(SHAPE).text
    folder = synthetic_benchmark / "images" / "preprocessed"
    names = [p.name for p in (folder / "private").iterdir()] + [p.name for p in (folder / "test").iterdir()]
    assert names and not [n for n in names if n in text]
    assert not [token for token in text.replace('"', " ").split() if len(token) >= 32]  # no digest
    header = (synthetic_benchmark / "labels" / "CSAW-M_test_private.csv").read_text().split("\n")[0]
    assert not [column for column in header.split(";") if column in text]  # no label column either


def test_a_renamed_test_set_publishes_no_pattern(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path
) -> None:
    """Names that follow no published pattern are not described (not even a prefix of them)."""
    root = tmp_path / "renamed"
    generate(root, seed=1, n_train=0, n_public=8, n_private=8, resolution=(40, 32), workers=1)
    private = root / "images" / "preprocessed" / "private"
    labels = root / "labels" / "CSAW-M_test_private.csv"
    text = labels.read_text()
    for path in sorted(private.iterdir()):
        path.rename(private / f"case-{path.stem[-1]}x.png")
        text = text.replace(f"{path.name};", f"case-{path.stem[-1]}x.png;")
    labels.write_text(text)
    for api in open_api(make_settings(tmp_path, sqlite_url, benchmark_dir=root)):
        body = api.client.get(SHAPE).json()
    assert body["test_set"]["name_patterns"] == {"private": None, "public": "test_<i>.png"}
    assert "case" not in json.dumps(body)


def test_a_server_without_a_test_set_publishes_its_limits_only(tmp_path: Path, sqlite_url: str) -> None:
    for api in open_api(make_settings(tmp_path, sqlite_url)):
        body = api.client.get(SHAPE).json()
    assert body["test_set"] is None
    assert body["limits"]["memory_bytes"] == 4 * 1024**3


# The inputs ---------------------------------------------------------------------------------


def test_the_inputs_follow_the_shape_with_every_extreme_spread_across_both_splits(tmp_path: Path) -> None:
    shape = HiddenSetShape(private_images=30, public_images=26, width=48, height=40, bit_depth=8)
    inputs = generate_inputs(shape, tmp_path / "in")
    assert [i.path.name for i in inputs] == [f"private_{i}.png" for i in range(1, 31)] + [
        f"test_{i}.png" for i in range(1, 27)
    ]
    for item in inputs:
        with Image.open(item.path) as img:
            assert (img.mode, img.size) == ("L", (48, 40))  # PIL: (width, height)
    positions = extreme_positions(shape.total)
    assert set(positions.values()) == set(EXTREMES)
    assert max(positions) == shape.total - 1 and min(positions) < shape.total // 7
    for kind in EXTREMES:
        where = [n for n, i in enumerate(inputs) if i.kind == kind]
        assert any(n < 30 for n in where) and any(n >= 30 for n in where), (kind, where)

    def pixels(kind: str) -> np.ndarray:
        return np.asarray(Image.open(next(i.path for i in inputs if i.kind == kind)))

    assert pixels("near_black").max() <= 3 and pixels("near_white").min() >= 252
    assert (pixels("saturated") == 255).mean() > 0.2
    assert (pixels("full_frame") < 20).mean() < 0.05  # no background left
    assert (pixels("burned_text") == 255).sum() > 0
    assert pixels("very_dense").mean() > pixels("very_fatty").mean() + 20
    assert pixels(ORDINARY).std() > 10


def test_sixteen_bit_test_sets_get_sixteen_bit_inputs(tmp_path: Path) -> None:
    shape = HiddenSetShape(private_images=8, public_images=0, width=16, height=16, bit_depth=16)
    inputs = generate_inputs(shape, tmp_path / "in")
    with Image.open(inputs[0].path) as img:
        assert img.mode.startswith("I;16") or img.mode == "I"
    with Image.open(next(i.path for i in inputs if i.kind == "near_white")) as img:
        assert np.asarray(img).min() >= 252 * 257


def test_the_csaw_m_defaults_are_the_published_set() -> None:
    assert (CSAW_M.private_images, CSAW_M.public_images, CSAW_M.height, CSAW_M.width) == (475, 497, 632, 512)
    assert CSAW_M.names()[474] == "private_475.png" and CSAW_M.names()[-1] == "test_497.png"


def test_the_robust_check_imports_without_the_server_dependencies() -> None:
    result = run_blocked("import server.cli.robust, server.benchmark.robust\nprint('ok')\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# Asking the server --------------------------------------------------------------------------


def test_an_unreachable_server_exits_3_naming_it() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, body, err = _check("csawm-no-such-image:0", "--robust", server=url)
    assert code == 3 and body == {}
    assert f"cannot reach {url}/api/v1/test-set/shape" in err


def test_a_server_without_the_endpoint_falls_back_to_the_csaw_m_defaults_and_says_so() -> None:
    from server.cli.robust import fetch_shape

    with live_server(FastAPI()) as url:
        source = fetch_shape(url)
    assert source.shape == CSAW_M and source.limits is None
    assert source.shape_source == f"CSAW-M defaults ({url} publishes no shape)"


@pytest.mark.parametrize("count", ["many", 10**9])
def test_a_server_that_answers_nonsense_exits_3(count: object) -> None:
    """Nothing is written for an answer that is not a shape, nor for a billion images."""
    odd = FastAPI()
    limits = {"timeout_s": 60, "memory_bytes": 2**28, "cpus": 1, "gpus": 0}
    test_set = {"private_images": count, "public_images": 0, "width": 64, "height": 64, "bit_depth": 8}
    test_set["name_patterns"] = {"private": "private_<i>.png", "public": None}

    @odd.get(SHAPE)
    def shape() -> dict[str, object]:
        return {"test_set": test_set, "limits": limits}

    with live_server(odd) as url:
        code, _, err = _check("csawm-no-such-image:0", "--robust", server=url)
    assert code == 3 and "answered what is not a test-set shape" in err


# The check, on the real engine --------------------------------------------------------------


@pytest.fixture(scope="module")
def models() -> Iterator[dict[str, str]]:
    client = docker.from_env()
    ensure_base(client, NUMPY_BASE)
    yield {b: build(client, b, base=NUMPY_BASE, model=MODELS) for b in ("good", "past_400", "white")}
    remove_all(client)
    client.close()


@pytest.fixture(scope="module")
def large_benchmark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hidden set of 410 private + 12 public small images: over the 400 a bad model holds."""
    root = tmp_path_factory.mktemp("robust") / "large"
    generate(root, seed=3, n_train=0, n_public=12, n_private=410, resolution=(64, 52), workers=1)
    return root


@pytest.mark.docker
def test_options_replace_the_server_s_limits_and_the_report_says_so(
    models: dict[str, str], tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path
) -> None:
    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark, run_memory="300m")
    with live_server(create_app(settings, migrate_on_start=True)) as url:
        code, report, _ = _check(models["good"], "--robust", "--cpus", "1", server=url)
    assert code == 0, report
    assert report["limits"] == {"timeout_s": 1800.0, "memory_bytes": 300 * 1024**2, "cpus": 1.0, "gpus": 0}
    assert report["limits_source"] == f"{url}, --cpus from the options" and report["failing_inputs"] == []
    assert report["shape"]["private_images"] == 60 and report["diagnosis"] == ""


@pytest.mark.docker
def test_a_local_image_the_engine_does_not_hold_is_bad_input(tmp_path: Path) -> None:
    """docs/cli.md: exit 2, the image named, nothing run (no robust inputs written)."""
    code, report, _ = _check("csawm-robust-test-no-such-image:0", "--robust", "--cpus", "1")
    assert code == 2 and report["error_code"] == "image_invalid"
    assert "csawm-robust-test-no-such-image:0" in report["error_message"]


@pytest.mark.docker
def test_a_model_that_fails_past_400_images_is_charged_on_the_server_and_reproduced_by_robust_only(
    models: dict[str, str], tmp_path: Path, sqlite_url: str, large_benchmark: Path
) -> None:
    """Issue 23's test: the plain check passes, the submitted run fails on the hidden images and
    `--wait` names the charge and the robust check; `check --robust` against that server
    reproduces the failure locally at the server's scale and limits."""
    code, plain, _ = _check(models["past_400"], "--timeout", "60", "--memory", "512m")
    assert code == 0, plain
    settings = make_settings(
        tmp_path, sqlite_url, benchmark_dir=large_benchmark, run_memory="512m", run_timeout="120s",
        embedded_worker=True, poll_interval=0.2, bootstrap_resamples=200, hidden_end_grid="0s",
        max_upload_bytes=512 * 1024**2,
    )  # fmt: skip
    app = create_app(settings, migrate_on_start=True)
    with live_server(app) as url:
        token = f.member_token(app.state.csawm.db)
        submitted = CliRunner().invoke(
            cli, ["submit", models["past_400"], "--name", "buffer", "--wait"],
            env={"CSAWM_SERVER_URL": url, "CSAWM_TOKEN": token},
        )  # fmt: skip
        assert submitted.exit_code == 1, submitted.output
        assert "nonzero_exit in hidden" in submitted.stdout
        assert "quota: charged: a failure on the hidden images always uses its quota slot" in submitted.stdout
        assert f"`csawm check {models['past_400']} --robust`" in submitted.stdout
        code, report, err = _check(models["past_400"], "--robust", server=url)
    assert code == 1, (report, err)
    assert report["error_code"] == "nonzero_exit"
    assert report["shape"]["private_images"] == 410 and report["shape"]["height"] == 64
    assert report["shape_source"] == url and report["limits_source"] == url
    assert report["limits"] == {"timeout_s": 120.0, "memory_bytes": 512 * 1024**2, "cpus": 2.0, "gpus": 0}
    assert report["failing_inputs"] == []  # every kind passes alone
    assert "fails only at the full count (410 private + 12 public images)" in str(report["diagnosis"])
    assert "buffer of 400 images is full at private_401.png" in str(report["run"]["log_tail"])


@pytest.mark.docker
def test_a_model_that_crashes_on_a_white_image_fails_robust_naming_the_input(models: dict[str, str]) -> None:
    code, plain, _ = _check(models["white"], "--timeout", "60", "--memory", "512m")
    assert code == 0, plain
    result = CliRunner().invoke(
        cli, ["check", models["white"], "--robust", "--timeout", "300", "--memory", "1g"],
        env={"CSAWM_SERVER_URL": ""},
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert out.startswith("FAILED: at the hidden set's scale (972 images): ")
    shape = "475 private + 497 public images, 632x512 (height x width) 8-bit grey"
    assert f"{shape} (from CSAW-M defaults (no server configured" in out
    assert "limits: 300 s, 1024 MiB, 2 CPUs, 0 GPUs (from this command's options)" in out
    assert "diagnosis: fails on these inputs alone: near_white" in out
    position = extreme_positions(972)
    white = [
        f"private_{n + 1}.png" if n < 475 else f"test_{n - 474}.png"
        for n, k in position.items()
        if k == "near_white"
    ]
    assert f"  near_white ({', '.join(white)}): nonzero_exit, exit code 1" in out
    assert "ZeroDivisionError: no tissue below white" in out


@pytest.mark.docker
def test_a_good_model_passes_robust_at_the_csaw_m_scale(models: dict[str, str]) -> None:
    code, report, err = _check(models["good"], "--robust", "--timeout", "300", "--memory", "1g")
    assert code == 0, (report, err)
    assert report["status"] == "succeeded" and report["failing_inputs"] == []
    assert report["run"]["predictions"] == {"rows": 972, "final_pred": False, "probs": False}
    assert "valid predictions for all 972 images (632x512, 8-bit, every extreme included)" in str(
        report["error_message"]
    )
