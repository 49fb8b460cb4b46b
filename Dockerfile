# The Bentham study operator's image.
#
#   make image                       # the wheelhouse, a Debian base made locally, then this file (buildah)
#   make wheelhouse && docker build -t bentham-operator:dev .    # the same with Docker and debian:bookworm-slim
#
# Python is Debian bookworm's own python3 (3.11), from Debian's packages, on either base: the
# default `debian:bookworm-slim`, or the same suite made with mmdebstrap by hack/images.py where no
# registry can be reached. The tests run on Python 3.11 too.
#
# Nothing is downloaded here: the dependencies are installed from wheelhouse/ (`make wheelhouse`
# downloads exactly requirements.lock's versions and hashes, and builds the operator's wheel), with
# --no-index and --require-hashes, so the image holds the versions the tests ran with (and nothing
# else: the installers ensurepip brings, pip and setuptools, go again). The final
# stage copies only the virtualenv: no pip, no wheels, no source tree. It runs as a numeric
# non-root user and writes nothing outside /tmp, so it runs with readOnlyRootFilesystem (mount an
# emptyDir at /tmp, as the chart does).

ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS base
# The locally made base has python3 and python3-venv already; debian:bookworm-slim gets them here.
RUN if ! python3 -c 'import ensurepip' 2>/dev/null; then \
      apt-get update \
      && apt-get install -y --no-install-recommends python3=3.11.2-1+b1 python3-venv=3.11.2-1+b1 \
      && rm -rf /var/lib/apt/lists/*; \
    fi

FROM base AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
COPY requirements.lock /src/requirements.lock
COPY wheelhouse/ /wheels/
RUN python3 -m venv /opt/bentham \
 && /opt/bentham/bin/pip install --no-cache-dir --no-index --find-links /wheels --require-hashes -r /src/requirements.lock \
 && /opt/bentham/bin/pip install --no-cache-dir --no-index --no-deps /wheels/bentham_study_operator-*.whl \
 && /opt/bentham/bin/pip uninstall --yes setuptools pip

FROM base
LABEL org.opencontainers.image.title="bentham-study-operator" \
      org.opencontainers.image.description="A Kubernetes operator that runs Bentham studies to completion." \
      org.opencontainers.image.licenses="Apache-2.0"
# No .pyc writes at run time (the root filesystem is read-only; the venv's are compiled at build),
# unbuffered logs, and HOME on the writable /tmp for anything a client library caches.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    PATH=/opt/bentham/bin:${PATH}
COPY --from=build /opt/bentham /opt/bentham
# 65532: the conventional "nonroot" uid/gid; numeric so that runAsNonRoot can verify it. It needs a
# passwd entry: kopf names its peer after getpass.getuser(), which fails for an unknown uid.
RUN groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin nonroot
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["bentham-operator"]
CMD ["--liveness", "http://0.0.0.0:8080/healthz"]
