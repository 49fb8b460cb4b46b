"""A real node beside the kwok nodes: a kubelet, containerd, runc and a CNI bridge on this machine.

    python3 hack/cluster.py up --node real    the control plane, then this node
    python3 hack/cluster.py down              stops the node too, and removes its network rules
    python3 hack/cluster.py stop-node         stops only the node

The kubelet is the control plane's own multi-call binary (`controlplane kubelet`), so it is the
same Kubernetes release. The container runtime is Debian's containerd 1.6 with runc, the network
the CNI `bridge` and `host-local` plugins (Debian's containernetworking-plugins), all with their
state under the cluster's folder (`.cluster/node/`). Pods reach the API server by the `kubernetes`
Service's ClusterIP: one DNAT rule on the bridge sends it to the API server on 127.0.0.1, which
is all kube-proxy would do here (docs/controlplane.md says why no kube-proxy).

The node, its bridge, its cgroups and its iptables chain belong to the whole machine: one real
node per machine, owned by one cluster folder; `up --node real` refuses while another cluster's
node runs.

Standard library only, like hack/cluster.py.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import cluster

NODE_NAME = "real-node"
# Pods that ask for the real node select this label and tolerate the taint of the same key.
NODE_LABEL = ("bentham.io/node", "real")
BRIDGE = "bentham0"
POD_SUBNET = "10.234.0.0/24"
# The bridge's own address: the pods' gateway, and the node's InternalIP (the kubelet refuses a
# loopback node IP, and the API server reaches the kubelet there for `kubectl logs`).
NODE_IP = "10.234.0.1"
SERVICE_SUBNET = "10.0.0.0/24"  # the API server's --service-cluster-ip-range
KUBERNETES_SERVICE_IP = "10.0.0.1"
IPTABLES_CHAIN = "BENTHAM-REAL-NODE"
# A static busybox: the pods' sandbox (its entrypoint sleeps) and a shell for tests to run real
# processes in (`command: [/bin/sh, -c, ...]`).
BUSYBOX_IMAGE = "localhost/bentham/busybox:1"
# Machine-wide: which cluster folder owns the real node, and the kubelet's own lock.
MACHINE_DIR = Path("/run/bentham")
OWNER_FILE = MACHINE_DIR / "real-node.json"
KUBELET_LOCK = MACHINE_DIR / "real-node.lock"
PARTS = ("containerd", "kubelet")
REQUIRED = {
    "containerd": "containerd",
    "runc": "runc",
    "ctr": "containerd",
    "iptables": "iptables",
    "ip": "iproute2",
    "busybox": "busybox-static",
}
CNI_BIN_DIR = Path("/usr/lib/cni")
NETNS_DIRS = ("/var/run/netns/", "/run/netns/")


def log(message: str) -> None:
    cluster.log(f"real node: {message}")


@dataclass(frozen=True)
class NodePaths:
    root: Path

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd.toml"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd.sock"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def kubelet_config(self) -> Path:
        return self.root / "kubelet.yaml"

    @property
    def kubelet_kubeconfig(self) -> Path:
        return self.root / "kubelet.kubeconfig"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def ports(self) -> Path:
        return self.root / "ports.json"


def node_paths() -> NodePaths:
    return NodePaths(cluster.STATE_DIR / "node")


# --------------------------------------------------------------------------------------------
# Ownership: one real node per machine


def owner() -> dict[str, str | int] | None:
    """The cluster folder whose real node runs on this machine, or None when none runs."""
    try:
        recorded = json.loads(OWNER_FILE.read_text())
        pid = int(recorded["kubelet_pid"])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, KeyError):
        return None
    if b"kubelet" not in cmdline:
        return None
    return dict(recorded)


def refuse_when_owned_elsewhere() -> None:
    current = owner()
    if current is not None and Path(str(current["cluster"])) != cluster.STATE_DIR.resolve():
        raise SystemExit(
            f"cluster: a real node already runs on this machine, for the cluster in {current['cluster']} "
            f"(kubelet pid {current['kubelet_pid']}); one real node per machine: stop it first with "
            f"`BENTHAM_CLUSTER_DIR={current['cluster']} python3 hack/cluster.py down`"
        )


def check_machine() -> None:
    """Refuses, naming what is wrong, when this machine cannot run this cluster's real node now."""
    check_prerequisites()
    refuse_when_owned_elsewhere()


def check_prerequisites() -> None:
    missing = sorted({package for tool, package in REQUIRED.items() if shutil.which(tool) is None})
    missing += ["containernetworking-plugins"] if not (CNI_BIN_DIR / "bridge").exists() else []
    if missing:
        raise SystemExit(
            f"cluster: the real node needs Debian packages that are missing: {' '.join(missing)} "
            f"(apt-get install {' '.join(missing)})"
        )
    if os.geteuid() != 0:
        raise SystemExit("cluster: the real node needs root (it runs containers, a bridge and iptables rules)")


# --------------------------------------------------------------------------------------------
# Configuration files


def node_ports(paths: NodePaths) -> dict[str, int]:
    """The kubelet's ports, chosen free once and kept (10250 may be someone else's)."""
    if paths.ports.exists():
        return dict(json.loads(paths.ports.read_text()))
    chosen = {"kubelet": cluster.free_port(), "kubelet_healthz": cluster.free_port()}
    paths.ports.write_text(json.dumps(chosen))
    return chosen


def containerd_config(paths: NodePaths) -> str:
    root = paths.root / "containerd"
    return f"""\
version = 2
root = "{root / "root"}"
state = "{root / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "{paths.containerd_socket}"

[ttrpc]
  address = "{paths.containerd_socket}.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{BUSYBOX_IMAGE}"
  # Without CAP_SYS_RESOURCE (this VM) runc cannot give the sandbox a negative OOM score.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{paths.cni_conf_dir}"
"""


def cni_config(paths: NodePaths) -> dict[str, object]:
    # No default route and no masquerade: a pod reaches the node and the Service range, nothing else.
    return {
        "cniVersion": "1.0.0",
        "name": "bentham",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": NODE_IP}]],
                    "routes": [{"dst": SERVICE_SUBNET}],
                    "dataDir": str(paths.root / "cni" / "ipam"),
                },
            }
        ],
    }


def kubelet_config(paths: NodePaths, ports: dict[str, int]) -> dict[str, object]:
    pki = cluster.STATE_DIR / "pki"
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # This machine's cgroups are v1; a kubelet of 1.35 or later refuses them unless told.
        "failCgroupV1": False,
        # containerd 1.6 cannot report its cgroup driver (the kubelet logs that once).
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "failSwapOn": False,
        "address": NODE_IP,
        "port": ports["kubelet"],
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports["kubelet_healthz"],
        "tlsCertFile": str(pki / "kubelet.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        "podLogsDir": str(paths.root / "pod-logs"),
        "registerWithTaints": [{"key": NODE_LABEL[0], "value": NODE_LABEL[1], "effect": "NoSchedule"}],
        # The node's images were imported, not pulled: garbage-collecting one would lose it.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "2%", "imagefs.available": "2%"},
        "clusterDomain": "cluster.local",
        "resolvConf": "/etc/resolv.conf",
        "serializeImagePulls": False,
    }


def write_configs(paths: NodePaths, ports: dict[str, int]) -> None:
    paths.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    paths.containerd_config.write_text(containerd_config(paths))
    (paths.cni_conf_dir / "10-bentham.conflist").write_text(json.dumps(cni_config(paths), indent=2) + "\n")
    # JSON is YAML: the kubelet reads it as its configuration file.
    paths.kubelet_config.write_text(json.dumps(kubelet_config(paths, ports), indent=2) + "\n")
    pki = cluster.STATE_DIR / "pki"
    cluster.write_kubeconfig(paths.kubelet_kubeconfig, pki, cluster.ports().apiserver, user="kubelet-client")


def make_node_pki() -> None:
    """The kubelet's client certificate (a node identity, for the Node authorizer) and its serving one."""
    pki = cluster.STATE_DIR / "pki"
    cluster.issue_certificate(pki, "kubelet-client", f"/O=system:nodes/CN=system:node:{NODE_NAME}", client=True)
    cluster.issue_certificate(pki, "kubelet", f"/CN={NODE_NAME}", server_names=f"IP:{NODE_IP},DNS:{NODE_NAME}")


# --------------------------------------------------------------------------------------------
# Network


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SystemExit(f"cluster: {' '.join(argv)} failed:\n{result.stderr}")
    return result


def network_up(apiserver_port: int) -> None:
    """The bridge with the node's address, and the Service rule; idempotent."""
    if run("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        run("ip", "link", "add", BRIDGE, "type", "bridge")
    if NODE_IP not in run("ip", "-4", "-o", "addr", "show", "dev", BRIDGE).stdout:
        run("ip", "addr", "add", f"{NODE_IP}/{POD_SUBNET.split('/')[1]}", "dev", BRIDGE)
    run("ip", "link", "set", BRIDGE, "up")
    # Lets a packet from the bridge be sent to 127.0.0.1 (and its reply come back): the API server
    # listens on loopback only.
    Path(f"/proc/sys/net/ipv4/conf/{BRIDGE}/route_localnet").write_text("1\n")
    iptables_down()
    run("iptables", "-t", "nat", "-N", IPTABLES_CHAIN)
    run("iptables", "-t", "nat", "-A", "PREROUTING", "-i", BRIDGE, "-j", IPTABLES_CHAIN)
    run(
        "iptables", "-t", "nat", "-A", IPTABLES_CHAIN, "-d", f"{KUBERNETES_SERVICE_IP}/32", "-p", "tcp",
        "--dport", "443", "-j", "DNAT", "--to-destination", f"127.0.0.1:{apiserver_port}",
    )  # fmt: skip


def iptables_down() -> None:
    while (
        run("iptables", "-t", "nat", "-D", "PREROUTING", "-i", BRIDGE, "-j", IPTABLES_CHAIN, check=False).returncode
        == 0
    ):
        pass
    run("iptables", "-t", "nat", "-F", IPTABLES_CHAIN, check=False)
    run("iptables", "-t", "nat", "-X", IPTABLES_CHAIN, check=False)


def network_down() -> None:
    iptables_down()
    run("ip", "link", "delete", BRIDGE, check=False)


# --------------------------------------------------------------------------------------------
# The pause image, made here: there is no registry to pull one from


def oci_archive(name: str, files: dict[str, bytes | str], entrypoint: list[str]) -> bytes:
    """A single-layer OCI image archive, byte for byte the same every time (what `ctr import` reads).

    `files` maps a path to an executable's content, or to a symlink's target.
    """
    layer_tar = io.BytesIO()
    with tarfile.open(fileobj=layer_tar, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, content in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.mtime = 0
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o755
                tar.addfile(info, io.BytesIO(content))
    diff_id = hashlib.sha256(layer_tar.getvalue()).hexdigest()
    layer = gzip.compress(layer_tar.getvalue(), mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": entrypoint},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        }
    ).encode()
    blobs: dict[str, bytes] = {}

    def blob(media_type: str, content: bytes) -> dict[str, object]:
        digest = hashlib.sha256(content).hexdigest()
        blobs[digest] = content
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(content)}

    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": blob("application/vnd.oci.image.config.v1+json", config),
        "layers": [blob("application/vnd.oci.image.layer.v1.tar+gzip", layer)],
    }
    manifest_descriptor = blob("application/vnd.oci.image.manifest.v1+json", json.dumps(manifest).encode())
    manifest_descriptor["platform"] = {"architecture": "amd64", "os": "linux"}
    manifest_descriptor["annotations"] = {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name}
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [manifest_descriptor],
    }

    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        entries = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": json.dumps(index).encode()}
        entries |= {f"blobs/sha256/{digest}": content for digest, content in blobs.items()}
        for path, content in entries.items():
            info = tarfile.TarInfo(path)
            info.size, info.mtime = len(content), 0
            tar.addfile(info, io.BytesIO(content))
    return archive.getvalue()


def busybox_image() -> bytes:
    """Debian's static busybox, with its applets' links; as a sandbox it sleeps (containerd stops one with SIGKILL)."""
    busybox = Path(shutil.which("busybox") or "/bin/busybox").read_bytes()
    files: dict[str, bytes | str] = {"bin/busybox": busybox}
    files |= {f"bin/{applet}": "busybox" for applet in ("sh", "sleep", "cat", "echo", "env", "ls")}
    return oci_archive(BUSYBOX_IMAGE, files, ["/bin/busybox", "sleep", "2147483647"])


def ctr(paths: NodePaths, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["ctr", f"--address={paths.containerd_socket}", "--namespace=k8s.io", *args],
        input=stdin,
        capture_output=True,
        check=False,
    )


def import_image(paths: NodePaths, archive: Path | bytes) -> None:
    """Imports an OCI archive into the node's containerd, where the kubelet finds it by name."""
    content = archive if isinstance(archive, bytes) else archive.read_bytes()
    result = ctr(paths, "images", "import", "--no-unpack=false", "-", stdin=content)
    if result.returncode != 0:
        raise SystemExit(f"cluster: ctr images import failed:\n{result.stderr.decode(errors='replace')}")


# --------------------------------------------------------------------------------------------
# Up and down


def command_lines(binaries: cluster.Binaries, paths: NodePaths) -> dict[str, list[str]]:
    return {
        "containerd": ["containerd", f"--config={paths.containerd_config}", "--log-level=warn"],
        "kubelet": [
            str(binaries.controlplane),
            "kubelet",
            f"--config={paths.kubelet_config}",
            f"--kubeconfig={paths.kubelet_kubeconfig}",
            f"--root-dir={paths.kubelet_root}",
            f"--cert-dir={paths.root / 'kubelet-pki'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
            f"--node-labels={NODE_LABEL[0]}={NODE_LABEL[1]},type=real",
            f"--lock-file={KUBELET_LOCK}",
            "--v=0",
        ],
    }


def up(binaries: cluster.Binaries, kubeconfig: Path) -> None:
    """Starts containerd and the kubelet (once the control plane is up) and waits for the node to be Ready."""
    check_machine()
    paths = node_paths()
    paths.root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    make_node_pki()
    write_configs(paths, node_ports(paths))
    network_up(cluster.ports().apiserver)
    commands = command_lines(binaries, paths)

    cluster.start("containerd", commands["containerd"])
    cluster.wait_for("containerd's socket", lambda: ctr(paths, "version").returncode == 0, "containerd")
    import_image(paths, busybox_image())

    MACHINE_DIR.mkdir(parents=True, exist_ok=True)
    cluster.start("kubelet", commands["kubelet"])
    OWNER_FILE.write_text(
        json.dumps({"cluster": str(cluster.STATE_DIR.resolve()), "kubelet_pid": cluster.running_pid("kubelet")})
    )
    cluster.wait_for("the real node to register", lambda: node_registered(kubeconfig), "kubelet")
    cluster.kubectl(kubeconfig, "wait", "--for=condition=Ready", f"node/{NODE_NAME}", "--timeout=90s")
    log(f"{NODE_NAME} ready in {time.monotonic() - started:.1f}s")


def node_registered(kubeconfig: Path) -> bool:
    result = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", "get", "node", NODE_NAME], capture_output=True)
    return result.returncode == 0


def stop_containers(paths: NodePaths) -> None:
    """Kills every container and sandbox the node runs, and their network namespaces, so that nothing
    outlives `down` (the kubelet, restarted, replaces the sandboxes of pods that still exist)."""
    namespaces = set()
    for container in ctr(paths, "containers", "list", "--quiet").stdout.decode().split():
        with contextlib.suppress(ValueError):
            spec = json.loads(ctr(paths, "containers", "info", container).stdout)["Spec"]
            for namespace in spec.get("linux", {}).get("namespaces", []):
                if namespace.get("type") == "network" and namespace.get("path", "").startswith(NETNS_DIRS):
                    namespaces.add(Path(namespace["path"]).name)
    tasks = ctr(paths, "tasks", "list", "--quiet").stdout.decode().split()
    for task in tasks:
        ctr(paths, "tasks", "kill", "--all", "--signal=SIGKILL", task)
    deadline = time.monotonic() + 10
    for task in tasks:
        while ctr(paths, "tasks", "delete", task).returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
    for name in namespaces:  # takes the pod's end of its veth with it
        run("ip", "netns", "delete", name, check=False)


def unmount_under(root: Path) -> None:
    """Unmounts what the kubelet and containerd left mounted under the node's folder, deepest first."""
    prefix = str(root.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount_point in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        run("umount", "--lazy", mount_point, check=False)


def stop(part: str) -> None:
    pid = cluster.running_pid(part)
    if pid is None:
        return
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while cluster.running_pid(part) and time.monotonic() < deadline:
        time.sleep(0.1)
    if cluster.running_pid(part):
        os.killpg(pid, signal.SIGKILL)
    cluster.pid_file(part).unlink(missing_ok=True)


def down() -> None:
    """Stops the kubelet, every container, containerd; removes the bridge and the rule. Keeps the data."""
    paths = node_paths()
    if not paths.root.exists():
        return
    stop("kubelet")
    if cluster.running_pid("containerd"):
        stop_containers(paths)
    stop("containerd")
    unmount_under(paths.root)
    current = owner()
    if current is None or Path(str(current["cluster"])) == cluster.STATE_DIR.resolve():
        network_down()
        OWNER_FILE.unlink(missing_ok=True)
