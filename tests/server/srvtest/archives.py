"""Small hand-made `docker save` archives (legacy layout) for upload tests, good and bad."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tf.addfile(info, io.BytesIO(data))


def _layer(seed: str, weights: int = 0) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as layer:
        _add(layer, "app/model.txt", f"model {seed}\n".encode())
        if weights:
            _add(layer, "app/weights.bin", bytes(range(256)) * (weights // 256) + bytes(weights % 256))
    return buf.getvalue()


def image_parts(
    seed: str = "a", *, arch: str = "amd64", user: str = "1000", weights: int = 0
) -> tuple[str, bytes, bytes]:
    """(config name, config bytes, layer bytes) of a tiny image (plus `weights` bytes of a weights
    file, for an archive of a given size); `seed` changes its digest."""
    layer = _layer(seed, weights)
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"User": user, "Entrypoint": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
        }
    ).encode()
    return hashlib.sha256(config).hexdigest() + ".json", config, layer


def write_archive(path: Path, seed: str = "a", **kwargs: Any) -> str:
    """Write a one-image archive; return its image id ``sha256:<config digest>``."""
    config_name, config, layer = image_parts(seed, **kwargs)
    manifest = [{"Config": config_name, "RepoTags": [f"model-{seed}:latest"], "Layers": ["l1/layer.tar"]}]
    with tarfile.open(path, "w") as tf:
        _add(tf, config_name, config)
        _add(tf, "l1/layer.tar", layer)
        _add(tf, "manifest.json", json.dumps(manifest).encode())
    return "sha256:" + config_name.removesuffix(".json")


def write_two_images(path: Path) -> None:
    parts = [image_parts("x"), image_parts("y")]
    manifest = [
        {"Config": name, "RepoTags": [f"m{i}:latest"], "Layers": [f"l{i}/layer.tar"]}
        for i, (name, _, _) in enumerate(parts)
    ]
    with tarfile.open(path, "w") as tf:
        for i, (name, config, layer) in enumerate(parts):
            _add(tf, name, config)
            _add(tf, f"l{i}/layer.tar", layer)
        _add(tf, "manifest.json", json.dumps(manifest).encode())


def write_traversal(path: Path) -> None:
    config_name, config, layer = image_parts("t")
    manifest = [{"Config": config_name, "RepoTags": [], "Layers": ["../../etc/layer.tar"]}]
    with tarfile.open(path, "w") as tf:
        _add(tf, config_name, config)
        _add(tf, "../../etc/layer.tar", layer)
        _add(tf, "manifest.json", json.dumps(manifest).encode())
