# trioproxy: a streaming proxy for AceStream engines.
#
#   podman build -t trioproxy .          (or docker build)
#   podman run -p 8000:8000 -e TRIOPROXY_ENGINES=http://engine:6878 trioproxy
#
# Configuration is by environment (README: Configuration). BASE may name any Debian-like image
# with python3 (>= 3.11) and its venv module; docs/container.md builds one without a registry.
ARG BASE=docker.io/library/python:3.12-slim-bookworm

FROM ${BASE} AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY trioproxy ./trioproxy
RUN python3 -m venv /opt/trioproxy \
    && /opt/trioproxy/bin/pip install --no-cache-dir --disable-pip-version-check /src

FROM ${BASE}
COPY --from=build /opt/trioproxy /opt/trioproxy
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin trioproxy
ENV PATH=/opt/trioproxy/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TRIOPROXY_BIND=0.0.0.0:8000
USER 10001
EXPOSE 8000
# /healthz on the port TRIOPROXY_BIND names.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; port = os.environ.get('TRIOPROXY_BIND', ':8000').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]
ENTRYPOINT ["trioproxy"]
CMD ["serve"]
