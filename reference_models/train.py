"""Train a reference model on a CSAW-M training set.

    python3 -m reference_models.train --kind multi-hot --data-root DATASET --out runs/multi-hot

DATASET is a root in the CSAW-M layout; only ``labels/CSAW-M_train.csv`` and
``images/preprocessed/train/`` are read. Each seed writes ``OUT/seed-<s>/model.pt`` (a state dict)
and ``OUT/seed-<s>/config.json`` (what ``predict`` needs plus how the run was made).

Defaults are the authors' settings: 632x512 input, flips + rotation +-10 deg + brightness/contrast
0.2, Adam lr 1e-6 constant, batch 64, 5,400 steps, seeds 1..5, ImageNet-initialised backbone.
Without ``--imagenet-weights`` the backbone starts at random and lr 1e-6 does not learn; the default
then becomes the *scratch schedule*: Adam lr 1e-3 with cosine decay to 0 over the run (see README).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from reference_models.data import (
    PAPER_RESOLUTION,
    ImageDataset,
    fits_in_cache,
    parse_resolution,
    read_train_labels,
    train_transform,
)
from reference_models.model import ReferenceNet, build_model
from reference_models.rules import ModelKind, multi_hot_targets
from reference_models.runtime import configure_threads, pick_device

PAPER_LR = 1e-6
"""The authors' Adam learning rate (constant), meant for an ImageNet-initialised backbone."""
SCRATCH_LR = 1e-3
"""Peak learning rate of the scratch schedule (random init, cosine decay)."""
PAPER_STEPS = 5400
PAPER_BATCH = 64
PAPER_SEEDS = (1, 2, 3, 4, 5)
SCHEDULES = ("constant", "cosine")

TRAIN_LABELS = Path("labels/CSAW-M_train.csv")
TRAIN_IMAGES = Path("images/preprocessed/train")


@dataclass(frozen=True)
class TrainConfig:
    """One training run. `lr` and `schedule` None mean: the paper's with ImageNet weights, the
    scratch schedule without."""

    kind: ModelKind
    data_root: Path
    out_dir: Path
    steps: int = PAPER_STEPS
    batch_size: int = PAPER_BATCH
    lr: float | None = None
    schedule: str | None = None
    seed: int = 1
    resolution: tuple[int, int] = PAPER_RESOLUTION
    imagenet_weights: Path | None = None
    augment: bool = True
    device: str | None = None
    threads: int | None = None
    log_every: int = 25
    extra: dict[str, str] = field(default_factory=dict)

    def resolved_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        return PAPER_LR if self.imagenet_weights is not None else SCRATCH_LR

    def resolved_schedule(self) -> str:
        if self.schedule is not None:
            return self.schedule
        return "constant" if self.imagenet_weights is not None else "cosine"

    def check(self) -> None:
        """ValueError naming the first bad setting."""
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if not (self.resolved_lr() > 0 and math.isfinite(self.resolved_lr())):
            raise ValueError(f"learning rate must be a positive number, got {self.lr}")
        if self.resolved_schedule() not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")


def lr_factor(schedule: str, step: int, total: int) -> float:
    """Multiplier of the peak lr before optimiser step `step` (0-based) of `total`.

    constant: 1. cosine: 0.5 * (1 + cos(pi * step / total)), from 1 down towards 0.
    """
    if schedule == "constant":
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * step / total))


def loss_function(kind: ModelKind) -> nn.Module:
    """Cross-entropy over 8 classes (one-hot) or BCE-with-logits over 7 heads (multi-hot)."""
    return nn.CrossEntropyLoss() if kind is ModelKind.ONE_HOT else nn.BCEWithLogitsLoss()


def targets_for(kind: ModelKind, levels: torch.Tensor) -> torch.Tensor:
    """0-based levels -> class indices (one-hot) or cumulative 0/1 targets (multi-hot)."""
    if kind is ModelKind.ONE_HOT:
        return levels.long()
    return torch.from_numpy(multi_hot_targets(levels.numpy().astype(np.int64)))


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def _batches(loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    while True:
        yield from loader


def train(config: TrainConfig, log: bool = True) -> Path:
    """Run one training run; returns the directory holding ``model.pt`` and ``config.json``."""
    config.check()
    labels_path = config.data_root / TRAIN_LABELS
    images_dir = config.data_root / TRAIN_IMAGES
    labels = read_train_labels(labels_path)
    if not images_dir.is_dir():
        raise ValueError(f"training images folder not found: {images_dir}")
    generator = seed_everything(config.seed)
    threads = configure_threads(config.threads)
    device = pick_device(config.device)
    dataset = ImageDataset(
        images_dir,
        labels.filenames,
        labels.levels,
        config.resolution,
        train_transform(config.augment),
        cache=fits_in_cache(len(labels.filenames), config.resolution),
    )
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=RandomSampler(dataset, generator=generator),
        drop_last=len(dataset) >= config.batch_size,
        num_workers=0,
    )
    model: ReferenceNet = build_model(config.kind, config.imagenet_weights).to(device)
    model.train()
    lr, schedule = config.resolved_lr(), config.resolved_schedule()
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    criterion = loss_function(config.kind)
    if log:
        print(
            f"training {config.kind.value}: {len(dataset)} images at "
            f"{config.resolution[0]}x{config.resolution[1]}, {config.steps} steps, batch "
            f"{config.batch_size}, Adam lr {lr:g} ({schedule}), seed {config.seed}, "
            f"{'ImageNet' if config.imagenet_weights else 'random'} init, device {device}, "
            f"{threads} thread(s), torch {torch.__version__}",
            flush=True,
        )
    started = time.monotonic()
    running = 0.0
    batches = _batches(loader)
    for step in range(config.steps):
        for group in optimiser.param_groups:
            group["lr"] = lr * lr_factor(schedule, step, config.steps)
        images, levels = next(batches)
        logits = model(images.to(device))
        loss = criterion(logits, targets_for(config.kind, levels).to(device))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise RuntimeError(f"loss became {value} at step {step + 1}; lower the learning rate")
        running = value if step == 0 else 0.9 * running + 0.1 * value
        if log and ((step + 1) % config.log_every == 0 or step + 1 == config.steps):
            print(
                f"step {step + 1}/{config.steps} loss {running:.4f} "
                f"lr {optimiser.param_groups[0]['lr']:.2e} {time.monotonic() - started:.0f}s",
                flush=True,
            )
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(state, str(out / "model.pt"))
    record = {
        "kind": config.kind.value,
        "resolution": list(config.resolution),
        "steps": config.steps,
        "batch_size": config.batch_size,
        "lr": lr,
        "schedule": schedule,
        "seed": config.seed,
        "augment": config.augment,
        "init": "imagenet" if config.imagenet_weights else "random",
        "train_images": len(dataset),
        "final_loss": running,
        "train_seconds": round(time.monotonic() - started, 1),
        "torch_version": torch.__version__,
        **config.extra,
    }
    (out / "config.json").write_text(json.dumps(record, indent=2) + "\n")
    if log:
        print(f"saved {out / 'model.pt'}", flush=True)
    return out


def _parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct integers, got {text!r}")
    return seeds


def _resolution(text: str) -> tuple[int, int]:
    try:
        return parse_resolution(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _kind(text: str) -> ModelKind:
    try:
        return ModelKind.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m reference_models.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--kind", type=_kind, required=True, help="one-hot or multi-hot")
    parser.add_argument("--data-root", type=Path, required=True, help="dataset root (CSAW-M layout)")
    parser.add_argument("--out", type=Path, required=True, help="output folder; one seed-<s>/ per seed")
    parser.add_argument("--steps", type=int, default=PAPER_STEPS)
    parser.add_argument("--batch-size", type=int, default=PAPER_BATCH)
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"Adam lr (default {PAPER_LR:g} with ImageNet weights, {SCRATCH_LR:g} without)",
    )
    parser.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=None,
        help="lr schedule (default constant with ImageNet weights, cosine without)",
    )
    parser.add_argument("--seeds", type=_parse_seeds, default=PAPER_SEEDS, help="e.g. 1,2,3,4,5")
    parser.add_argument("--resolution", type=_resolution, default=PAPER_RESOLUTION, help="HxW, e.g. 632x512")
    parser.add_argument(
        "--imagenet-weights",
        type=Path,
        default=None,
        help="torchvision ResNet-34 ImageNet state dict, a local file (nothing is downloaded)",
    )
    parser.add_argument("--no-augment", dest="augment", action="store_false")
    parser.add_argument("--device", default=None, help="cpu, cuda or auto (default)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: the CPUs granted)")
    parser.add_argument("--log-every", type=int, default=25)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        for seed in args.seeds:
            config = TrainConfig(
                kind=args.kind,
                data_root=args.data_root,
                out_dir=args.out / f"seed-{seed}",
                steps=args.steps,
                batch_size=args.batch_size,
                lr=args.lr,
                schedule=args.schedule,
                seed=seed,
                resolution=args.resolution,
                imagenet_weights=args.imagenet_weights,
                augment=args.augment,
                device=args.device,
                threads=args.threads,
                log_every=args.log_every,
            )
            train(config)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
