"""Test-set consistency (issue 13 item 5): the operator's load step, the ``MANIFEST.sha256`` stamp,
and the worker's checks for both backends (`server.worker.test_set`). Pure files, no engine.

Issue 19 item 2: the volume gains ``public/``, the public images alone (a development phase's hidden
input), stamped and verified like ``hidden/`` and ``preflight/``; no private image may be in it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from server.benchmark.dataset import Benchmark
from server.benchmark.manifest import sha256_file
from server.worker.evaluation import EvaluationSet
from server.worker.test_set import (
    PUBLIC_DIR,
    STAMP_FILE,
    Stamp,
    TestSetMismatch,
    input_digest,
    load_volume,
    main,
    verify_materialised,
    verify_stamp,
)

N_PREFLIGHT = 4


def verify(
    mounts_local_inputs: bool, benchmark_dir: Path, stamp_file: Path | None, evaluation: EvaluationSet
) -> None:
    """The worker's check for its backend (`server.worker.loop.Worker.prepare_test_set`)."""
    if mounts_local_inputs:
        verify_materialised(benchmark_dir, evaluation)
    else:
        verify_stamp(stamp_file, evaluation)


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
    layout = [STAMP_FILE, "hidden", "preflight", "public"]
    assert sorted(p.name for p in volume.iterdir()) == layout  # no labels
    assert len(list((volume / "hidden" / "images").iterdir())) == len(evaluation.hidden_filenames)
    assert evaluation.public_input is not None
    assert stamp.public_input == input_digest(volume / PUBLIC_DIR) == input_digest(evaluation.public_input)
    verify(False, Path("/unused"), volume / STAMP_FILE, evaluation)


def test_the_public_folder_holds_the_public_images_and_no_private_one(
    loaded: tuple[Path, EvaluationSet], synthetic_benchmark: Path
) -> None:
    """By name and by content: what a development run's model can list and read under /input."""
    volume, evaluation = loaded
    bench = Benchmark.open(synthetic_benchmark)
    public, private = bench.read_public(), bench.read_private()
    assert public is not None and bench.public_images is not None
    folder = volume / PUBLIC_DIR
    on_disk = {p.name for p in (folder / "images").iterdir()}
    assert on_disk == set(public.filenames) and on_disk.isdisjoint(private.filenames)
    assert (folder / "manifest.csv").read_text().splitlines() == ["Filename", *public.filenames]
    contents = {sha256_file(p) for p in (folder / "images").iterdir()}
    assert contents == {sha256_file(bench.public_images / n) for n in public.filenames}
    assert contents.isdisjoint(sha256_file(bench.private_images / n) for n in private.filenames)
    # the development view mounts exactly that folder's content, and counts no private image
    dev = evaluation.scored_on("public")
    assert dev.hidden_input_name == PUBLIC_DIR and dev.hidden_private_images == 0
    assert dev.hidden_filenames == public.filenames
    assert input_digest(dev.hidden_input) == input_digest(folder)


def test_a_benchmark_without_a_public_set_has_no_public_folder(
    tmp_path: Path, private_only_benchmark: Path
) -> None:
    stamp = load_volume(private_only_benchmark, tmp_path / "v", N_PREFLIGHT)
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == [STAMP_FILE, "hidden", "preflight"]
    assert stamp.public is None and stamp.public_input is None
    assert "-  public-input" in (tmp_path / "v" / STAMP_FILE).read_text().splitlines()
    evaluation = EvaluationSet.prepare(private_only_benchmark, tmp_path / "worker", N_PREFLIGHT)
    verify(False, Path("/unused"), tmp_path / "v" / STAMP_FILE, evaluation)
    verify(True, private_only_benchmark, None, evaluation)


@pytest.mark.parametrize(
    ("line", "replacement", "named"),
    [
        (0, "0" * 64 + "  test-set", "test-set"),
        (1, "-  public", "public"),
        (2, "f" * 64 + "  hidden", "hidden"),
        (3, "e" * 64 + "  preflight", "preflight"),
        (4, "d" * 64 + "  public-input", "public-input"),
        (4, "-  public-input", "public-input"),
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
        ("", "has no line for test-set, public, hidden, preflight, public-input"),
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


def test_a_stamp_from_before_the_public_folder_asks_for_a_reload(
    loaded: tuple[Path, EvaluationSet], tmp_path: Path
) -> None:
    """A volume loaded before issue 19 has no public/ for development runs: refused, never guessed."""
    lines = (loaded[0] / STAMP_FILE).read_text().splitlines()
    (tmp_path / STAMP_FILE).write_text("\n".join(lines[:4]) + "\n")
    with pytest.raises(TestSetMismatch, match=r"no line for public-input .*reload it into an empty volume"):
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


def test_input_digest_refuses_a_file_the_manifest_does_not_list(
    tmp_path: Path, loaded: tuple[Path, EvaluationSet]
) -> None:
    """A private image slipped into public/ would be mounted (a model lists the folder): refused."""
    volume, evaluation = loaded
    folder = tmp_path / PUBLIC_DIR
    shutil.copytree(volume / PUBLIC_DIR, folder)
    shutil.copy(volume / "hidden" / "images" / evaluation.private.filenames[0], folder / "images")
    with pytest.raises(TestSetMismatch, match=r"1 file.* not listed in manifest\.csv"):
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


@pytest.mark.parametrize("tamper", ["extra private image", "listed private image", "changed public image"])
def test_docker_checks_the_public_input_holds_only_the_public_set(
    tmp_path: Path, synthetic_benchmark: Path, tamper: str
) -> None:
    """The development phases' hidden input on the Docker runner: exactly the public images."""
    evaluation = EvaluationSet.prepare(synthetic_benchmark, tmp_path, N_PREFLIGHT)
    folder = evaluation.public_input
    assert folder is not None
    folder.chmod(0o755)
    (folder / "images").chmod(0o755)
    private = evaluation.hidden_input / "images" / evaluation.private.filenames[0]
    if tamper == "extra private image":
        shutil.copy(private, folder / "images")
        message = "not listed in manifest.csv"
    elif tamper == "listed private image":
        manifest = folder / "manifest.csv"
        manifest.chmod(0o644)
        manifest.write_text(manifest.read_text() + private.name + "\n")
        shutil.copy(private, folder / "images")
        message = "lists 65 images, not the 64"
    else:
        image = folder / "images" / evaluation.public.filenames[0]  # type: ignore[union-attr]
        image.chmod(0o644)
        image.write_bytes(private.read_bytes())  # a private image's bytes under a public name
        message = "not the benchmark's public set"
    with pytest.raises(TestSetMismatch, match=message):
        verify(True, synthetic_benchmark, None, evaluation)


@pytest.mark.parametrize("existing", ["hidden", PUBLIC_DIR])
def test_load_refuses_a_volume_that_is_not_empty(
    tmp_path: Path, synthetic_benchmark: Path, existing: str
) -> None:
    (tmp_path / existing).mkdir()
    with pytest.raises(FileExistsError, match="load into an empty volume"):
        load_volume(synthetic_benchmark, tmp_path, N_PREFLIGHT)


def test_the_documented_command_prints_the_stamp(
    tmp_path: Path, synthetic_benchmark: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["load", str(synthetic_benchmark), str(tmp_path / "v"), "--preflight-images", "2"]) == 0
    assert capsys.readouterr().out == (tmp_path / "v" / STAMP_FILE).read_text()
