"""``csawm init DIR [--torch]`` (issue 10 item 3): a starter kit that passes ``csawm check`` as generated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from typer.testing import CliRunner

from runner.io_contract import prepare_input
from server.cli import init as init_module
from server.cli.init import PLAIN, TORCH, image_tag
from server.cli.main import app
from server.scoring.predictions import read_predictions
from server.submissions.schemas import MethodCard

REPO = Path(__file__).resolve().parents[3]


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("flags", [(), ("--torch",)], ids=["plain", "torch"])
def test_init_writes_a_kit_with_a_valid_method_card(tmp_path: Path, flags: tuple[str, ...]) -> None:
    kit = tmp_path / "My Model"
    code, out, err = invoke("init", str(kit), *flags, "--offline")
    assert code == 0, err
    variant = TORCH if flags else PLAIN
    expected = {"Dockerfile", "predict.py", "README.md", "method-card.json"}
    if flags:
        expected.add("weights/README.md")
    written = {str(p.relative_to(kit)) for p in kit.rglob("*") if p.is_file()}
    assert written == expected
    dockerfile = (kit / "Dockerfile").read_text()
    assert f"ARG BASE_IMAGE={variant.offline.image}" in dockerfile
    assert "USER 10001:10001" in dockerfile
    assert 'ENTRYPOINT ["python3", "/opt/model/predict.py"]' in dockerfile
    assert "{{" not in dockerfile and "{{" not in (kit / "README.md").read_text()
    MethodCard.model_validate_json((kit / "method-card.json").read_text())
    assert image_tag(kit) == "my-model:1"
    readme = (kit / "README.md").read_text()
    assert "docker build --network none -t my-model:1" in readme and variant.offline.image in readme
    assert "csawm submit my-model:1" in out and "--method-card" in out


@pytest.mark.parametrize("flags", [(), ("--torch",)], ids=["plain", "torch"])
def test_public_kit_builds_on_a_public_image_with_the_same_predict(
    tmp_path: Path, flags: tuple[str, ...]
) -> None:
    variant = TORCH if flags else PLAIN
    code, out, err = invoke("init", str(tmp_path / "pub"), *flags, "--public")
    assert code == 0, err
    assert invoke("init", str(tmp_path / "off"), *flags, "--offline")[0] == 0
    dockerfile = (tmp_path / "pub" / "Dockerfile").read_text()
    assert f"ARG BASE_IMAGE={variant.public.image}" in dockerfile and "csawm-base" not in dockerfile
    assert ("RUN pip install --no-cache-dir numpy pillow" in dockerfile) is not bool(flags)
    assert (tmp_path / "pub" / "predict.py").read_bytes() == (tmp_path / "off" / "predict.py").read_bytes()
    readme = (tmp_path / "pub" / "README.md").read_text()
    assert "docker build -t pub:1" in readme and "--network none" not in readme
    assert "csawm init --offline" in readme  # the way back for a machine without a registry
    assert "docker build -t pub:1" in out and f"base image: {variant.public.image} (public)" in out


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        (set(), "public"),  # nothing local: a researcher's engine pulls the public image
        ({"csawm-base/numpy:bookworm"}, "offline"),  # the project's machines: no registry
        ({"csawm-base/numpy:bookworm", "python:3.12-slim"}, "public"),
        (None, "public"),  # no docker CLI to ask
    ],
)
def test_without_a_flag_the_kit_is_offline_only_where_the_offline_image_alone_is_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local: set[str] | None, expected: str
) -> None:
    monkeypatch.setattr(init_module, "_has_image", lambda tag: None if local is None else tag in local)
    code, out, err = invoke("init", str(tmp_path / "kit"))
    assert code == 0, err
    base = PLAIN.offline if expected == "offline" else PLAIN.public
    assert f"base image: {base.image} ({expected})" in out
    assert f"ARG BASE_IMAGE={base.image}" in (tmp_path / "kit" / "Dockerfile").read_text()


def test_init_refuses_to_overwrite_and_names_the_files(tmp_path: Path) -> None:
    kit = tmp_path / "kit"
    assert invoke("init", str(kit))[0] == 0
    (kit / "predict.py").write_text("# mine\n")
    code, _, err = invoke("init", str(kit))
    assert code == 2
    assert err.count("\n") == 1 and "already holds Dockerfile" in err and "--force" in err
    assert (kit / "predict.py").read_text() == "# mine\n"
    code, _, err = invoke("init", str(kit), "--force")
    assert code == 0, err
    assert "def score_image" in (kit / "predict.py").read_text()
    (tmp_path / "a-file").write_text("x")
    code, _, err = invoke("init", str(tmp_path / "a-file"))
    assert code == 2 and "is not a folder" in err


def test_plain_predict_writes_valid_predictions_on_the_host(
    tmp_path: Path, synthetic_benchmark: Path
) -> None:
    """The plain template needs only numpy and Pillow, which the server's venv has too."""
    kit = tmp_path / "kit"
    assert invoke("init", str(kit))[0] == 0
    images = sorted((synthetic_benchmark / "images" / "preprocessed" / "private").glob("*.png"))[:12]
    prepare_input(tmp_path / "input", images)
    (tmp_path / "output").mkdir()
    env = {
        **os.environ,
        "CSAWM_INPUT_DIR": str(tmp_path / "input"),
        "CSAWM_OUTPUT_DIR": str(tmp_path / "output"),
    }
    proc = subprocess.run(
        [sys.executable, str(kit / "predict.py")], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("scored 12 images")
    written = (tmp_path / "output" / "predictions.csv").read_bytes()
    preds = read_predictions(written, expected=[p.name for p in images])
    assert len(set(preds.final_score.tolist())) > 1  # a score per image, not a constant


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


def _ensure_base(client: docker.DockerClient, image: str, target: str) -> None:
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        subprocess.run([str(REPO / "scripts" / "build-base-images"), target], check=True)


@pytest.mark.docker
@pytest.mark.timeout(900)
@pytest.mark.parametrize("flags", [(), ("--torch",)], ids=["plain", "torch"])
def test_generated_kit_builds_offline_and_passes_csawm_check(
    tmp_path: Path, engine: docker.DockerClient, flags: tuple[str, ...]
) -> None:
    variant = TORCH if flags else PLAIN
    _ensure_base(engine, variant.offline.image, variant.base_target)
    kit = tmp_path / f"csawm-init-test-{os.getpid()}-{variant.base_target}"
    assert invoke("init", str(kit), *flags, "--offline")[0] == 0
    tag = image_tag(kit)
    # Exactly the README's build command.
    build = subprocess.run(
        ["docker", "build", "--network", "none", "-t", tag, str(kit)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    try:
        code, out, _ = invoke("check", tag, "--json")
        report = json.loads(out)
        assert code == 0, report
        assert report["status"] == "succeeded" and report["error_code"] is None
        assert report["predictions"]["rows"] == 8
        assert report["predictions"]["probs"] is bool(flags)  # the torch kit writes the authors' format
        assert report["predictions"]["final_pred"] is bool(flags)
    finally:
        engine.images.remove(tag, force=True)
