#!/usr/bin/env python3
"""Helm, built from its Go module at the version pinned in hack/helm/go.mod, like the control plane.

    python3 hack/helm.py build    build (or find in the cache) helm; print the binary's path
    python3 hack/helm.py version  print the pinned Helm version

The binary is cached under ${XDG_CACHE_HOME:-~/.cache}/bentham/helm/<key>, where the key is a
digest of go.mod, go.sum, tools.go, the link flags and the Go version, so a fresh clone on the
same machine builds nothing. Build output goes to stderr; stdout is only the path.

Standard library only: this runs before the project's own dependencies are installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GO_MODULE = REPO / "hack" / "helm"
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bentham"
HELM_PACKAGE = "helm.sh/helm/v3"


def log(message: str) -> None:
    print(f"helm: {message}", file=sys.stderr, flush=True)


def go(args: list[str]) -> str:
    return subprocess.run(["go", *args], cwd=GO_MODULE, check=True, capture_output=True, text=True).stdout.strip()


def module_version(module: str) -> str:
    return go(["list", "-m", "-f", "{{.Version}}", module])


def helm_version() -> str:
    """The pinned release, read from go.mod: the one place it is written."""
    return module_version(HELM_PACKAGE)


def link_flags() -> list[str]:
    """Helm's own release flags: its version, and the Kubernetes version its client-go speaks.

    Helm's Makefile derives the default Kubernetes version (`.Capabilities.KubeVersion` in
    `helm template`, and the deprecation checks of `helm lint`) from client-go v0.X → 1.X.
    """
    _, minor = module_version("k8s.io/client-go").lstrip("v").split(".")[:2]
    stamps = {
        f"{HELM_PACKAGE}/internal/version.version": helm_version(),
        f"{HELM_PACKAGE}/internal/version.gitTreeState": "clean",
        f"{HELM_PACKAGE}/pkg/lint/rules.k8sVersionMajor": "1",
        f"{HELM_PACKAGE}/pkg/lint/rules.k8sVersionMinor": minor,
        f"{HELM_PACKAGE}/pkg/chartutil.k8sVersionMajor": "1",
        f"{HELM_PACKAGE}/pkg/chartutil.k8sVersionMinor": minor,
    }
    return ["-trimpath", "-ldflags=-s -w " + " ".join(f"-X {name}={value}" for name, value in stamps.items())]


def build_key() -> str:
    """A digest of everything that decides the binary: the module files, the flags, the Go."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "tools.go"):
        digest.update((GO_MODULE / name).read_bytes())
    digest.update(" ".join(link_flags()).encode())
    digest.update(go(["env", "GOVERSION"]).encode())
    return digest.hexdigest()[:16]


def build() -> Path:
    """Returns the cached helm for the current pins, building it on a cache miss."""
    target = CACHE_ROOT / "helm" / build_key()
    binary = target / "helm"
    if binary.is_file():
        return binary

    log(f"building Helm {helm_version()} into {target} (cold: a few minutes, plus module downloads)")
    started = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="build-", dir=target.parent))
    try:
        subprocess.run(
            ["go", "build", *link_flags(), "-o", str(staging / "helm"), f"{HELM_PACKAGE}/cmd/helm"],
            cwd=GO_MODULE,
            check=True,
            env={**os.environ, "CGO_ENABLED": "0"},
            stdout=sys.stderr,
        )
        shutil.rmtree(target, ignore_errors=True)  # a directory without the binary is a failed build
        staging.rename(target)  # atomic: a half-done build is never taken for a finished one
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"built in {time.monotonic() - started:.0f}s")
    return binary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("build", "version"))
    command = parser.parse_args().command
    if command == "build":
        print(build())
    elif command == "version":
        print(helm_version())
    return 0


if __name__ == "__main__":
    sys.exit(main())
