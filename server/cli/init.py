"""``csawm init DIR [--torch] [--offline|--public]``: write a starter model that passes ``csawm
check`` as generated.

The kit is a folder with a ``Dockerfile``, ``predict.py`` (the contract-v1 entrypoint), a
``method-card.json`` and a ``README.md`` naming the next four commands (build, check, set the
server, submit). Two variants, the same ``predict.py`` on either of two bases:

* plain (default): the placeholder scores the mean brightness of the breast tissue and writes
  ``Filename;Final_score``; python3 with numpy and Pillow;
* ``--torch``: a small CNN whose trained ``state_dict`` goes in ``weights/model.pt``, writing the
  CSAW-M authors' full format (``Prob_bin_1..8``, ``Final_pred``, ``Final_score``).

Bases (`choose_base`, the rule of docs/submitting.md): a public image (``python:3.12-slim`` with
numpy and Pillow from the package index; a PyTorch image) for a researcher whose engine reaches a
registry, or the project's offline Debian images (``csawm-base/*``, built without any registry by
``scripts/build-base-images`` of the server's repository) with ``--offline``. Without either flag
the kit is offline when this machine's engine has the offline base image and not the public one
(a machine without a registry: the project's own), public otherwise.

The templates are the files in ``server/cli/starter/`` (real Python, linted and type-checked with
the project); their ``{{field}}`` placeholders are filled in by `fill`. Existing files are never
overwritten without ``--force``.

Exit codes: 0 written; 2 the folder cannot be used (a file, or it already holds kit files).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Annotated

import typer

from server.cli import fail
from server.submissions.schemas import MethodCard
from server.submissions.starter_card import STARTER_NOTES, STARTER_TRAINING_DATA

IMAGE_VERSION = "1"
_TAG_INVALID = re.compile(r"[^a-z0-9._-]+")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@dataclass(frozen=True)
class Base:
    """The image a kit builds ``FROM``, and what the kit's files say of it."""

    image: str
    contents: str
    install: str  # Dockerfile lines adding what the image lacks; empty when it has everything
    build_flags: str  # of `docker build`: the offline images build with no network at all
    origin: str  # the Dockerfile's comment on where the image comes from
    readme: str  # the README's


@dataclass(frozen=True)
class Variant:
    """One starter kit: its templates, the two bases it builds on and what its README says."""

    offline: Base
    public: Base
    base_target: str  # the argument of scripts/build-base-images that builds `offline.image`
    dockerfile: str
    predict: str
    outputs: str
    architecture: str
    weights_dir: bool


_OFFLINE_ORIGIN = (
    "The default is the project's offline Debian image, built without a registry by "
    "`scripts/build-base-images {target}` (csawm-leaderboard repository); nothing is installed "
    "here, so the build needs no network."
)
_OFFLINE_README = (
    "It is built offline (Debian packages, no container registry) by `scripts/build-base-images "
    "{target}` in the csawm-leaderboard repository (Debian, root); `docker image inspect {image}` "
    "says whether this machine has it. Where a registry is reachable, `csawm init --public` writes "
    "the kit on a public image instead."
)
_PUBLIC_README = (
    "It comes from the public container registry your Docker engine uses; {what}. On a machine "
    "without a registry, `csawm init --offline` writes the kit on the project's offline image."
)


def _offline(target: str, contents: str) -> Base:
    """The project's offline image ``csawm-base/TARGET:bookworm``: nothing to install, no network."""
    image = f"csawm-base/{target}:bookworm"
    origin, readme = _OFFLINE_ORIGIN.format(target=target), _OFFLINE_README.format(target=target, image=image)
    return Base(image, contents, install="", build_flags="--network none ", origin=origin, readme=readme)


PLAIN = Variant(
    offline=_offline("numpy", "Debian bookworm's python3 (3.11) with python3-numpy and python3-pil (Pillow)"),
    public=Base(
        image="python:3.12-slim",
        contents="the official Python 3.12 image (Debian); numpy and Pillow are added by the Dockerfile",
        install="RUN pip install --no-cache-dir numpy pillow\n",
        build_flags="",
        origin="The default is the official Python image; numpy and Pillow come from the package index.",
        readme=_PUBLIC_README.format(what="the build installs numpy and Pillow from the package index"),
    ),
    base_target="numpy",
    dockerfile="Dockerfile.plain",
    predict="predict_plain.py",
    outputs="`Filename;Final_score`",
    architecture="placeholder: mean brightness of the breast tissue (csawm init starter kit)",
    weights_dir=False,
)
TORCH = Variant(
    offline=_offline(
        "torch",
        "Debian bookworm's python3 (3.11) with python3-torch 1.13 (CPU), python3-torchvision, "
        "python3-numpy and python3-pil",
    ),
    public=Base(
        image="pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
        contents="the PyTorch project's CUDA runtime image (python3, torch, torchvision, numpy, Pillow)",
        install="",
        build_flags="",
        origin="The default is the PyTorch project's CUDA runtime image (GPUs and CPUs alike).",
        readme=_PUBLIC_README.format(what="nothing is installed on top of it"),
    ),
    base_target="torch",
    dockerfile="Dockerfile.torch",
    predict="predict_torch.py",
    outputs="`Filename;Prob_bin_1..8;Final_pred;Final_score`",
    architecture="placeholder: a 3-layer CNN with 8 level logits (csawm init --torch starter kit)",
    weights_dir=True,
)


def choose_base(variant: Variant, offline: bool | None) -> Base:
    """`--offline` / `--public` when given; otherwise offline exactly when the local engine has the
    offline base image and not the public one (a machine without a registry), public otherwise."""
    if offline is not None:
        return variant.offline if offline else variant.public
    if _has_image(variant.offline.image) is True and _has_image(variant.public.image) is not True:
        return variant.offline
    return variant.public


def image_tag(directory: Path) -> str:
    """A valid Docker image tag from the folder's name: ``My Model`` -> ``my-model:1``."""
    name = _TAG_INVALID.sub("-", directory.resolve().name.lower()).strip("._-")
    return f"{name or 'my-model'}:{IMAGE_VERSION}"


def _template(name: str) -> str:
    return files("server.cli").joinpath("starter", name).read_text(encoding="utf-8")


def fill(text: str, fields: dict[str, str]) -> str:
    """Replace every ``{{name}}`` of `text` by ``fields[name]``; KeyError names a missing field."""
    return _PLACEHOLDER.sub(lambda match: fields[match.group(1)], text)


def method_card(variant: Variant) -> dict[str, object]:
    """The kit's method card; valid for the server's `MethodCard` (every field is optional)."""
    card: dict[str, object] = {
        "architecture": variant.architecture,
        "pretrained_on": "nothing",
        "training_data": STARTER_TRAINING_DATA,
        "external_data": False,
        "input_resolution": "160x128" if variant.weights_dir else "full resolution",
        "notes": STARTER_NOTES,
    }
    MethodCard.model_validate(card)
    return card


def kit_files(directory: str, variant: Variant, base: Base) -> dict[str, str]:
    """Relative path -> content of every file of the kit for `directory` (as the user typed it),
    on `base`."""
    path = Path(directory)
    tag = image_tag(path)
    offline = base == variant.offline
    fields = {
        "name": tag.split(":")[0],
        "tag": tag,
        "dir": shlex.quote(directory),
        "init_flag": (" --torch" if variant.weights_dir else "") + (" --offline" if offline else " --public"),
        "base_image": base.image,
        "base_contents": base.contents,
        "base_origin": base.origin,
        "base_readme": base.readme,
        "install": base.install,
        "build_flags": base.build_flags,
        "build_note": "offline: nothing is downloaded" if offline else "pulls the base image",
        "outputs": variant.outputs,
        "extra_files": (
            "\n| `weights/` | the trained `state_dict` as `model.pt`, copied into the image |"
            if variant.weights_dir
            else ""
        ),
    }
    out = {
        "Dockerfile": fill(_template(variant.dockerfile), fields),
        "predict.py": _template(variant.predict),
        "README.md": fill(_template("README.md"), fields),
        "method-card.json": json.dumps(method_card(variant), indent=2) + "\n",
    }
    if variant.weights_dir:
        out["weights/README.md"] = _template("weights-README.md")
    return out


def write_kit(directory: str, variant: Variant, base: Base, *, force: bool = False) -> list[Path]:
    """Write the kit into `directory` (created if missing); return the files written.

    Raises
    ------
    ValueError
        `directory` is a file, or already holds a file of the kit and `force` is false.
    """
    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise ValueError(f"{directory} exists and is not a folder")
    contents = kit_files(directory, variant, base)
    existing = sorted(rel for rel in contents if (root / rel).exists())
    if existing and not force:
        raise ValueError(
            f"{directory} already holds {', '.join(existing)}; pass --force to overwrite them "
            "or choose a new folder"
        )
    written = []
    for rel, text in contents.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def _has_image(tag: str) -> bool | None:
    """Whether the local Docker engine has `tag`; None when that cannot be asked (no docker CLI)."""
    if shutil.which("docker") is None:
        return None
    try:
        proc = subprocess.run(
            ["docker", "image", "inspect", tag], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.returncode == 0


def init(
    directory: Annotated[str, typer.Argument(help="Folder to write the kit into (created if missing).")],
    torch: Annotated[bool, typer.Option("--torch", help="A PyTorch model (torch, numpy, Pillow).")] = False,
    offline: Annotated[
        bool | None,
        typer.Option(
            "--offline/--public",
            help="Build on the project's offline base image (csawm-base/*, no registry needed) or on a "
            "public image. Default: offline when this engine has the offline image and not the public one.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the kit's files if present.")] = False,
) -> None:
    """Write a starter model (Dockerfile, predict.py, method card, README) that passes `csawm check`."""
    variant = TORCH if torch else PLAIN
    base = choose_base(variant, offline)
    try:
        written = write_kit(directory, variant, base, force=force)
    except (ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    tag = image_tag(Path(directory))
    quoted = shlex.quote(directory)
    typer.echo(f"wrote {', '.join(str(p) for p in written)}")
    typer.echo(f"base image: {base.image} ({'offline' if base == variant.offline else 'public'})")
    if base == variant.offline and _has_image(base.image) is False:
        typer.echo(
            f"note: the base image {base.image} is not on this machine; build it with "
            f"`scripts/build-base-images {variant.base_target}` (csawm-leaderboard repository), "
            "or run `csawm init --public` where a registry is reachable"
        )
    typer.echo(
        "next:\n"
        f"  docker build {base.build_flags}-t {tag} {quoted}\n"
        f"  csawm check {tag}\n"
        f"  csawm submit {tag} --name {tag.split(':')[0]} --method-card {quoted}/method-card.json --wait"
    )
