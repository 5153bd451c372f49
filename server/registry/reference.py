"""Image references by digest: ``HOST[:PORT]/REPO@sha256:<64 hex>``, and the team repositories."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Repository path components as the distribution spec defines them (lowercase, separators inside).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE_RE = re.compile(
    rf"^(?P<registry>[^/@\s]+)/(?P<repository>{_COMPONENT}(?:/{_COMPONENT})*)@(?P<digest>sha256:[0-9a-f]{{64}})$"
)
_TAGGED_RE = re.compile(r"^[^@\s]+:[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
TEAM_NAMESPACE = "csawm"


@dataclass(frozen=True)
class ImageReference:
    registry: str
    repository: str
    digest: str

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}@{self.digest}"


def parse_reference(image: str) -> ImageReference:
    """Parse a reference pinned by digest; ValueError saying what is wrong otherwise."""
    if match := _REFERENCE_RE.match(image):
        return ImageReference(match["registry"], match["repository"], match["digest"])
    if "@" not in image and _TAGGED_RE.match(image.rsplit("/", 1)[-1]) and "/" in image:
        raise ValueError(
            f"image {image!r} names a tag; pin it by digest (HOST/REPO@sha256:<64 hex digits>) so "
            "the image that is checked is the image that runs"
        )
    raise ValueError(f"image reference {image!r} must be HOST/REPO@sha256:<64 hex digits>")


def check_digest(digest: str) -> str:
    if not _DIGEST_RE.match(digest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return digest


def team_repository(team_id: int, team_name: str) -> str:
    """``csawm/<slug>-<id>``: one repository per team, readable, and unique even when two team
    names slug alike (the id is part of it)."""
    slug = re.sub(r"[^a-z0-9]+", "-", team_name.lower()).strip("-")[:60].strip("-")
    return f"{TEAM_NAMESPACE}/{slug}-{team_id}" if slug else f"{TEAM_NAMESPACE}/team-{team_id}"


def image_tag(image_id: str) -> str:
    """The tag an uploaded image is pushed under (``sha256-<hex of the image id>``): a push needs a
    tag, and this one is stable, so pushing the same image again changes nothing."""
    return check_digest(image_id).replace(":", "-")
