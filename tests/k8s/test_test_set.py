"""Test-set consistency (issue 13 item 5): the operator's load step, the ``MANIFEST.sha256`` stamp,
and the worker's checks for both backends (`server.worker.test_set`). Pure files, no engine."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from server.worker.evaluation import EvaluationSet
from server.worker.test_set import (
    STAMP_FILE,
    Stamp,
    TestSetMismatch,
    input_digest,
    load_volume,
    main,
    verify,
    verify_materialised,
    verify_stamp,
)

N_PREFLIGHT = 4


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, synthetic_benchmark: Path) -> tuple[Path, EvaluationSet]:
    """A volume written by the load step, and the evaluation set a worker prepares for itself."""
    volume = tmp_path_factory.mktemp("volume")
    load_volume(synthetic_benchmark, volume, N_PREFLIGHT)
    evaluation = EvaluationSet.prepare(synthetic_benchmark, tmp_path_factory.mktemp("worker"), N_PREFLIGHT)
    return volume, evaluation


def test_load_step_writes_the_inputs_and_a_stamp_the_worker_accepts(
    loaded: tuple[Path, EvaluationSet],
) -> None:
    volume, evaluation = loaded
    stamp = Stamp.parse((volume / STAMP_FILE).read_text())
    assert stamp.test_set == evaluation.manifest_digest and stamp.public == evaluation.public_manifest_digest
    assert sorted(p.name for p in volume.iterdir()) == [STAMP_FILE, "hidden", "preflight"]  # no labels
    assert len(list((volume / "hidden" / "images").iterdir())) == len(evaluation.hidden_filenames)
    verify(False, Path("/unused"), volume / STAMP_FILE, evaluation)


@pytest.mark.parametrize(
    ("line", "replacement", "named"),
    [
        (0, "0" * 64 + "  test-set", "test-set"),
        (1, "-  public", "public"),
        (2, "f" * 64 + "  hidden", "hidden"),
        (3, "e" * 64 + "  preflight", "preflight"),
    ],
)
def test_a_stamp_of_another_test_set_is_refused_naming_what_differs(
    loaded: tuple[Path, EvaluationSet], tmp_path: Path, line: int, replacement: str, named: str
) -> None:
    volume, evaluation = loaded
    lines = (volume / STAMP_FILE).read_text().splitlines()
    lines[line] = replacement
    (tmp_path / STAMP_FILE).write_text("\n".join(lines) + "\n")
    with pytest.raises(TestSetMismatch, match=f": {named} differ"):
        verify_stamp(tmp_path / STAMP_FILE, evaluation)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read the test-set stamp"),
        ("", "has no line for test-set, public, hidden, preflight"),
        ("abc test-set\n", "line 1 is not"),
        ("x" * 5000, "larger than"),
    ],
)
def test_a_missing_or_malformed_stamp_blocks(
    loaded: tuple[Path, EvaluationSet], tmp_path: Path, content: str | None, message: str
) -> None:
    if content is not None:
        (tmp_path / STAMP_FILE).write_text(content)
    with pytest.raises(TestSetMismatch, match=message):
        verify_stamp(tmp_path / STAMP_FILE, loaded[1])


def test_kubernetes_without_the_setting_is_not_trusted(loaded: tuple[Path, EvaluationSet]) -> None:
    with pytest.raises(TestSetMismatch, match="CSAWM_K8S_TEST_SET_DIGEST_FILE is not set"):
        verify(False, Path("/unused"), None, loaded[1])


def test_input_digest_sees_one_changed_pixel_file_and_one_missing_image(
    tmp_path: Path, loaded: tuple[Path, EvaluationSet]
) -> None:
    folder = tmp_path / "preflight"
    shutil.copytree(loaded[0] / "preflight", folder)
    before = input_digest(folder)
    image = sorted((folder / "images").iterdir())[0]
    image.write_bytes(image.read_bytes() + b"\0")
    assert input_digest(folder) != before
    image.unlink()
    with pytest.raises(TestSetMismatch, match="missing"):
        input_digest(folder)


def test_docker_checks_the_materialised_copy_against_the_benchmark(
    tmp_path: Path, synthetic_benchmark: Path
) -> None:
    evaluation = EvaluationSet.prepare(synthetic_benchmark, tmp_path, N_PREFLIGHT)
    verify_materialised(synthetic_benchmark, evaluation)  # fresh copy: accepted
    private_image = evaluation.hidden_input / "images" / evaluation.private.filenames[0]
    private_image.chmod(0o644)
    private_image.write_bytes(private_image.read_bytes()[:-1])  # a stale or damaged copy
    with pytest.raises(TestSetMismatch, match="is not the test set"):
        verify(True, synthetic_benchmark, None, evaluation)


def test_load_refuses_a_volume_that_is_not_empty(tmp_path: Path, synthetic_benchmark: Path) -> None:
    (tmp_path / "hidden").mkdir()
    with pytest.raises(FileExistsError, match="load into an empty volume"):
        load_volume(synthetic_benchmark, tmp_path, N_PREFLIGHT)


def test_the_documented_command_prints_the_stamp(
    tmp_path: Path, synthetic_benchmark: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["load", str(synthetic_benchmark), str(tmp_path / "v"), "--preflight-images", "2"]) == 0
    assert capsys.readouterr().out == (tmp_path / "v" / STAMP_FILE).read_text()
