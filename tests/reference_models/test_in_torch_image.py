"""Runs ``torch_checks.py`` inside the torch base image (Debian's torch 1.13), one container per
test class, with the repository mounted read-only and the training sandbox's flags.

The host virtualenv has no torch (CI does not install it), so this is where model shapes, ImageNet
loading, targets, a 2-step training run and the ``predict`` entrypoint are tested.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from reference_models.build import DEFAULT_BASE_IMAGE, image_id

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
CHECKS = Path(__file__).with_name("torch_checks.py")


def check_classes() -> list[str]:
    """The unittest classes of torch_checks.py, found without importing it (it needs torch)."""
    tree = ast.parse(CHECKS.read_text())
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef) and any(getattr(b, "attr", "") == "TestCase" for b in node.bases)
    ]


@pytest.fixture(scope="module")
def torch_image() -> str:
    if image_id(DEFAULT_BASE_IMAGE) is None:
        pytest.fail(f"{DEFAULT_BASE_IMAGE} is missing: build it with scripts/build-base-images torch")
    return DEFAULT_BASE_IMAGE


def test_every_check_class_is_collected() -> None:
    assert set(check_classes()) >= {"ModelTests", "TargetTests", "DataTests", "TrainPredictTests"}


@pytest.mark.parametrize("test_class", check_classes())
def test_torch_checks_in_base_image(torch_image: str, test_class: str) -> None:
    command = [
        "docker", "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp:rw,size=512m",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--user", "10001:10001",
        "-e", "HOME=/tmp", "-e", "PYTHONDONTWRITEBYTECODE=1", "-e", "PYTHONPATH=/src",
        "-v", f"{REPO}:/src:ro", "--workdir", "/src", torch_image,
        "python3", "tests/reference_models/torch_checks.py", "-v", test_class,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"{test_class} failed in {torch_image}:\n{result.stderr[-6000:]}"
    assert "OK" in result.stderr.splitlines()[-1], result.stderr[-2000:]
