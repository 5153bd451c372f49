"""prepare_input: the /input layout of contract v1."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from runner.io_contract import prepare_input


def images(tmp_path: Path, *names: str) -> list[Path]:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    paths = []
    for name in names:
        (src / name).write_bytes(b"png:" + name.encode())
        (src / name).chmod(0o600)
        paths.append(src / name)
    return paths


def test_layout_and_permissions(tmp_path: Path) -> None:
    inp = tmp_path / "input"
    prepare_input(inp, images(tmp_path, "b.png", "a.png"))
    assert (inp / "manifest.csv").read_text() == "Filename\nb.png\na.png\n"
    assert (inp / "images" / "a.png").read_bytes() == b"png:a.png"
    assert not (inp / "images" / "a.png").is_symlink()
    assert stat.S_IMODE((inp / "images" / "a.png").stat().st_mode) == 0o644  # the sandbox uid reads it


@pytest.mark.parametrize(
    ("names", "match"),
    [
        ((), "no images"),
        (("a,b.png",), "cannot hold"),
        (("semi;colon.png",), "cannot hold"),
    ],
)
def test_bad_names(tmp_path: Path, names: tuple[str, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        prepare_input(tmp_path / "input", images(tmp_path, *names))


def test_duplicate_names_and_second_preparation(tmp_path: Path) -> None:
    a = images(tmp_path, "a.png")
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.png").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"two images share the file name 'a\.png'"):
        prepare_input(tmp_path / "input", [*a, other / "a.png"])
    prepare_input(tmp_path / "input2", a)
    with pytest.raises(ValueError, match="prepared once"):
        prepare_input(tmp_path / "input2", a)


def test_source_must_be_a_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a regular file"):
        prepare_input(tmp_path / "input", [tmp_path / "missing.png"])
