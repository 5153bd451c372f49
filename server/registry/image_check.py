"""Checking an image in the registry before it is charged: the same checks an uploaded archive gets.

Only metadata is read (the manifest, an index if there is one, the config blob); layers are never
downloaded. Checks, each failing with `ImageRefused` (or `ManifestNotFound`) naming the problem:

* the manifest exists and matches its digest (the client verifies every digest);
* an index (multi-platform image) has a ``linux/amd64`` entry, which is the image that runs;
* the manifest is an image manifest (OCI or Docker schema 2) with a config and layers;
* the compressed layers (plus the config) add up to at most the upload limit;
* the config matches its digest and says ``linux/amd64``.

The image id the engine reports after a pull is the config digest; it is what
`runner.registry_pull` verifies and what the duplicate check compares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.registry.client import MANIFEST_TYPES, RegistryClient, json_object
from server.registry.errors import ImageRefused
from server.registry.reference import ImageReference, check_digest

MAX_CONFIG_BYTES = 8 * 1024**2  # as for an archive's config (runner.imagetar.MAX_JSON_BYTES)
PLATFORM = ("linux", "amd64")


@dataclass(frozen=True)
class RemoteImage:
    """What the registry holds under a reference: the `reference` as submitted (its digest may be
    an index's) and the `image_id` after a pull (``sha256:<hex>`` of the config)."""

    reference: ImageReference
    image_id: str


def _human(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB" if n >= 1024**3 else f"{n / 1024**2:.1f} MiB"


def _platform_of(entry: dict[str, Any]) -> str:
    platform = entry.get("platform")
    if not isinstance(platform, dict):
        platform = {}
    return f"{platform.get('os', '?')}/{platform.get('architecture', '?')}"


def _descriptor_digest(descriptor: object, what: str) -> str:
    digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
    try:
        return check_digest(str(digest))
    except ValueError:
        raise ImageRefused(f"{what} has no sha256 digest") from None


def _descriptor_size(descriptor: dict[str, Any], what: str) -> int:
    size = descriptor.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ImageRefused(f"{what} has no valid size")
    return size


def inspect_reference(client: RegistryClient, reference: ImageReference, *, max_bytes: int) -> RemoteImage:
    """Check the image `reference` names; see the module docstring.

    Raises
    ------
    ImageRefused, ManifestNotFound, RegistryDenied, RegistryUnavailable
    """
    repository = reference.repository
    manifest = client.manifest(repository, reference.digest)
    if manifest.is_index:
        entries = manifest.body.get("manifests")
        entries = [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
        chosen = [e for e in entries if _platform_of(e) == "/".join(PLATFORM)]
        if not chosen:
            found = ", ".join(sorted({_platform_of(e) for e in entries})) or "none"
            raise ImageRefused(
                f"image index {reference.digest} has no linux/amd64 image (it has: {found}); "
                "the server runs linux/amd64 only (build with --platform linux/amd64)"
            )
        manifest = client.manifest(repository, _descriptor_digest(chosen[0], "index entry linux/amd64"))
        if manifest.is_index:
            raise ImageRefused(
                "the linux/amd64 entry of the index is itself an index (nested indexes refused)"
            )
    if manifest.media_type not in MANIFEST_TYPES:
        raise ImageRefused(
            f"manifest {manifest.digest} has media type {manifest.media_type or 'unknown'!r}; expected an "
            "OCI image manifest or Docker schema 2 (push with a current docker, buildah or skopeo)"
        )
    config_descriptor = manifest.body.get("config")
    layers = manifest.body.get("layers")
    if not isinstance(config_descriptor, dict) or not isinstance(layers, list) or not layers:
        raise ImageRefused(f"manifest {manifest.digest} has no config or no layers")
    config_digest = _descriptor_digest(config_descriptor, "the manifest's config")
    total = _descriptor_size(config_descriptor, "the manifest's config")
    for i, layer in enumerate(layers):
        _descriptor_digest(layer, f"layer {i}")
        total += _descriptor_size(layer, f"layer {i}")
    if total > max_bytes:
        raise ImageRefused(
            f"image layers add up to {_human(total)}, over the upload limit of {_human(max_bytes)}"
        )
    raw = client.blob(repository, config_digest, max_bytes=MAX_CONFIG_BYTES)
    config = json_object(raw, f"image config {config_digest}", ImageRefused)
    platform = (str(config.get("os") or ""), str(config.get("architecture") or ""))
    if platform != PLATFORM:
        raise ImageRefused(
            f"image platform is {platform[0] or '?'}/{platform[1] or '?'}; the server runs linux/amd64 only "
            "(build with --platform linux/amd64)"
        )
    return RemoteImage(reference=reference, image_id=config_digest)
