# The Bentham study operator's image.
#
#   docker build -t bentham-operator:dev .
#
# Two stages: `build` turns the project into a wheel and installs it, with its dependencies, into a
# virtualenv; the final stage copies only that virtualenv onto a clean base, so no compiler, pip
# cache or source tree ships. The image runs as a numeric non-root user and writes nothing outside
# /tmp, so it runs with readOnlyRootFilesystem (mount an emptyDir at /tmp, as the chart does).

# Pinned by version; both stages must use the same Python, since the virtualenv is copied across.
ARG PYTHON_IMAGE=python:3.12.12-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
# The package metadata first, so a code-only change reuses nothing it should not.
COPY pyproject.toml README.md LICENSE ./
COPY operator/ operator/
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/bentham \
 && /opt/bentham/bin/pip install /wheels/bentham_study_operator-*.whl \
 && /opt/bentham/bin/pip uninstall --yes pip

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="bentham-study-operator" \
      org.opencontainers.image.description="A Kubernetes operator that runs Bentham studies to completion." \
      org.opencontainers.image.licenses="Apache-2.0"
# No .pyc writes at run time (the root filesystem is read-only; the venv's are compiled at build),
# unbuffered logs, and HOME on the writable /tmp for anything a client library caches.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    PATH=/opt/bentham/bin:${PATH}
# The final image needs no installer: drop the base image's pip too.
RUN python -m pip uninstall --yes pip
COPY --from=build /opt/bentham /opt/bentham
# 65532: the conventional "nonroot" uid/gid; numeric so that runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["bentham-operator"]
CMD ["--liveness", "http://0.0.0.0:8080/healthz"]
