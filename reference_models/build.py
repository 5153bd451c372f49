"""Train a reference model inside the torch base image and build its contract image (host side).

    python3 -m reference_models.build --kind multi-hot --benchmark DATASET --steps 400 --resolution 96x78

prints the image tag. From Python::

    tag = build_reference_image("multi-hot", Path("DATASET"), steps=400, resolution=(96, 78))

Training runs as ``docker run --network none`` with only the training labels and images of DATASET
mounted read-only (never the private or public test labels), this package mounted read-only, and a
writable output folder for the weights. The final image is built from a minimal context
(``Dockerfile``) with ``--network none``. Needs only the ``docker`` CLI and the standard library:
no torch on the host.

Images are tagged ``csawm-reference/<kind>:<key>`` where key is a hash of everything that makes the
model (settings, training data bytes, package source, base image id), so a second call with the same
inputs finds the image and returns at once.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from reference_models.rules import ModelKind

DEFAULT_BASE_IMAGE = "csawm-base/torch:bookworm"
"""The offline torch base image (scripts/build-base-images); production passes a CUDA PyTorch image."""
IMAGE_REPOSITORY = "csawm-reference"
CONTAINER_UID = 10001
"""Non-root uid for training containers when the caller is root (the image's USER as well)."""

QUICK_STEPS = 400
QUICK_RESOLUTION = (96, 78)
QUICK_BATCH = 32
"""The short CPU schedule (with the scratch lr defaults of train.py) used by seed-baselines/demo."""

PACKAGE_DIR = Path(__file__).resolve().parent
IMAGE_FILES = (
    "__init__.py",
    "rules.py",
    "runtime.py",
    "data.py",
    "model.py",
    "train.py",
    "predict.py",
    "Dockerfile",
    "README.md",
    "requirements.txt",
)
"""What goes into the image and into the build key (build.py itself is host-only)."""

TRAIN_LABELS = Path("labels/CSAW-M_train.csv")
TRAIN_IMAGES = Path("images/preprocessed/train")
IMAGE_WEIGHTS_DIR = "/opt/csawm/weights"
"""Where the Dockerfile puts the weights (CSAWM_WEIGHTS_DIR in the image)."""
LABEL_PREFIX = "org.csawm.reference"

Log = Callable[[str], None]


class BuildError(RuntimeError):
    """Training or building failed; str() says what and, for a failed container, its last lines."""


@dataclass(frozen=True)
class TrainSettings:
    """What a training run needs besides the data. None for `lr` = train.py's default (1e-3 with
    cosine decay from random init; 1e-6 constant with ImageNet weights)."""

    kind: ModelKind
    steps: int = QUICK_STEPS
    resolution: tuple[int, int] = QUICK_RESOLUTION
    lr: float | None = None
    batch_size: int = QUICK_BATCH
    seed: int = 1
    imagenet_weights: Path | None = None

    def check(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"learning rate must be positive, got {self.lr}")
        if len(self.resolution) != 2 or min(self.resolution) < 16:
            raise ValueError(f"resolution must be (height, width) of at least 16 px, got {self.resolution}")
        if self.imagenet_weights is not None and not self.imagenet_weights.is_file():
            raise ValueError(f"ImageNet weights file not found: {self.imagenet_weights}")

    def train_args(self) -> list[str]:
        args = [
            "--kind",
            self.kind.value,
            "--steps",
            str(self.steps),
            "--batch-size",
            str(self.batch_size),
            "--seeds",
            str(self.seed),
            "--resolution",
            f"{self.resolution[0]}x{self.resolution[1]}",
        ]
        if self.lr is not None:
            args += ["--lr", repr(self.lr)]
        return args


def _stderr_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _docker(args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise BuildError("the docker CLI is not installed (run scripts/ensure-docker)") from None
    if check and result.returncode != 0:
        raise BuildError(f"docker {args[0]} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result


def image_id(ref: str) -> str | None:
    """The local image id (``sha256:...``) of `ref`, or None when no such image exists."""
    result = _docker(["image", "inspect", "--format", "{{.Id}}", ref], check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def _hash_files(digest: hashlib._Hash, paths: Iterable[Path], root: Path) -> None:
    for path in paths:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")


def source_digest() -> str:
    """sha256 over the files that go into the image."""
    digest = hashlib.sha256()
    _hash_files(digest, [PACKAGE_DIR / name for name in IMAGE_FILES], PACKAGE_DIR)
    return digest.hexdigest()


def training_data_digest(benchmark_root: Path) -> str:
    """sha256 over the training labels file and every training image (names and bytes)."""
    labels, images = benchmark_root / TRAIN_LABELS, benchmark_root / TRAIN_IMAGES
    if not labels.is_file():
        raise BuildError(f"training labels not found: {labels}")
    if not images.is_dir():
        raise BuildError(f"training images folder not found: {images}")
    digest = hashlib.sha256()
    _hash_files(digest, [labels, *sorted(p for p in images.iterdir() if p.is_file())], benchmark_root)
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    _hash_files(digest, [path], path.parent)
    return digest.hexdigest()


def _stream(command: list[str], *, name: str, timeout_s: float | None, log: Log) -> None:
    """Run a docker command, forwarding its output to `log`; on failure raise BuildError with the
    tail. On timeout or interrupt the container `name` is removed (which ends the command)."""
    tail: deque[str] = deque(maxlen=30)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            tail.append(line.rstrip())
            log(line.rstrip())

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        code = process.wait(timeout=timeout_s)
    except (subprocess.TimeoutExpired, KeyboardInterrupt) as exc:
        _docker(["rm", "-f", name], check=False)
        process.wait(timeout=60)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise BuildError(f"{name} did not finish within {timeout_s:.0f} s and was removed") from None
    reader.join(timeout=10)
    if code != 0:
        raise BuildError(f"{name} exited with {code}; last lines:\n" + "\n".join(tail))


def train_command(
    settings: TrainSettings,
    benchmark_root: Path,
    out_dir: Path,
    *,
    base_image: str,
    name: str,
    user: str,
    threads: int | None = None,
) -> list[str]:
    """The ``docker run`` command line of a training container (see `train_in_container`).

    Only the training labels file and the training images folder of `benchmark_root` are mounted,
    so the test labels can never reach training. `threads` (torch intra-op threads, default: the
    CPUs the container sees) also caps the container at that many CPUs, so that two trainings side
    by side share the machine instead of thrashing it; it is a resource, not a model setting, and
    is not part of the image key.
    """
    labels, images = benchmark_root / TRAIN_LABELS, benchmark_root / TRAIN_IMAGES
    sandbox = [
        "--rm", "--name", name, "--network", "none", "--read-only", "--tmpfs", "/tmp:rw,size=1g",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--pids-limit", "512",
        "--user", user,
    ]  # fmt: skip
    env = ["HOME=/tmp", "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1", "PYTHONPATH=/opt/csawm"]
    mounts = [
        f"{PACKAGE_DIR}:/opt/csawm/reference_models:ro",
        f"{labels}:/data/{TRAIN_LABELS}:ro",
        f"{images}:/data/{TRAIN_IMAGES}:ro",
        f"{out_dir}:/out",
    ]
    train_args = ["--data-root", "/data", "--out", "/out", *settings.train_args()]
    if threads is not None:
        sandbox += ["--cpus", str(threads)]
        train_args += ["--threads", str(threads)]
    if settings.imagenet_weights is not None:
        mounts.append(f"{settings.imagenet_weights.resolve()}:/weights/imagenet.pth:ro")
        train_args += ["--imagenet-weights", "/weights/imagenet.pth"]
    command = ["docker", "run", *sandbox]
    for item in env:
        command += ["-e", item]
    for mount in mounts:
        command += ["-v", mount]
    return [*command, "--workdir", "/opt/csawm", base_image, "python3", "-m", "reference_models.train",
            *train_args]  # fmt: skip


def train_in_container(
    settings: TrainSettings,
    benchmark_root: Path,
    out_dir: Path,
    *,
    base_image: str = DEFAULT_BASE_IMAGE,
    timeout_s: float | None = None,
    threads: int | None = None,
    log: Log = _stderr_log,
) -> Path:
    """Train one model in `base_image`; returns the run folder holding ``model.pt`` and
    ``config.json`` (``out_dir/seed-<seed>``). `threads`: see `train_command`.

    Sandbox: no network, read-only root filesystem, a private /tmp, no capabilities,
    no-new-privileges, a non-root uid; mounts are the package (ro), the training labels and images
    (ro) and `out_dir` (the only writable path).
    """
    try:
        settings.check()
    except ValueError as exc:
        raise BuildError(str(exc)) from None
    benchmark_root = benchmark_root.resolve()
    if not (benchmark_root / TRAIN_LABELS).is_file() or not (benchmark_root / TRAIN_IMAGES).is_dir():
        raise BuildError(f"{benchmark_root} has no training set ({TRAIN_LABELS} and {TRAIN_IMAGES}/)")
    if image_id(base_image) is None:
        raise BuildError(f"base image {base_image} not found; build it with scripts/build-base-images")
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    if os.getuid() == 0:
        user = f"{CONTAINER_UID}:{CONTAINER_UID}"
        out_dir.chmod(0o777)  # the non-root container user must be able to write the weights
    else:
        user = f"{os.getuid()}:{os.getgid()}"
    name = f"csawm-train-{settings.kind.value}-{uuid.uuid4().hex[:8]}"
    if threads is not None and threads < 1:
        raise BuildError(f"threads must be >= 1, got {threads}")
    command = train_command(
        settings, benchmark_root, out_dir, base_image=base_image, name=name, user=user, threads=threads
    )
    log(f"training {settings.kind.value} in {base_image} (container {name})")
    _stream(command, name=name, timeout_s=timeout_s, log=log)
    run_dir = out_dir / f"seed-{settings.seed}"
    if not (run_dir / "model.pt").is_file():
        raise BuildError(f"training finished but wrote no {run_dir / 'model.pt'}")
    return run_dir


def find_trained_weights(weights_dir: Path, kind: ModelKind) -> Path:
    """The folder with ``model.pt`` + ``config.json`` for `kind`: ``weights_dir/<kind>/``, else
    ``weights_dir`` itself; its config.json must name the same kind."""
    for candidate in (weights_dir / kind.value, weights_dir):
        if (candidate / "model.pt").is_file() and (candidate / "config.json").is_file():
            try:
                recorded = json.loads((candidate / "config.json").read_text()).get("kind")
            except ValueError as exc:
                raise BuildError(f"{candidate / 'config.json'} is not valid JSON: {exc}") from None
            if recorded != kind.value:
                raise BuildError(f"{candidate} holds {recorded!r} weights, not {kind.value!r}")
            return candidate
    raise BuildError(
        f"no trained {kind.value} weights in {weights_dir}: expected model.pt and config.json in "
        f"{weights_dir / kind.value} or {weights_dir}"
    )


def build_image(
    kind: ModelKind,
    weights: Path,
    tag: str,
    *,
    base_image: str = DEFAULT_BASE_IMAGE,
    labels: dict[str, str] | None = None,
    log: Log = _stderr_log,
) -> str:
    """``docker build`` the contract image from a minimal context; returns `tag`."""
    with tempfile.TemporaryDirectory(prefix="csawm-ref-build-") as tmp:
        context = Path(tmp)
        package = context / "reference_models"
        package.mkdir()
        for name in IMAGE_FILES:
            shutil.copyfile(PACKAGE_DIR / name, package / name)
        (context / "weights").mkdir()
        for name in ("model.pt", "config.json"):
            shutil.copyfile(weights / name, context / "weights" / name)
        for path in context.rglob("*"):  # readable by the image's non-root user whatever the umask
            path.chmod(0o755 if path.is_dir() else 0o644)
        command = [
            "docker",
            "build",
            "--network",
            "none",
            "--build-arg",
            f"BASE_IMAGE={base_image}",
            "-f",
            str(package / "Dockerfile"),
            "-t",
            tag,
            "--label",
            f"{LABEL_PREFIX}.kind={kind.value}",
        ]
        for key, value in (labels or {}).items():
            command += ["--label", f"{LABEL_PREFIX}.{key}={value}"]
        log(f"building {tag} from {base_image}")
        _stream([*command, str(context)], name=tag, timeout_s=None, log=log)
    return tag


def copy_weights_from_image(tag: str, dest: Path) -> Path:
    """Copy ``model.pt`` and ``config.json`` out of a built image into `dest` (nothing is run:
    ``docker create`` + ``docker cp``)."""
    name = f"csawm-weights-{uuid.uuid4().hex[:8]}"
    _docker(["create", "--name", name, "--network", "none", tag])
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for file in ("model.pt", "config.json"):
            _docker(["cp", f"{name}:{IMAGE_WEIGHTS_DIR}/{file}", str(dest / file)])
    finally:
        _docker(["rm", "-f", name], check=False)
    return dest


@dataclass(frozen=True)
class ReferencePlan:
    """What `build_reference_image` will do: the tag, and either training `settings` or given
    `trained` weights (exactly one is set)."""

    kind: ModelKind
    tag: str
    settings: TrainSettings | None
    trained: Path | None

    def exists(self) -> bool:
        """Whether the image is already built (then building is a no-op)."""
        return image_id(self.tag) is not None


def plan_reference_image(
    kind: ModelKind | str,
    benchmark_root: Path,
    steps: int = QUICK_STEPS,
    resolution: tuple[int, int] = QUICK_RESOLUTION,
    lr: float | None = None,
    weights_dir: Path | None = None,
    *,
    batch_size: int = QUICK_BATCH,
    seed: int = 1,
    imagenet_weights: Path | None = None,
    base_image: str = DEFAULT_BASE_IMAGE,
) -> ReferencePlan:
    """Check the inputs and compute the image tag (see `build_reference_image` for the parameters).

    The tag is ``csawm-reference/<kind>:<key>``, key = the first 16 hex digits of a sha256 over the
    kind, the training settings and the training data's bytes (or the given weights' bytes), this
    package's image files and the base image id.
    """
    model_kind = kind if isinstance(kind, ModelKind) else ModelKind.parse(kind)
    base_id = image_id(base_image)
    if base_id is None:
        raise BuildError(f"base image {base_image} not found; build it with scripts/build-base-images")
    settings: TrainSettings | None = None
    trained: Path | None = None
    if weights_dir is not None:
        trained = find_trained_weights(weights_dir, model_kind)
        key_parts = {
            "weights": _file_sha256(trained / "model.pt"),
            "config": _file_sha256(trained / "config.json"),
        }
    else:
        height, width = resolution
        settings = TrainSettings(model_kind, steps, (height, width), lr, batch_size, seed, imagenet_weights)
        try:
            settings.check()
        except ValueError as exc:
            raise BuildError(str(exc)) from None
        key_parts = {
            "train": json.dumps(settings.train_args()),
            "imagenet": _file_sha256(imagenet_weights) if imagenet_weights else "",
            "data": training_data_digest(benchmark_root),
        }
    key_parts |= {"kind": model_kind.value, "source": source_digest(), "base": base_id}
    key = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()[:16]
    return ReferencePlan(model_kind, f"{IMAGE_REPOSITORY}/{model_kind.value}:{key}", settings, trained)


def build_reference_image(
    kind: ModelKind | str,
    benchmark_root: Path,
    steps: int = QUICK_STEPS,
    resolution: tuple[int, int] = QUICK_RESOLUTION,
    lr: float | None = None,
    weights_dir: Path | None = None,
    *,
    batch_size: int = QUICK_BATCH,
    seed: int = 1,
    imagenet_weights: Path | None = None,
    base_image: str = DEFAULT_BASE_IMAGE,
    save_weights_to: Path | None = None,
    timeout_s: float | None = None,
    threads: int | None = None,
    log: Log = _stderr_log,
) -> str:
    """Train (unless `weights_dir` holds trained weights) and build one reference image.

    Parameters
    ----------
    kind : ``one-hot`` or ``multi-hot``.
    benchmark_root : dataset root in the CSAW-M layout; only its training set is used.
    steps, resolution, lr, batch_size, seed, imagenet_weights : training settings (see train.py;
        lr None = 1e-3 cosine from random init, 1e-6 constant with ImageNet weights).
    weights_dir : trained weights to bake in instead of training: ``weights_dir/<kind>/`` or
        ``weights_dir`` holding ``model.pt`` and ``config.json`` (as train.py writes them).
    base_image : image with python3 + torch to train in and to build on.
    save_weights_to : also copy the image's weights to ``save_weights_to/<kind>/`` (after training,
        or out of a reused image) so a later call can pass it as `weights_dir`.
    timeout_s : limit for the training container.
    threads : CPU threads (and CPUs) of the training container; default all it sees. Not part of
        the image key.
    log : receives progress lines (default: stderr).

    Returns
    -------
    The image tag ``csawm-reference/<kind>:<key>`` (`plan_reference_image`); an existing image with
    that tag is reused without training.

    Raises
    ------
    BuildError
        Missing base image or training data, bad settings, a failed training run or build.
    """
    plan = plan_reference_image(
        kind,
        benchmark_root,
        steps,
        resolution,
        lr,
        weights_dir,
        batch_size=batch_size,
        seed=seed,
        imagenet_weights=imagenet_weights,
        base_image=base_image,
    )
    if plan.exists():
        log(f"reusing {plan.tag}")
        if save_weights_to is not None:
            copy_weights_from_image(plan.tag, save_weights_to / plan.kind.value)
        return plan.tag
    if plan.trained is not None:
        return build_image(
            plan.kind, plan.trained, plan.tag, base_image=base_image, log=log, labels={"weights": "given"}
        )
    assert plan.settings is not None
    with tempfile.TemporaryDirectory(prefix="csawm-ref-train-") as tmp:
        run_dir = train_in_container(
            plan.settings,
            benchmark_root,
            Path(tmp) / "out",
            base_image=base_image,
            timeout_s=timeout_s,
            threads=threads,
            log=log,
        )
        if save_weights_to is not None:
            kept = save_weights_to / plan.kind.value
            kept.mkdir(parents=True, exist_ok=True)
            for name in ("model.pt", "config.json"):
                shutil.copyfile(run_dir / name, kept / name)
        config = json.loads((run_dir / "config.json").read_text())
        summary = {k: config[k] for k in ("steps", "lr", "schedule", "batch_size", "seed", "init")}
        return build_image(
            plan.kind,
            run_dir,
            plan.tag,
            base_image=base_image,
            log=log,
            labels={
                "config": json.dumps(summary, sort_keys=True),
                "resolution": "x".join(str(v) for v in config["resolution"]),
            },
        )


def _resolution(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"resolution must look like HEIGHTxWIDTH, got {text!r}")
    return int(parts[0]), int(parts[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m reference_models.build",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--kind", required=True, choices=[k.value for k in ModelKind])
    parser.add_argument("--benchmark", type=Path, required=True, help="dataset root (CSAW-M layout)")
    parser.add_argument("--steps", type=int, default=QUICK_STEPS)
    parser.add_argument("--resolution", type=_resolution, default=QUICK_RESOLUTION, help="HxW")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=QUICK_BATCH)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--weights", type=Path, default=None, help="trained weights to bake in (no training)")
    parser.add_argument("--imagenet-weights", type=Path, default=None)
    parser.add_argument("--save-weights", type=Path, default=None)
    parser.add_argument("--base-image", default=DEFAULT_BASE_IMAGE)
    parser.add_argument("--timeout", type=float, default=None, help="seconds for the training container")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of the training container")
    args = parser.parse_args(argv)
    try:
        tag = build_reference_image(
            args.kind,
            args.benchmark,
            args.steps,
            args.resolution,
            args.lr,
            args.weights,
            batch_size=args.batch_size,
            seed=args.seed,
            imagenet_weights=args.imagenet_weights,
            base_image=args.base_image,
            save_weights_to=args.save_weights,
            timeout_s=args.timeout,
            threads=args.threads,
        )
    except (BuildError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
