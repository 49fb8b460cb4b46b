#!/usr/bin/env python3
"""A real, local Kubernetes control plane for development, the demo and the test suite.

    python3 hack/cluster.py build    build (or find in the cache) the control-plane binaries
    python3 hack/cluster.py up       start it; idempotent; prints the kubeconfig path
    python3 hack/cluster.py up --node real    the same, and a real node (hack/realnode.py) beside kwok's
    python3 hack/cluster.py down     stop it, keeping its data
    python3 hack/cluster.py stop-node    stop only the real node
    python3 hack/cluster.py reset    stop it and wipe its data
    python3 hack/cluster.py status   exit 0 when it is up and ready

The parts are etcd (embedded), kube-apiserver, kube-controller-manager and kube-scheduler,
built from the Kubernetes release pinned in hack/controlplane/go.mod, and kwok, which plays
the kubelet for fake nodes by the Stages in hack/kwok/stages.yaml. Every part listens on
127.0.0.1 only, on ports chosen free at first start and then kept, so a second clone can run its
own copy beside this one. Binaries are cached under ${XDG_CACHE_HOME:-~/.cache}/bentham, keyed
by the pins, so a fresh clone on the same machine builds nothing.

Standard library only: this runs before the project's own dependencies are installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GO_MODULE = REPO / "hack" / "controlplane"
STAGES = REPO / "hack" / "kwok" / "stages.yaml"
STATE_DIR = Path(os.environ.get("BENTHAM_CLUSTER_DIR", REPO / ".cluster"))
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bentham"

# Start order; `down` stops them in reverse.
PARTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
FAKE_NODES = ("kwok-node-0", "kwok-node-1")
READY_TIMEOUT_S = 90.0
# The Go garbage collector's target for every part (Go's default is 100), unless GOGC is set. A
# profile of the API server under load showed an eighth of its CPU marking garbage; on a two-core
# machine that CPU is the floor every test and benchmark runs against, and memory is plentiful.
GOGC = "400"


def log(message: str) -> None:
    print(f"cluster: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Build


@dataclass(frozen=True)
class Binaries:
    controlplane: Path
    kwok: Path
    kwok_crds: Path


def kubernetes_version() -> str:
    """The pinned release, read from go.mod: the one place it is written."""
    return go(["list", "-m", "-f", "{{.Version}}", "k8s.io/kubernetes"])


def link_flags() -> list[str]:
    """Stamps the release into the binaries, as Kubernetes' own build does."""
    version = kubernetes_version()
    major, minor = version.lstrip("v").split(".")[:2]
    stamp = "k8s.io/component-base/version"
    return [
        "-trimpath",
        f"-ldflags=-s -w -X {stamp}.gitVersion={version} -X {stamp}.gitMajor={major} "
        f"-X {stamp}.gitMinor={minor} -X {stamp}.gitTreeState=clean",
    ]


def build_key() -> str:
    """A digest of everything that decides the binaries: the Go sources, the pins, the flags, the Go."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((GO_MODULE / name).read_bytes())
    digest.update(" ".join(link_flags()).encode())
    digest.update(go(["env", "GOVERSION"]).encode())
    return digest.hexdigest()[:16]


def go(args: list[str], cwd: Path = GO_MODULE) -> str:
    return subprocess.run(["go", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def build() -> Binaries:
    """Returns the cached binaries for the current pins, building them on a cache miss."""
    target = CACHE_ROOT / "controlplane" / build_key()
    binaries = Binaries(target / "controlplane", target / "kwok", target / "kwok-crds")
    if target.is_dir():
        return binaries

    log(f"building the control plane into {target} (cold: about 6 minutes on 2 cores, plus module downloads)")
    started = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="build-", dir=target.parent))
    try:
        flags = link_flags()
        subprocess.run(["go", "build", *flags, "-o", str(staging / "controlplane"), "."], cwd=GO_MODULE, check=True)
        subprocess.run(
            ["go", "build", *flags, "-o", str(staging / "kwok"), "sigs.k8s.io/kwok/cmd/kwok"], cwd=GO_MODULE, check=True
        )
        # kwok's Stage CRD ships in its module; take it from the module cache the build just used.
        kwok_dir = Path(go(["list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok"]))
        (staging / "kwok-crds").mkdir()
        shutil.copy(kwok_dir / "kustomize" / "crd" / "bases" / "kwok.x-k8s.io_stages.yaml", staging / "kwok-crds")
        staging.rename(target)  # atomic: a half-done build is never taken for a finished one
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"built in {time.monotonic() - started:.0f}s")
    return binaries


# --------------------------------------------------------------------------------------------
# State on disk


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    kwok: int


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def ports() -> Ports:
    """The ports of this copy: chosen once, then kept so that the kubeconfig stays valid."""
    path = STATE_DIR / "ports.json"
    if path.exists():
        return Ports(**json.loads(path.read_text()))
    chosen = Ports(free_port(), free_port(), free_port(), free_port())
    path.write_text(json.dumps(asdict(chosen)))
    return chosen


def pid_file(part: str) -> Path:
    return STATE_DIR / "run" / f"{part}.pid"


def running_pid(part: str) -> int | None:
    """The part's pid while it runs; None once it has exited (a zombie counts as exited)."""
    try:
        pid = int(pid_file(part).read_text())
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    state = stat.rsplit(")", 1)[1].split()[0]
    return None if state in ("Z", "X") else pid


def openssl(pki: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=pki, check=True, capture_output=True)


def issue_certificate(pki: Path, name: str, subject: str, *, client: bool = False, server_names: str = "") -> None:
    """`name`.key and `name`.crt signed by the cluster's CA, for a client or a server; kept once made."""
    if (pki / f"{name}.crt").exists():
        return
    extensions = ("extendedKeyUsage=clientAuth\n" if client else "extendedKeyUsage=serverAuth\n") + (
        f"subjectAltName={server_names}\n" if server_names else ""
    )
    (pki / f"{name}.ext").write_text(extensions)
    openssl(
        pki, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject
    )
    openssl(
        pki, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "3650", "-extfile", f"{name}.ext", "-out", f"{name}.crt",
    )  # fmt: skip


def make_pki(pki: Path) -> None:
    """A CA, the API server's serving and kubelet-client certificates, an admin client certificate, a SA key."""
    pki.mkdir(parents=True, exist_ok=True)
    if not (pki / "ca.key").exists():
        openssl(
            pki, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-keyout", "ca.key",
            "-out", "ca.crt", "-subj", "/CN=bentham-local-ca",
        )  # fmt: skip
    issue_certificate(
        pki,
        "apiserver",
        "/CN=kube-apiserver",
        server_names="IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,IP:10.0.0.1",
    )
    issue_certificate(pki, "admin", "/O=system:masters/CN=bentham-admin", client=True)
    # How the API server proves itself to a real node's kubelet (`kubectl logs`, `exec`).
    issue_certificate(
        pki, "apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client", client=True
    )
    if not (pki / "sa.key").exists():
        openssl(pki, "genrsa", "-out", "sa.key", "2048")
        openssl(pki, "rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")


def write_kubeconfig(path: Path, pki: Path, port: int, user: str = "admin") -> None:
    """A kubeconfig for the client certificate `user`.crt (admin, or the real node's kubelet-client)."""
    # Paths, not embedded data, keep the file readable; JSON is valid YAML for kubectl.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "bentham-local",
                "cluster": {"server": f"https://127.0.0.1:{port}", "certificate-authority": str(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": f"bentham-{user}",
                "user": {"client-certificate": str(pki / f"{user}.crt"), "client-key": str(pki / f"{user}.key")},
            }
        ],
        "contexts": [{"name": "bentham-local", "context": {"cluster": "bentham-local", "user": f"bentham-{user}"}}],
        "current-context": "bentham-local",
    }
    path.write_text(json.dumps(config, indent=2) + "\n")


# --------------------------------------------------------------------------------------------
# Processes


def command_lines(binaries: Binaries, p: Ports, kubeconfig: Path) -> dict[str, list[str]]:
    pki = STATE_DIR / "pki"
    cp = str(binaries.controlplane)
    return {
        "etcd": [
            cp,
            "etcd",
            f"--data-dir={STATE_DIR / 'etcd'}",
            f"--client-port={p.etcd_client}",
            f"--peer-port={p.etcd_peer}",
        ],
        "kube-apiserver": [
            cp,
            "kube-apiserver",
            f"--etcd-servers=http://127.0.0.1:{p.etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # The `kubernetes` Service's endpoint may not be a loopback address; nothing needs it here.
            "--endpoint-reconciler-type=none",
            f"--secure-port={p.apiserver}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.0.0.0/24",
            # Node: a real node's kubelet (hack/realnode.py) may read what its own pods need.
            "--authorization-mode=Node,RBAC",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            "--max-requests-inflight=0",
            "--max-mutating-requests-inflight=0",
            # Record every write so that tests can count what the operator really created.
            f"--audit-policy-file={STATE_DIR / 'audit-policy.yaml'}",
            f"--audit-log-path={STATE_DIR / 'logs' / 'audit.log'}",
            "--audit-log-maxsize=200",
            "--audit-log-maxbackup=2",
            "--v=0",
        ],
        "kube-controller-manager": [
            cp,
            "kube-controller-manager",
            f"--kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--leader-elect=false",
            "--controllers=*",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            "--use-service-account-credentials=false",
            "--kube-api-qps=500",
            "--kube-api-burst=1000",
            "--concurrent-job-syncs=20",
            "--concurrent-gc-syncs=40",
            "--v=0",
        ],
        "kube-scheduler": [
            cp,
            "kube-scheduler",
            f"--kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--leader-elect=false",
            "--kube-api-qps=500",
            "--kube-api-burst=1000",
            "--v=0",
        ],
        "kwok": [
            str(binaries.kwok),
            f"--kubeconfig={kubeconfig}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--enable-crds=Stage",
            "--node-ip=127.0.0.1",
            f"--server-address=127.0.0.1:{p.kwok}",
            "--node-lease-duration-seconds=40",
        ],
    }


def start(part: str, argv: list[str]) -> None:
    if running_pid(part):
        return
    logs = STATE_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{part}.log", "ab") as out:
        process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "GOGC": os.environ.get("GOGC", GOGC)},
            start_new_session=True,  # survives the shell that started it, like a service
        )
    pid_file(part).parent.mkdir(parents=True, exist_ok=True)
    pid_file(part).write_text(str(process.pid))


def wait_for(what: str, ready: Callable[[], bool], part: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if ready():
            return
        if not running_pid(part):
            tail = (STATE_DIR / "logs" / f"{part}.log").read_text(errors="replace")[-3000:]
            raise SystemExit(f"cluster: {part} exited while waiting for {what}:\n{tail}")
        time.sleep(0.2)
    raise SystemExit(f"cluster: timed out after {READY_TIMEOUT_S:.0f}s waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def apiserver_ready(p: Ports) -> bool:
    pki = STATE_DIR / "pki"
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{p.apiserver}/readyz", context=context, timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"cluster: kubectl {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def fake_node(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
        },
        "spec": {},
    }


AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
  resources:
  - group: batch
    resources: [jobs]
  - group: bentham.io
- level: None
"""


def up(node: str = "") -> Path:
    """Starts every part not yet running and waits until the cluster can run a pod.

    With node="real", also the real node (hack/realnode.py) beside the kwok nodes.
    """
    if node == "real":
        import realnode

        realnode.check_machine()  # before anything starts: refuse while another cluster's node runs
    binaries = build()
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    kubeconfig = STATE_DIR / "kubeconfig"
    p = ports()
    make_pki(STATE_DIR / "pki")
    (STATE_DIR / "audit-policy.yaml").write_text(AUDIT_POLICY)
    write_kubeconfig(kubeconfig, STATE_DIR / "pki", p.apiserver)
    commands = command_lines(binaries, p, kubeconfig)
    started = time.monotonic()

    start("etcd", commands["etcd"])
    wait_for("etcd", lambda: port_open(p.etcd_client), "etcd")
    start("kube-apiserver", commands["kube-apiserver"])
    wait_for("the API server's /readyz", lambda: apiserver_ready(p), "kube-apiserver")
    start("kube-controller-manager", commands["kube-controller-manager"])
    start("kube-scheduler", commands["kube-scheduler"])

    kubectl(kubeconfig, "apply", "--server-side", "-f", str(binaries.kwok_crds))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "crd/stages.kwok.x-k8s.io", "--timeout=60s")
    kubectl(kubeconfig, "apply", "--server-side", "-f", str(STAGES))
    nodes = {"apiVersion": "v1", "kind": "List", "items": [fake_node(n) for n in FAKE_NODES]}
    kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=json.dumps(nodes))
    start("kwok", commands["kwok"])
    kubectl(kubeconfig, "wait", "--for=condition=Ready", *(f"node/{n}" for n in FAKE_NODES), "--timeout=60s")
    # Pods are only admitted once the namespace's default ServiceAccount exists.
    wait_for("the default ServiceAccount", lambda: service_account_exists(kubeconfig), "kube-controller-manager")
    log(f"ready in {time.monotonic() - started:.1f}s")
    if node == "real":
        import realnode

        realnode.up(binaries, kubeconfig)
    return kubeconfig


def service_account_exists(kubeconfig: Path) -> bool:
    result = subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", "get", "serviceaccount", "default", "-n", "default"],
        capture_output=True,
    )
    return result.returncode == 0


def down() -> None:
    import realnode

    realnode.down()  # before the API server: the kubelet's last status writes still land
    for part in reversed(PARTS):
        pid = running_pid(part)
        if pid is None:
            continue
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while running_pid(part) and time.monotonic() < deadline:
            time.sleep(0.1)
        if running_pid(part):
            os.killpg(pid, signal.SIGKILL)
        pid_file(part).unlink(missing_ok=True)
    log("stopped")


def is_up() -> bool:
    if not all(running_pid(part) for part in PARTS):
        return False
    return apiserver_ready(ports())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("build", "up", "down", "stop-node", "reset", "status", "kubeconfig"))
    parser.add_argument(
        "--node",
        choices=("kwok", "real"),
        default="kwok",
        help="with `up`: `real` also starts the real node (kubelet, containerd) beside the kwok nodes",
    )
    arguments = parser.parse_args()
    command = arguments.command
    if command == "build":
        print(build().controlplane.parent)
    elif command == "up":
        print(up(arguments.node))
    elif command == "down":
        down()
    elif command == "stop-node":
        import realnode

        realnode.down()
    elif command == "reset":
        down()
        shutil.rmtree(STATE_DIR, ignore_errors=True)
        log(f"wiped {STATE_DIR}")
    elif command == "status":
        if not is_up():
            log("not running")
            return 1
        print(STATE_DIR / "kubeconfig")
    elif command == "kubeconfig":
        print(STATE_DIR / "kubeconfig")
    return 0


if __name__ == "__main__":
    # hack/realnode.py imports this module as `cluster`: let it find this one, not a second copy.
    sys.modules.setdefault("cluster", sys.modules[__name__])
    sys.exit(main())
