"""Building the reference images: train in the torch base image, build, run under the production
sandbox (runner.docker_backend.DockerRunner) on a synthetic benchmark, validate with the server's
predictions reader. Issue 6, parts 2 and 3.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from reference_models.build import (
    DEFAULT_BASE_IMAGE,
    PACKAGE_DIR,
    BuildError,
    TrainSettings,
    build_reference_image,
    find_trained_weights,
    image_id,
    plan_reference_image,
    train_command,
)
from reference_models.rules import ModelKind
from runner.docker_backend import DockerRunner
from runner.io_contract import prepare_input
from runner.spec import RunSpec, TerminalState
from server.scoring.labels import read_labels
from server.scoring.predictions import read_predictions

RESOLUTION = (64, 52)


def _settings(kind: ModelKind = ModelKind.ONE_HOT) -> TrainSettings:
    return TrainSettings(kind, steps=2, resolution=RESOLUTION, batch_size=8)


# --- host-only checks (no engine needed) -------------------------------------------------------


def test_training_container_sees_only_the_training_set(tmp_path: Path) -> None:
    root = tmp_path / "bench"
    command = train_command(
        _settings(), root, tmp_path / "out", base_image="base", name="n", user="10001:10001"
    )
    mounts = [command[i + 1] for i, arg in enumerate(command) if arg == "-v"]
    sources = [m.split(":")[0] for m in mounts]
    assert sources == [  # nothing else of the benchmark root (test labels, private images) is mounted
        str(PACKAGE_DIR),
        f"{root}/labels/CSAW-M_train.csv",
        f"{root}/images/preprocessed/train",
        str(tmp_path / "out"),
    ]
    assert [m.endswith(":ro") for m in mounts] == [True, True, True, False]  # only /out is writable
    flags = " ".join(command)
    for flag in ("--network none", "--read-only", "--cap-drop ALL", "--user 10001:10001"):
        assert flag in flags


def test_train_arguments_carry_the_settings() -> None:
    args = TrainSettings(
        ModelKind.MULTI_HOT, steps=400, resolution=(96, 78), lr=3e-4, batch_size=32
    ).train_args()
    assert args == ["--kind", "multi-hot", "--steps", "400", "--batch-size", "32", "--seeds", "1",
                    "--resolution", "96x78", "--lr", "0.0003"]  # fmt: skip


def test_threads_cap_the_training_container_but_not_the_image_key(tmp_path: Path) -> None:
    """Issue 10: the demo trains both models side by side with one thread each; the thread count
    is a resource (``--cpus`` and train.py's ``--threads``), never part of the model's settings."""
    root = tmp_path / "bench"
    common = {"base_image": "base", "name": "n", "user": "1:1"}
    default = train_command(_settings(), root, tmp_path / "out", **common)
    single = train_command(_settings(), root, tmp_path / "out", threads=1, **common)
    assert "--cpus" not in default and "--threads" not in default
    image = single.index("base")
    assert single[single.index("--cpus") + 1] == "1" and single.index("--cpus") < image
    assert single[single.index("--threads") + 1] == "1" and single.index("--threads") > image
    assert default[default.index("--kind") :] == _settings().train_args()
    assert "--threads" not in _settings().train_args()


def test_given_weights_must_match_the_kind(tmp_path: Path) -> None:
    run = tmp_path / "one-hot"
    run.mkdir()
    (run / "model.pt").write_bytes(b"x")
    (run / "config.json").write_text(json.dumps({"kind": "multi-hot"}))
    with pytest.raises(BuildError, match="holds 'multi-hot' weights, not 'one-hot'"):
        find_trained_weights(tmp_path, ModelKind.ONE_HOT)
    with pytest.raises(BuildError, match="no trained multi-hot weights"):
        find_trained_weights(tmp_path, ModelKind.MULTI_HOT)


# --- with the Docker engine --------------------------------------------------------------------


@pytest.fixture(scope="module")
def built_images(
    synthetic_benchmark: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """Both reference images trained 2 steps at 64x52; removed afterwards unless they existed."""
    if image_id(DEFAULT_BASE_IMAGE) is None:
        pytest.fail(f"{DEFAULT_BASE_IMAGE} is missing: build it with scripts/build-base-images torch")
    weights = tmp_path_factory.mktemp("weights")
    tags: dict[str, str] = {}
    fresh: list[str] = []
    for kind in ModelKind:
        plan = plan_reference_image(kind, synthetic_benchmark, 2, RESOLUTION, batch_size=8)
        if not plan.exists():
            fresh.append(plan.tag)
        tags[kind.value] = build_reference_image(
            kind, synthetic_benchmark, 2, RESOLUTION, batch_size=8, save_weights_to=weights, timeout_s=600
        )
    tags["weights"] = str(weights)
    yield tags
    for tag in fresh:
        subprocess.run(["docker", "rmi", tag], capture_output=True, check=False)


@pytest.mark.docker
def test_images_follow_the_dockerfile_contract(built_images: dict[str, str]) -> None:
    for kind in ModelKind:
        inspected = subprocess.run(["docker", "image", "inspect", built_images[kind.value]],
                                   capture_output=True, text=True, check=True)  # fmt: skip
        config = json.loads(inspected.stdout)[0]["Config"]
        assert config["User"] not in ("", "0", "root") and not config["User"].startswith("0:")
        assert config["Entrypoint"] == ["python3", "-m", "reference_models.predict"]
        assert "PYTHONUNBUFFERED=1" in config["Env"]
        assert config["Labels"]["org.csawm.reference.kind"] == kind.value
        assert json.loads(config["Labels"]["org.csawm.reference.config"])["steps"] == 2


@pytest.mark.docker
def test_images_predict_the_private_set_in_the_sandbox(
    built_images: dict[str, str], synthetic_benchmark: Path, tmp_path: Path
) -> None:
    labels = read_labels(synthetic_benchmark / "labels" / "CSAW-M_test_private.csv")
    images = [synthetic_benchmark / "images" / "preprocessed" / "private" / name for name in labels.filenames]
    runner = DockerRunner()
    for kind in ModelKind:
        input_dir, output_dir = tmp_path / f"{kind.value}-in", tmp_path / f"{kind.value}-out"
        prepare_input(input_dir, images)
        output_dir.mkdir()
        spec = RunSpec(run_id=f"reftest-{kind.value}-{os.getpid()}", image=built_images[kind.value],
                       input_dir=input_dir, output_dir=output_dir)  # fmt: skip
        handle = runner.start(spec)
        result = runner.wait(handle, spec)
        runner.cleanup(handle)
        assert result.state is TerminalState.SUCCEEDED, f"{kind.value}: {result.message}\n{result.log_tail}"
        assert result.predictions is not None
        assert result.predictions.splitlines()[0] == (
            b"Filename;Prob_bin_1;Prob_bin_2;Prob_bin_3;Prob_bin_4;Prob_bin_5;Prob_bin_6;Prob_bin_7;"
            b"Prob_bin_8;Final_pred;Final_score"
        )
        predictions = read_predictions(result.predictions, expected=labels.filenames)
        assert predictions.probs is not None and predictions.final_pred is not None
        assert np.all((predictions.final_score >= 0) & (predictions.final_score <= 1))
        np.testing.assert_allclose(predictions.probs.sum(axis=1), 1.0, atol=1e-6)
        assert np.ptp(predictions.final_score) > 0  # a trained net is not constant


@pytest.mark.docker
def test_rebuild_with_same_inputs_reuses_the_image(
    built_images: dict[str, str], synthetic_benchmark: Path
) -> None:
    lines: list[str] = []
    tag = build_reference_image("one-hot", synthetic_benchmark, 2, RESOLUTION, batch_size=8, log=lines.append)
    assert tag == built_images["one-hot"]
    assert lines == [f"reusing {tag}"]
    other = plan_reference_image("one-hot", synthetic_benchmark, 3, RESOLUTION, batch_size=8)
    assert other.tag != tag  # a different step count is a different model


@pytest.mark.docker
def test_given_weights_are_baked_without_training(
    built_images: dict[str, str], synthetic_benchmark: Path
) -> None:
    weights = Path(built_images["weights"])
    lines: list[str] = []
    tag = build_reference_image("multi-hot", synthetic_benchmark, weights_dir=weights, log=lines.append)
    try:
        assert not any(line.startswith("training") for line in lines)
        assert tag != built_images["multi-hot"]
        inspect = ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", tag]
        labels = json.loads(subprocess.run(inspect, capture_output=True, text=True, check=True).stdout)
        assert labels["org.csawm.reference.weights"] == "given"
    finally:
        subprocess.run(["docker", "rmi", tag], capture_output=True, check=False)


@pytest.mark.docker
def test_missing_base_image_and_training_set_are_named(synthetic_benchmark: Path, tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="base image csawm-base/absent:none not found"):
        build_reference_image(
            "one-hot", synthetic_benchmark, 2, RESOLUTION, base_image="csawm-base/absent:none"
        )
    with pytest.raises(BuildError, match="training labels not found"):
        build_reference_image("one-hot", tmp_path, 2, RESOLUTION)
