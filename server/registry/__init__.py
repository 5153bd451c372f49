"""Model images in an OCI distribution registry (issue 13, docs/design.md).

Where a registry is configured (``CSAWM_REGISTRY``), every archive that passes inspection is pushed
to ``{registry}/csawm/{team}`` with Debian's ``skopeo`` (`push`) and referred to by its manifest
digest from then on, so a cluster can pull it; a submission by registry reference is checked through
the distribution API v2 (`client`, `inspect`) before it is charged. Nothing here needs a Docker
engine, and nothing here knows about HTTP requests or the database: `server.submissions.service`
maps these errors onto API errors.
"""
