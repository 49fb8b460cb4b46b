"""Runs the benchmark scenarios, each beside its raw-Job baseline, and prints the results.

    python -m bench.run --kubeconfig .cluster-bench/kubeconfig            everything, full size
    python -m bench.run --kubeconfig … --scale 0.01 --only 3k             a quick look

For each scenario: first the baseline (`bench.baseline`, the same Jobs created straight through
the API with the same window), then a fresh operator process watching a namespace of its own,
the Studies created at once, and the wait until every one is terminal. One JSON object per
result goes to stdout as it is measured, then the table; `--out` saves the whole run.

What is measured, and how:

- wall time: from the first Study create to the harness seeing the last one terminal (a watch);
  the baseline's from its first Job create to its last Job seen finished.
- first Job: from a Study's create request to the harness seeing its first Job (a watch); the
  slowest study's for several.
- status writes: the operator's `bentham_status_writes_total`.
- API requests: the delta of kube-apiserver's `apiserver_request_total` from just before the
  first create until the namespace holds no Job and no pod: every client's requests, the Job
  controller's, scheduler's, garbage collector's and kwok's included (the baseline pays those
  too). The operator's own writes come from the audit log (see `bench.audit`).
- peak RSS: the operator process's VmHWM; CPU: its utime + stime during the scenario.
- Study size: the stored object's compact JSON, managedFields included, at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.audit import AuditMark, mark, operator_writes
from bench.kube import Api, JsonObject, Watch, create_namespace, delete_namespace, is_empty, namespaced, wait_until
from bench.operator_process import OperatorProcess
from bench.profile import Profiler, summarize
from bench.report import summary, targets
from bench.scenarios import SCENARIOS, Scenario, study_body, study_names
from bentham.api.names import GROUP, PLURAL, VERSION

log = logging.getLogger("bench")

REPO = Path(__file__).resolve().parent.parent
CRD = REPO / "crds" / "bentham.io_studies.yaml"
STAGE = REPO / "bench" / "stages.yaml"
USER_AGENT = "bentham-bench/1"
TERMINAL = frozenset({"complete", "failed", "cancelled"})
LABEL_STUDY = "bentham.io/study"


@dataclass(frozen=True)
class Bench:
    """Where and how the scenarios run."""

    api: Api
    log_dir: Path
    audit_log: Path | None = None
    namespace_prefix: str = "bench"
    seconds_per_cell: float = 0.25
    """Give up on a scenario after 120 s plus this much per cell."""
    settle_s: float = 1.0
    """Pause between the operator answering its liveness probe and the first create, for its watches to start."""
    scale: float = 1.0
    profile_dir: Path | None = None
    """Record the operator with py-spy during each scenario into this directory."""

    @property
    def kubeconfig(self) -> Path:
        return self.api.kubeconfig

    def timeout_s(self, scenario: Scenario) -> float:
        return 120 + self.seconds_per_cell * scenario.total_cells

    def namespace(self, scenario: Scenario, kind: str) -> str:
        return f"{self.namespace_prefix}-{kind}-{scenario.name}-{uuid.uuid4().hex[:5]}".lower()


class Tracker:
    """What the harness's watches saw: each study's first Job and its terminal state, with the time."""

    def __init__(self, names: Sequence[str]) -> None:
        self._lock = threading.Lock()
        self.created: dict[str, float] = {}
        self.first_job: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.state: dict[str, str] = dict.fromkeys(names, "")

    def on_job(self, kind: str, job: JsonObject) -> None:
        if kind != "ADDED":
            return
        study = ((job.get("metadata") or {}).get("labels") or {}).get(LABEL_STUDY, "")
        with self._lock:
            self.first_job.setdefault(study, time.monotonic())

    def on_study(self, kind: str, study: JsonObject) -> None:
        name = study["metadata"]["name"]
        state = str((study.get("status") or {}).get("state") or "")
        with self._lock:
            if name in self.state:
                self.state[name] = state
                if state in TERMINAL:
                    self.ended.setdefault(name, time.monotonic())

    def all_started(self) -> bool:
        return all(name in self.first_job for name in self.state)

    def all_ended(self) -> bool:
        return all(name in self.ended for name in self.state)


def study_bytes(study: JsonObject) -> int:
    return len(json.dumps(study, separators=(",", ":")))


def request_delta(before: Counter[tuple[str, str]], after: Counter[tuple[str, str]]) -> Counter[str]:
    delta: Counter[str] = Counter()
    for (verb, resource), count in after.items():
        if count > before.get((verb, resource), 0):
            delta[f"{verb} {resource}"] += count - before.get((verb, resource), 0)
    return delta


def settle(bench: Bench, namespace: str, scenario: Scenario) -> None:
    """Waits until the namespace holds no Job and no pod: the scenario's whole cost has been paid."""
    wait_until(
        lambda: is_empty(bench.api, namespace),
        60 + scenario.total_cells / 20,
        f"namespace {namespace} to empty",
        every_s=1,
    )


def run_operator(bench: Bench, scenario: Scenario) -> dict[str, Any]:
    """The scenario's Studies, run by a fresh operator; one result."""
    api, names = bench.api, study_names(scenario)
    namespace = bench.namespace(scenario, "operator")
    create_namespace(api, namespace, {"bentham.io/bench": "true"})
    operator = OperatorProcess(
        bench.kubeconfig, bench.log_dir / f"operator-{namespace}.log", "--namespace", namespace, serve_metrics=True
    )
    studies_path = namespaced(namespace, PLURAL, f"{GROUP}/{VERSION}")
    tracker = Tracker(names)
    jobs = Watch(api, namespaced(namespace, "jobs", "batch/v1"), tracker.on_job, label_selector=LABEL_STUDY)
    studies = Watch(api, studies_path, tracker.on_study)
    profiler: Profiler | None = None
    try:
        operator.wait_until_live()
        time.sleep(bench.settle_s)
        jobs.start()
        studies.start()
        requests_before, audit_before, cost_before = api.apiserver_requests(), _mark(bench), operator.cost()
        load_before = os.getloadavg()[0]
        if bench.profile_dir:
            profiler = Profiler(operator.pid, bench.profile_dir / f"{scenario.name}.txt")
        started = time.monotonic()
        for name in names:
            tracker.created[name] = time.monotonic()
            api.request("POST", studies_path, body=study_body(name, scenario.cells, scenario.parallelism))
        watching_jobs = True
        deadline, next_poll = started + bench.timeout_s(scenario), started + 10
        while not tracker.all_ended():
            if watching_jobs and tracker.all_started():
                jobs.stop()  # its first Jobs are all we need; the rest would only cost the harness CPU
                watching_jobs = False
            if operator.process.poll() is not None:
                raise RuntimeError(f"the operator exited with {operator.process.returncode}:\n{operator.log_tail()}")
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"not terminal after {now - started:.0f}s: {tracker.state}")
            if now > next_poll:  # in case the watch missed the last change
                for study in api.get(studies_path)["items"]:
                    tracker.on_study("POLLED", study)
                next_poll = now + 10
            time.sleep(0.05)
        ended = max(tracker.ended.values())
        cost = operator.cost()
        if profiler:
            profiler.stop()
        load_after = os.getloadavg()[0]
        stored = [api.get(f"{studies_path}/{name}") for name in names]
        settle(bench, namespace, scenario)
        # Read once the namespace is empty: a pass counts its cells right after its status write
        # returns, and a watcher may see that write a moment before the operator does.
        metrics = operator.metrics()
        requests = request_delta(requests_before, api.apiserver_requests())
        writes = operator_writes(audit_before, [namespace]) if audit_before else None
    finally:
        jobs.stop()
        studies.stop()
        if profiler:
            profiler.stop()
        operator.stop()
        clean_up(api, namespace)

    cells, wall_s = scenario.total_cells, ended - started
    first_jobs = [tracker.first_job[name] - tracker.created[name] for name in names if name in tracker.first_job]
    status_writes = metrics.get("bentham_status_writes_total", 0.0)
    return {
        "kind": "operator",
        **_shape(bench, scenario),
        "states": dict(Counter(tracker.state.values())),
        "wall_s": round(wall_s, 2),
        "cells_per_s": round(cells / wall_s, 1),
        "status_writes": int(status_writes),
        "status_writes_per_cell": round(status_writes / cells, 4),
        "cells_started": int(metrics.get("bentham_cells_started_total", 0)),
        "cells_completed": int(metrics.get("bentham_cells_completed_total", 0)),
        "api_requests": sum(requests.values()),
        "api_requests_per_cell": round(sum(requests.values()) / cells, 2),
        "api_requests_top": dict(requests.most_common(8)),
        "operator_writes_per_cell": round(sum(writes.values()) / cells, 3) if writes is not None else None,
        "operator_writes": dict(writes.most_common()) if writes is not None else None,
        "peak_rss_mb": round(cost.peak_rss_mb, 1),
        "cpu_s": round(cost.cpu_s - cost_before.cpu_s, 2),
        "cpu_s_per_1000_cells": round((cost.cpu_s - cost_before.cpu_s) / cells * 1000, 2),
        "study_kib": round(max(study_bytes(s) for s in stored) / 1024, 1),
        "status_kib": round(max(study_bytes(s.get("status") or {}) for s in stored) / 1024, 1),
        "first_job_s": round(max(first_jobs), 3) if len(first_jobs) == len(names) else None,
        "first_job_median_s": round(sorted(first_jobs)[len(first_jobs) // 2], 3) if first_jobs else None,
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "profiled": profiler is not None,
    }


def run_baseline(bench: Bench, scenario: Scenario) -> dict[str, Any]:
    """The scenario's Jobs straight through the API (`bench.baseline` in its own process); one result."""
    api = bench.api
    namespace = bench.namespace(scenario, "baseline")
    create_namespace(api, namespace, {"bentham.io/bench": "true"})
    try:
        requests_before, load_before = api.apiserver_requests(), os.getloadavg()[0]
        command = [
            sys.executable,
            "-m",
            "bench.baseline",
            "--kubeconfig",
            str(bench.kubeconfig),
            "--namespace",
            namespace,
            "--name",
            scenario.name,
            "--studies",
            str(scenario.studies),
            "--cells",
            str(scenario.cells),
            "--parallelism",
            str(scenario.parallelism),
            "--timeout",
            str(bench.timeout_s(scenario)),
        ]
        finished = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=bench.timeout_s(scenario) + 120
        )
        if finished.returncode != 0:
            raise RuntimeError(f"the baseline exited with {finished.returncode}:\n{finished.stderr[-3000:]}")
        measured = json.loads(finished.stdout.strip().splitlines()[-1])
        load_after = os.getloadavg()[0]
        settle(bench, namespace, scenario)
        requests = request_delta(requests_before, api.apiserver_requests())
    finally:
        clean_up(api, namespace)
    cells = scenario.total_cells
    return {
        "kind": "baseline",
        **_shape(bench, scenario),
        "wall_s": round(measured["wall_s"], 2),
        "cells_per_s": round(cells / measured["wall_s"], 1),
        "jobs_created": measured["jobs"],
        "api_requests": sum(requests.values()),
        "api_requests_per_cell": round(sum(requests.values()) / cells, 2),
        "api_requests_top": dict(requests.most_common(8)),
        "client_cpu_s": round(measured["cpu_s"], 2),
        "client_peak_rss_mb": round(measured["peak_rss_mb"], 1),
        "load_average": [round(load_before, 2), round(load_after, 2)],
    }


def clean_up(api: Api, namespace: str) -> None:
    """Deletes the scenario's namespace; a failure to do so is logged, never hides what went wrong before."""
    try:
        delete_namespace(api, namespace, wait_s=180)
    except Exception as error:
        log.warning("could not delete namespace %s: %s", namespace, error)


def _shape(bench: Bench, scenario: Scenario) -> dict[str, Any]:
    return {
        "scenario": scenario.name,
        "scale": bench.scale,
        "studies": scenario.studies,
        "cells": scenario.total_cells,
        "parallelism": scenario.parallelism,
    }


def _mark(bench: Bench) -> AuditMark | None:
    return mark(bench.audit_log) if bench.audit_log else None


def run_scenario(bench: Bench, scenario: Scenario, emit: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """The baseline, then the operator; each result is emitted as soon as it is known."""
    results = []
    for kind, runner in (("baseline", run_baseline), ("operator", run_operator)):
        log.info(
            "%s %s: %d x %d cells, parallelism %d",
            kind,
            scenario.name,
            scenario.studies,
            scenario.cells,
            scenario.parallelism,
        )
        try:
            result = runner(bench, scenario)
        except Exception as error:
            log.exception("%s %s failed", kind, scenario.name)
            result = {"kind": kind, **_shape(bench, scenario), "error": f"{type(error).__name__}: {error}"[:2000]}
        results.append(result)
    baseline, operator = results
    if "wall_s" in baseline and "wall_s" in operator:
        operator["baseline_wall_s"] = baseline["wall_s"]
        operator["wall_ratio"] = round(operator["wall_s"] / baseline["wall_s"], 3)
    for result in results:
        emit(result)
    return results


def kubectl(kubeconfig: Path, *args: str) -> None:
    subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", *args], check=True, capture_output=True)


def install_crd(kubeconfig: Path) -> None:
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "crd/studies.bentham.io", "--timeout=60s")


def install_stage(kubeconfig: Path) -> None:
    """The kwok Stage that ends the scenarios' pods in one step (bench/stages.yaml)."""
    kubectl(kubeconfig, "apply", "--server-side", "-f", str(STAGE))


def machine() -> dict[str, Any]:
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", type=Path, default=REPO / ".cluster-bench" / "kubeconfig")
    parser.add_argument("--scale", type=float, default=1.0, help="cells per study times this (default 1)")
    parser.add_argument("--only", action="append", choices=[s.name for s in SCENARIOS], help="run only these")
    parser.add_argument("--out", type=Path, help="write the whole run here as JSON")
    parser.add_argument("--log-dir", type=Path, help="operator logs (default: the cluster's logs/)")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record the operator with py-spy into DIR/<scenario>.txt and summarize it",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="bench: %(message)s", stream=sys.stderr)

    cluster_dir = args.kubeconfig.resolve().parent
    audit_log = cluster_dir / "logs" / "audit.log"
    bench = Bench(
        api=Api(args.kubeconfig, USER_AGENT),
        log_dir=args.log_dir or cluster_dir / "logs",
        audit_log=audit_log if audit_log.exists() else None,
        scale=args.scale,
        profile_dir=args.profile,
    )
    install_crd(args.kubeconfig)
    install_stage(args.kubeconfig)
    scenarios = [s.scaled(args.scale) for s in SCENARIOS if not args.only or s.name in args.only]
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    for scenario in scenarios:
        results += run_scenario(bench, scenario, lambda result: print(json.dumps(result), flush=True))
    duration_s = round(time.monotonic() - started)
    run = {
        "started_at": started_at,
        "duration_s": duration_s,
        "machine": machine(),
        "results": results,
        "targets": [{**t.__dict__, "met": t.met} for t in targets(results, duration_s)],
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(run, indent=2) + "\n")
    print()
    print(summary(results, duration_s))
    if args.profile:
        for scenario in scenarios:
            if (args.profile / f"{scenario.name}.txt").exists():
                print()
                print(summarize(args.profile / f"{scenario.name}.txt"))
    return 1 if any(r.get("error") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
