"""A remote worker's inputs, built from the images alone (`server.worker.inputs.ImagesOnly`), are
what the server's own worker mounts from the benchmark with its labels (`EvaluationSet`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from server.worker.evaluation import EvaluationSet, NoPublicTestSet
from server.worker.inputs import ImagesOnly


def _tree(folder: Path) -> dict[str, bytes | frozenset[str]]:
    """Every file's bytes; the manifest as the set of its rows (the worker lists the images by
    name, the server in its label file's order: predictions are matched by name)."""
    tree: dict[str, bytes | frozenset[str]] = {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }
    tree["manifest.csv"] = frozenset((folder / "manifest.csv").read_text().splitlines())
    return tree


@pytest.mark.parametrize("fixture", ["synthetic_benchmark", "private_only_benchmark"])
def test_images_only_inputs_equal_the_labelled_ones(
    tmp_path: Path, fixture: str, request: pytest.FixtureRequest
) -> None:
    bench: Path = request.getfixturevalue(fixture)
    labelled = EvaluationSet.prepare(bench, tmp_path / "server", 4)
    # the worker's copy has no label file at all
    copy = tmp_path / "custodian"
    shutil.copytree(bench / "images", copy / "images")
    images = ImagesOnly.prepare(copy, tmp_path / "worker", 4)
    for test_set in ("private", "public"):
        try:
            want, want_name = labelled.hidden_input_for(test_set)
        except NoPublicTestSet:
            with pytest.raises(NoPublicTestSet):
                images.hidden_input_for(test_set)
            continue
        got, got_name = images.hidden_input_for(test_set)
        assert got_name == want_name
        assert _tree(got) == _tree(want)
    assert images.preflight_filenames == labelled.preflight_filenames
    assert images.preflight_source == labelled.preflight_source
    assert _tree(images.preflight_input) == _tree(labelled.preflight_input)
    with pytest.raises(ValueError):
        images.hidden_input_for("training")


def test_images_only_refuses_a_folder_without_hidden_images(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ImagesOnly.prepare(tmp_path, tmp_path / "worker", 4)
