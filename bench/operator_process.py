"""The operator as a real process (`python -m bentham`), for the benchmarks and the integration tests alike.

psutil is not a dependency; /proc tells the peak resident memory (VmHWM) and the CPU time
(utime + stime) of a Linux process directly.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port nothing listens on now, for a process about to serve on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class ProcessCost:
    peak_rss_mb: float
    cpu_s: float


def process_cost(pid: int) -> ProcessCost:
    """The process's peak resident memory so far and the CPU seconds it has used (all threads)."""
    status = Path(f"/proc/{pid}/status").read_text()
    peak_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return ProcessCost(peak_rss_mb=peak_kb / 1024, cpu_s=(utime + stime) / CLOCK_TICKS)


class OperatorProcess:
    """The operator started as `make run` would, with its liveness probe (and, if asked, its metrics) on free ports.

    `args` go to `python -m bentham` after `--liveness`; `env` is laid over this process's
    environment, which gets KUBECONFIG=`kubeconfig` first (so `env` may choose another identity).
    """

    def __init__(
        self, kubeconfig: Path, log: Path, *args: str, env: Mapping[str, str] | None = None, serve_metrics: bool = False
    ) -> None:
        self.metrics_port = free_port() if serve_metrics else None
        self._liveness_port = free_port()
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        environment = {**os.environ, "KUBECONFIG": str(kubeconfig), **(env or {})}
        command = [sys.executable, "-m", "bentham", "--liveness", f"http://127.0.0.1:{self._liveness_port}/healthz"]
        command += [*args, *(["--metrics-port", str(self.metrics_port)] if self.metrics_port else [])]
        with open(log, "ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def liveness_url(self) -> str:
        return f"http://127.0.0.1:{self._liveness_port}/healthz"

    def wait_until_live(self, timeout_s: float = 60) -> None:
        """Returns once the liveness probe answers; kills the process and raises if it exits or never answers."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise OperatorFailed(f"the operator exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self._liveness_port}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        self.process.kill()
        self.process.wait()
        raise OperatorFailed(f"the operator was not live after {timeout_s:.0f}s:\n{self.log_tail()}")

    def metrics(self) -> dict[str, float]:
        """The operator's own Prometheus samples, by name (label-less ones; labelled ones summed)."""
        if self.metrics_port is None:
            raise ValueError("this operator was started without serve_metrics=True")
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[sample.name] = samples.get(sample.name, 0.0) + sample.value
        return samples

    def cost(self) -> ProcessCost:
        return process_cost(self.pid)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within 20s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, characters: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-characters:]


class OperatorFailed(RuntimeError):
    """The operator exited, or never became live: the message ends with its log."""


def start_operator(
    kubeconfig: Path, log: Path, *args: str, env: Mapping[str, str] | None = None, serve_metrics: bool = False
) -> OperatorProcess:
    """An OperatorProcess that is already live."""
    operator = OperatorProcess(kubeconfig, log, *args, env=env, serve_metrics=serve_metrics)
    operator.wait_until_live()
    return operator
