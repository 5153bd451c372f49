"""ResNet-34 backbone with the CSAW-M heads.

As in the authors' ``src/models.py``: torchvision ResNet-34 with its final fc removed (global average
pooling gives a 512-d feature), then one ``Linear(512 -> 8)`` (one-hot, softmax) or
``Linear(512 -> 7)`` (multi-hot, one sigmoid per threshold). Input: grey image copied to 3 channels,
values in [0, 1], no mean/std normalisation.

Works with Debian's torch 1.13 / torchvision 0.14 and with torch 2.x: only ``resnet34(weights=None)``
(torchvision >= 0.13) and ``torch.load(..., weights_only=True)`` (torch >= 1.13) are relied on.
ImageNet weights are read from a local file only; nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet34

from reference_models.rules import ModelKind

FEATURES = 512
"""Width of ResNet-34's pooled feature."""


class ReferenceNet(nn.Module):  # type: ignore[misc]
    """ResNet-34 features followed by one linear head of `kind.n_outputs` logits."""

    def __init__(self, kind: ModelKind) -> None:
        super().__init__()
        self.kind = kind
        backbone = resnet34(weights=None)
        backbone.fc = nn.Identity()
        self.backbone = backbone
        self.head = nn.Linear(FEATURES, kind.n_outputs)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(n, 3, H, W) in [0, 1] -> (n, 8) softmax logits or (n, 7) sigmoid logits."""
        return self.head(self.backbone(images))


def load_imagenet_backbone(model: ReferenceNet, path: Path) -> None:
    """Load a torchvision ResNet-34 ImageNet checkpoint (e.g. ``resnet34-b627a593.pth``) into the
    backbone. The checkpoint's ``fc.*`` entries (the 1000-class classifier) are dropped; every other
    backbone parameter must be present with the right shape, else ValueError names what differs."""
    if not path.is_file():
        raise ValueError(f"ImageNet weights file not found: {path}")
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict (parameter name -> tensor), got {type(state)}")
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    backbone_state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    expected = model.backbone.state_dict()
    missing = sorted(set(expected) - set(backbone_state))
    unexpected = sorted(set(backbone_state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{path} is not a torchvision ResNet-34 checkpoint: missing {missing[:5]} "
            f"({len(missing)} in all), unexpected {unexpected[:5]} ({len(unexpected)} in all)"
        )
    wrong = [k for k, v in backbone_state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        raise ValueError(f"{path}: parameter shapes differ from ResNet-34 for {wrong[:5]}")
    model.backbone.load_state_dict(backbone_state)


def build_model(kind: ModelKind, imagenet_weights: Path | None = None) -> ReferenceNet:
    """A fresh model; backbone initialised from `imagenet_weights` when given, else at random."""
    model = ReferenceNet(kind)
    if imagenet_weights is not None:
        load_imagenet_backbone(model, imagenet_weights)
    return model


def load_trained(kind: ModelKind, path: Path) -> ReferenceNet:
    """A model with the trained weights saved by ``reference_models.train`` (a state dict)."""
    if not path.is_file():
        raise ValueError(f"trained weights file not found: {path}")
    model = ReferenceNet(kind)
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{path} does not hold {kind.value} ResNet-34 weights: {exc}") from exc
    return model
