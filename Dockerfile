# The server + worker image (docs/design.md). It is also the Kubernetes runner's collector image: the
# trusted main container of every model Pod runs `python3 -m runner.kubernetes.collector` from it.
#
#   docker build --network host -t csawm-leaderboard .      (the build fetches packages from PyPI)
#   docker run --rm -p 8000:8000 -e CSAWM_HOST=0.0.0.0 csawm-leaderboard
#
# BASE_IMAGE defaults to the offline Debian base built by scripts/build-base-images (python3 only);
# any Debian/Ubuntu image with python3 works. Behind a TLS-intercepting proxy, put its CA bundle in
# the build context as `build-ca.crt` (it is used by pip during the build only, then deleted):
#   cp /etc/ssl/certs/ca-certificates.crt build-ca.crt && docker build --network host ... ; rm build-ca.crt
ARG BASE_IMAGE=csawm-base/python:bookworm
FROM ${BASE_IMAGE}

# The minbase image has python3 but no ensurepip; Debian's python3-venv provides it.
RUN if ! python3 -c "import ensurepip" 2>/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends python3-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi

# skopeo pushes accepted archives to CSAWM_REGISTRY (server.registry.push; issue 13).
RUN if ! command -v skopeo >/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends skopeo \
        && rm -rf /var/lib/apt/lists/*; \
    fi

ENV VIRTUAL_ENV=/opt/csawm \
    PATH=/opt/csawm/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CSAWM_DATA_DIR=/data

# Dependencies first (cached while only the source changes), then the package itself.
WORKDIR /src
# build-ca.cr[t]: the glob lets the optional CA bundle be absent.
COPY pyproject.toml README.md build-ca.cr[t] ./
RUN python3 -m venv "$VIRTUAL_ENV" \
    && if [ -f build-ca.crt ]; then export PIP_CERT=/src/build-ca.crt; fi \
    && mkdir -p server runner reference_models && touch server/__init__.py runner/__init__.py \
    && pip install --no-cache-dir '.[server]' \
    && pip uninstall -y csawm-leaderboard
COPY server ./server
COPY runner ./runner
COPY reference_models ./reference_models
# The researcher and maintainer guides served at /guide/... (server.web.guides.INSTALLED_DOCS_DIR).
COPY docs/*.md /opt/csawm/share/csawm/docs/
RUN if [ -f build-ca.crt ]; then export PIP_CERT=/src/build-ca.crt; fi \
    && pip install --no-cache-dir --no-deps . \
    && pip wheel --no-cache-dir --no-deps -q -w "$VIRTUAL_ENV/share/csawm/wheels" . \
    && cd / && rm -rf /src \
    && python3 -c "import server.cli.main, runner.kubernetes.collector" \
    && python3 -c "from server.web.guides import GUIDES, find_guide; \
missing = [g for g in GUIDES if find_guide(g) is None]; assert not missing, f'guides missing: {missing}'"

# Non-root. Kubernetes may run it under any uid (the model Pods use 65532): everything under
# /opt/csawm is world-readable, and /data is the only place the server writes.
RUN groupadd --gid 10001 csawm \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /data --shell /usr/sbin/nologin csawm \
    && mkdir -p /data && chown csawm:csawm /data
USER 10001:10001
WORKDIR /data
EXPOSE 8000
ENTRYPOINT ["csawm"]
CMD ["serve"]
