"""Registry references on the command line: ``csawm submit`` and ``csawm check`` take
``HOST[:PORT]/REPO@sha256:<64 hex>`` besides a local image or a ``docker save`` archive.

Which is which follows Docker's own rule for names: a target whose first path component is a host
(it holds a ``.`` or a ``:``, or is ``localhost``) names an image in that registry, and must be
pinned by digest (`server.registry.reference.parse_reference`, the server's own parser), so that the
image the server checks is the image that runs. A tag is refused before anything is sent, with the
command that prints its digest. A local image that carries a registry host in its name is submitted
as an archive: ``docker save IMAGE -o model.tar``, then ``csawm submit model.tar``.
"""

from __future__ import annotations

import subprocess

from server.registry.reference import ImageReference, parse_reference


class TargetError(ValueError):
    """A target names a registry but is no reference the server takes; the message says the fix."""


def registry_reference(target: str) -> ImageReference | None:
    """The parsed reference when `target` names a registry; None for a local image or an archive.
    `TargetError` when it names a registry without a digest or in another shape."""
    first, slash, _ = target.partition("/")  # Docker's rule: a host has a dot or a port, or is localhost
    if not slash or not ("." in first or ":" in first or first == "localhost"):
        return None
    try:
        return parse_reference(target)
    except ValueError as exc:
        if "@" in target:
            raise TargetError(str(exc)) from None
        raise TargetError(
            f"{target} names a registry image by tag; the server takes it only by digest. Print the "
            f"digest with `docker inspect --format '{{{{index .RepoDigests 0}}}}' {target}` (after "
            f"`docker push {target}`, which also prints it) or `skopeo inspect --format "
            f"'{{{{.Digest}}}}' docker://{target}`, then submit HOST/REPO@sha256:<digest>. To upload "
            f"the local image instead: `docker save {target} -o model.tar` and submit model.tar"
        ) from None


def pull(reference: ImageReference) -> None:
    """Make the local engine hold `reference` (``docker pull`` unless it is there already), for
    ``csawm check``: the engine pulls with the researcher's own ``docker login``. `TargetError`
    with the engine's reason when it cannot."""
    name = str(reference)
    try:
        present = subprocess.run(["docker", "image", "inspect", name], capture_output=True, check=False)
        if present.returncode == 0:
            return
        pulled = subprocess.run(
            ["docker", "pull", "--quiet", name], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise TargetError("docker is not installed (needed to pull the image)") from None
    if pulled.returncode != 0:
        reason = (
            pulled.stderr.strip().splitlines()[-1] if pulled.stderr.strip() else f"exit {pulled.returncode}"
        )
        raise TargetError(
            f"the engine could not pull {name}: {reason} (is `docker login {reference.registry}` done?)"
        )
