"""What can go wrong talking to the registry, split by who has to act.

`RegistryUnavailable` is the operator's problem (network, TLS, 5xx, the server's own credentials
refused on a push): the API answers 503 and charges nothing. `RegistryDenied` and
`ManifestNotFound` on a submitted reference are the submitter's (they named an image the server
cannot read or that does not exist): 400. `ImageRefused` says what is wrong with an image that
was found.
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base class; ``str()`` is a message fit for the API response."""


class RegistryUnavailable(RegistryError):
    """The registry could not be reached or failed (connection, TLS, timeout, 5xx, skopeo error)."""


class RegistryDenied(RegistryError):
    """The registry refused the server's credentials for this repository (401/403)."""


class ManifestNotFound(RegistryError):
    """No manifest or blob with that digest in that repository (404)."""


class ImageRefused(RegistryError):
    """The image exists but may not be run here (platform, size, unsupported manifest)."""
