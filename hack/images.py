#!/usr/bin/env python3
"""The project's images, built here without a registry, and loaded into the real node.

    python3 hack/images.py wheelhouse     the image locks' wheels and the project's own, into wheelhouse/
    python3 hack/images.py base           the Debian bookworm base (mmdebstrap, then buildah); cached
    python3 hack/images.py build [TAG]    the images from their Dockerfiles (buildah), on that base; loaded
                                          into the real node when it runs
    python3 hack/images.py load [TAG...]  import the images (and extra tags) into the real node's containerd

`debian:bookworm-slim` cannot be pulled here, so the base is made from the same suite's Debian
packages with mmdebstrap (python3 and python3-venv included), then committed with buildah as
localhost/bentham/debian:bookworm and cached under ${XDG_CACHE_HOME:-~/.cache}/bentham/images.
buildah builds the Dockerfiles with `--build-arg BASE_IMAGE=` that base; nothing inside a build
reaches a network (the dependencies come from wheelhouse/, made on this host from the lock
files). Images reach the node as docker-archive files, through `ctr images import`.

Standard library only, like hack/cluster.py.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cluster

REPO = Path(__file__).resolve().parent.parent
CACHE = cluster.CACHE_ROOT / "images"
WHEELHOUSE = REPO / "wheelhouse"
LOCKS = (REPO / "requirements.lock", REPO / "requirements-executor.lock")  # what the images install
BASE_IMAGE = "localhost/bentham/debian:bookworm"
OPERATOR_IMAGE = "localhost/bentham/operator"
EXECUTOR_IMAGE = "localhost/bentham/executor"  # the reference executor (executor/Dockerfile)
STAND_IN_IMAGE = "localhost/bentham/stand-in-executor"  # plays an executor in the e2e tests
DEFAULT_TAG = "dev"
# The suite and packages of the base: what decides its cache key. The same as debian:bookworm-slim
# plus the Dockerfiles' apt-get install (python3, python3-venv), with bookworm's updates.
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv")
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# The image's platform, named explicitly so that a wheelhouse made on another host still fits.
IMAGE_PLATFORM = ("--platform", "manylinux2014_x86_64", "--python-version", "3.11", "--implementation", "cp")
# buildah's RUN steps keep the limits they are given: this VM cannot raise one (no CAP_SYS_RESOURCE).
BUILDAH_LIMITS = ("--ulimit", "nofile=1024:1024")


def log(message: str) -> None:
    print(f"images: {message}", file=sys.stderr, flush=True)


def run(*argv: str, stdin: bytes | None = None) -> str:
    result = subprocess.run(list(argv), input=stdin, capture_output=True)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode(errors="replace")[-4000:]
        raise SystemExit(f"images: {' '.join(argv[:4])} … failed:\n{output}")
    return result.stdout.decode()


def image_exists(name: str) -> bool:
    return subprocess.run(["buildah", "inspect", "--type=image", name], capture_output=True).returncode == 0


def wheelhouse() -> Path:
    """The image locks' wheels (checked against their hashes) and the project's wheel, in wheelhouse/."""
    started = time.monotonic()
    WHEELHOUSE.mkdir(exist_ok=True)
    for old in WHEELHOUSE.glob("bentham_study_operator-*.whl"):
        old.unlink()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    for lock in LOCKS:
        run(*pip, "download", "--quiet", "--only-binary=:all:", *IMAGE_PLATFORM, "--require-hashes", "-r", str(lock),
            "--dest", str(WHEELHOUSE))  # fmt: skip
    run(*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(WHEELHOUSE), str(REPO))
    log(f"wheelhouse ready in {time.monotonic() - started:.0f}s: {WHEELHOUSE}")
    return WHEELHOUSE


def base_key() -> str:
    return hashlib.sha256(repr((SUITE, BASE_PACKAGES, MIRRORS)).encode()).hexdigest()[:16]


def base() -> str:
    """The locally made Debian base, built once per key and per machine's image store."""
    if image_exists(BASE_IMAGE) and base_key() in run("buildah", "inspect", "--type=image", BASE_IMAGE):
        return BASE_IMAGE
    CACHE.mkdir(parents=True, exist_ok=True)
    rootfs = CACHE / f"debian-{SUITE}-{base_key()}.tar"
    if not rootfs.exists():
        started = time.monotonic()
        log(f"making the Debian {SUITE} root filesystem with mmdebstrap (about a minute)")
        with tempfile.TemporaryDirectory(dir=CACHE) as staging:
            partial = Path(staging) / rootfs.name
            run("mmdebstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", "--quiet",
                "--aptopt=Acquire::Check-Valid-Until \"false\"", SUITE, str(partial), *MIRRORS)  # fmt: skip
            partial.rename(rootfs)
        log(f"made in {time.monotonic() - started:.0f}s")
    container = run("buildah", "from", "scratch").strip()
    try:
        run("buildah", "add", container, str(rootfs), "/")
        path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        label = f"io.bentham.base-key={base_key()}"
        run("buildah", "config", "--label", label, "--env", path, "--cmd", "bash", container)
        run("buildah", "commit", "--quiet", "--rm", container, BASE_IMAGE)
    except SystemExit:
        subprocess.run(["buildah", "rm", container], capture_output=True)
        raise
    return BASE_IMAGE


def build(tag: str) -> list[str]:
    """The images from their Dockerfiles, on the local base; returns their names."""
    base_image = base()
    wheelhouse()  # always: the operator's wheel is this checkout's code
    built = []
    images = (
        (f"{OPERATOR_IMAGE}:{tag}", REPO / "Dockerfile", REPO),
        (f"{EXECUTOR_IMAGE}:{tag}", REPO / "executor" / "Dockerfile", REPO),
        (f"{STAND_IN_IMAGE}:{tag}", REPO / "executor" / "stand-in" / "Dockerfile", REPO / "executor" / "stand-in"),
    )
    for name, dockerfile, context in images:
        started = time.monotonic()
        run("buildah", "bud", "--quiet", *BUILDAH_LIMITS, "--layers", "--build-arg", f"BASE_IMAGE={base_image}",
            "--file", str(dockerfile), "--tag", name, str(context))  # fmt: skip
        log(f"built {name} in {time.monotonic() - started:.0f}s")
        built.append(name)
    return built


def load(names: list[str]) -> None:
    """Imports each image into the real node's containerd (which must be running), under its own name."""
    import realnode

    paths = realnode.node_paths()
    if not cluster.running_pid("containerd"):
        raise SystemExit("images: the real node is not running here: `make node` first")
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            archive = Path(scratch) / "image.tar"
            run("buildah", "push", "--quiet", name, f"docker-archive:{archive}:{name}")
            realnode.import_image(paths, archive)
            archive.unlink()
            log(f"loaded {name} into the real node")


def tag(source: str, new_tag: str) -> str:
    """Another tag of the same image, as a release would make: what `helm upgrade` rolls to."""
    name = f"{source.rsplit(':', 1)[0]}:{new_tag}"
    run("buildah", "tag", source, name)
    return name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("wheelhouse", "base", "build", "load"))
    parser.add_argument("tags", nargs="*", default=[DEFAULT_TAG])
    arguments = parser.parse_args()
    if arguments.command == "wheelhouse":
        print(wheelhouse())
    elif arguments.command == "base":
        print(base())
    elif arguments.command == "build":
        names = build(arguments.tags[0])
        if cluster.running_pid("containerd"):
            load(names)
        else:
            log("no real node runs here: `make node`, then `make image` loads the images into it")
        print("\n".join(names))
    elif arguments.command == "load":
        first, *others = arguments.tags
        names = [f"{image}:{first}" for image in (OPERATOR_IMAGE, EXECUTOR_IMAGE, STAND_IN_IMAGE)]
        names += [tag(f"{OPERATOR_IMAGE}:{first}", other) for other in others]
        load(names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
