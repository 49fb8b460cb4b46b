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
import math
import os
import platform
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

from bench.audit import AuditMark, mark, operator_writes
from bench.kube import Api, JsonObject, Watch, create_namespace, delete_namespace, is_empty, namespaced, wait_until
from bench.operator_process import OperatorProcess, ProcessCost
from bench.profile import Profiler, summarize
from bench.report import summary, targets
from bench.scenarios import SCENARIOS, Scenario, plans, study_names
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
    operator_env: Mapping[str, str] = field(default_factory=dict)
    """Laid over the operator's environment (the smoke test's shorter status interval)."""

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


class Restart:
    """Kills the operator (SIGKILL) once `scenario.restart_at` of the cells have completed, and starts a fresh one.

    What it measures: `restart_resume_s`, from the fresh process's start (just before its exec) to
    the first Job created after the kill, per study still running then (the slowest study's). A
    Job watch started after the old process is dead and a second has passed (for creates still
    in flight at the server to land) sees only the new process's Jobs. The first process's cost
    and counters are kept, to be added to the second's.
    """

    def __init__(self, bench: Bench, scenario: Scenario, namespace: str) -> None:
        self.bench, self.namespace = bench, namespace
        self.threshold = math.ceil((scenario.restart_at or 0) * scenario.total_cells)
        self.enabled = scenario.restart_at is not None
        self.done = False
        self.next_poll = 0.0
        self.completed_at_kill = 0
        self.first_cost: ProcessCost | None = None
        self.first_metrics: dict[str, float] = {}
        self.killed_at = self.started_at = 0.0
        self.resumed: Tracker | None = None
        self.watch: Watch | None = None

    def due(self, operator: OperatorProcess, tracker: Tracker) -> bool:
        """Whether the operator should be restarted now (its counter polled at most every 0.25 s)."""
        if not self.enabled or self.done or time.monotonic() < self.next_poll or tracker.all_ended():
            return False
        self.next_poll = time.monotonic() + 0.25
        self.completed_at_kill = int(operator.metrics().get("bentham_cells_completed_total", 0))
        return self.completed_at_kill >= self.threshold

    def restart(self, operator: OperatorProcess, tracker: Tracker) -> OperatorProcess:
        """The old process killed, a fresh one started (not waited for: the clock runs from its start)."""
        self.first_metrics, self.first_cost = operator.metrics(), operator.cost()
        operator.process.kill()
        operator.process.wait()
        self.killed_at = time.monotonic()
        self.done = True
        running = [name for name in tracker.state if name not in tracker.ended]
        log.info(
            "restart: killed the operator at %d cells completed; %d studies running",
            self.completed_at_kill,
            len(running),
        )
        time.sleep(1)
        self.resumed = Tracker(running)
        self.watch = Watch(
            self.bench.api,
            namespaced(self.namespace, "jobs", "batch/v1"),
            self.resumed.on_job,
            label_selector=LABEL_STUDY,
        ).start()
        self.started_at = time.monotonic()
        return start_process(self.bench, self.namespace, suffix="-restarted")

    def watch_done(self) -> None:
        """Stops the resume watch once every running study has a new Job."""
        if self.watch is not None and self.resumed is not None and self.resumed.all_started():
            self.watch.stop()
            self.watch = None

    def stop(self) -> None:
        if self.watch is not None:
            self.watch.stop()

    def result(self) -> dict[str, Any]:
        if not self.enabled:
            return {}
        resumed = self.resumed
        waits = (
            [resumed.first_job[n] - self.started_at for n in resumed.state if n in resumed.first_job] if resumed else []
        )
        complete = resumed is not None and len(waits) == len(resumed.state)
        return {
            "restart_after_cells": self.threshold,
            "restarted": self.done,
            "restart_cells_completed_at_kill": self.completed_at_kill if self.done else None,
            "restart_gap_s": round(self.started_at - self.killed_at, 2) if self.done else None,
            "restart_resume_s": round(max(waits), 3) if complete and waits else None,
        }


def start_process(bench: Bench, namespace: str, suffix: str = "") -> OperatorProcess:
    return OperatorProcess(
        bench.kubeconfig,
        bench.log_dir / f"operator-{namespace}{suffix}.log",
        "--namespace",
        namespace,
        env=bench.operator_env,
        serve_metrics=True,
    )


def run_operator(bench: Bench, scenario: Scenario) -> dict[str, Any]:  # noqa: C901
    """The scenario's Studies, run by a fresh operator (by two, with a restart); one result."""
    api, study_plans = bench.api, plans(scenario)
    names = [plan.name for plan in study_plans]
    namespace = bench.namespace(scenario, "operator")
    create_namespace(api, namespace, {"bentham.io/bench": "true"})
    operator = start_process(bench, namespace)
    studies_path = namespaced(namespace, PLURAL, f"{GROUP}/{VERSION}")
    tracker = Tracker(names)
    jobs = Watch(api, namespaced(namespace, "jobs", "batch/v1"), tracker.on_job, label_selector=LABEL_STUDY)
    studies = Watch(api, studies_path, tracker.on_study)
    restart = Restart(bench, scenario, namespace)
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
        for plan in study_plans:
            tracker.created[plan.name] = time.monotonic()
            api.request("POST", studies_path, body=plan.body())
        watching_jobs = True
        deadline, next_poll = started + bench.timeout_s(scenario), started + 10
        while not tracker.all_ended():
            if watching_jobs and tracker.all_started():
                jobs.stop()  # its first Jobs are all we need; the rest would only cost the harness CPU
                watching_jobs = False
            if operator.process.poll() is not None:
                raise RuntimeError(f"the operator exited with {operator.process.returncode}:\n{operator.log_tail()}")
            if restart.due(operator, tracker):
                operator = restart.restart(operator, tracker)
            restart.watch_done()
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
        restart.stop()
        if profiler:
            profiler.stop()
        operator.stop()
        clean_up(api, namespace, scenario)

    if restart.first_cost is not None:  # both processes' cost and counters: the first's until its kill
        metrics = {name: value + restart.first_metrics.get(name, 0.0) for name, value in metrics.items()}
        cpu_s = restart.first_cost.cpu_s - cost_before.cpu_s + cost.cpu_s
        peak_rss_mb = max(restart.first_cost.peak_rss_mb, cost.peak_rss_mb)
    else:
        cpu_s, peak_rss_mb = cost.cpu_s - cost_before.cpu_s, cost.peak_rss_mb
    cells, wall_s = scenario.total_cells, ended - started
    own = [plan.name for plan in study_plans if not plan.companion]
    companions = [plan.name for plan in study_plans if plan.companion]
    first_jobs = first_job_times(tracker, own)
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
        "peak_rss_mb": round(peak_rss_mb, 1),
        "cpu_s": round(cpu_s, 2),
        "cpu_s_per_1000_cells": round(cpu_s / cells * 1000, 2),
        "study_kib": round(max(study_bytes(s) for s in stored) / 1024, 1),
        "status_kib": round(max(study_bytes(s.get("status") or {}) for s in stored) / 1024, 1),
        "first_job_s": round(max(first_jobs.values()), 3) if len(first_jobs) == len(own) else None,
        "first_job_median_s": round(median(first_jobs.values()), 3) if first_jobs else None,
        **companion_first_jobs(tracker, companions, own),
        **restart.result(),
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "profiled": profiler is not None,
    }


def first_job_times(tracker: Tracker, names: Sequence[str]) -> dict[str, float]:
    """From each study's create request to the harness seeing its first Job, for the studies that got one."""
    return {name: tracker.first_job[name] - tracker.created[name] for name in names if name in tracker.first_job}


def companion_first_jobs(tracker: Tracker, companions: Sequence[str], large: Sequence[str]) -> dict[str, Any]:
    """The companions' (`mixed`'s small studies') first Jobs: each one's, the worst, the median.

    `small_first_job_while_large_ran`: whether every small study's first Job came before the
    large studies ended (the wait is measured while they run, not after).
    """
    if not companions:
        return {}
    waits = first_job_times(tracker, companions)
    last_first_job = max((tracker.first_job[name] for name in companions if name in tracker.first_job), default=None)
    large_ended = min((tracker.ended[name] for name in large if name in tracker.ended), default=None)
    return {
        "small_first_job_s": {name: round(wait, 3) for name, wait in waits.items()},
        "small_first_job_max_s": round(max(waits.values()), 3) if len(waits) == len(companions) else None,
        "small_first_job_median_s": round(median(waits.values()), 3) if waits else None,
        "small_first_job_while_large_ran": (
            last_first_job is not None and (large_ended is None or last_first_job < large_ended)
        ),
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
            "--scenario",
            scenario.to_json(),
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
        clean_up(api, namespace, scenario)
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


def clean_up(api: Api, namespace: str, scenario: Scenario) -> None:
    """Deletes the scenario's namespace and waits for it to go; a failure is logged, never hides what went wrong before.

    The wait grows with the cells: the namespace controller deletes the scenario's Events (about
    1.4 per cell) before the namespace goes, and at 100,000 cells that took ~8 min, during which
    the next run (the 100k operator's, on 2026-11-30) shared the API server with it.
    """
    try:
        delete_namespace(api, namespace, wait_s=180 + scenario.total_cells / 100)
    except Exception as error:
        log.warning("could not delete namespace %s: %s", namespace, error)


def _shape(bench: Bench, scenario: Scenario) -> dict[str, Any]:
    return {
        "scenario": scenario.name,
        "scale": bench.scale,
        "studies": len(study_names(scenario)),
        "cells": scenario.total_cells,
        "parallelism": scenario.parallelism,
    }


def _mark(bench: Bench) -> AuditMark | None:
    return mark(bench.audit_log) if bench.audit_log else None


def run_scenario(
    bench: Bench, scenario: Scenario, emit: Callable[[dict[str, Any]], None], run: int = 1
) -> list[dict[str, Any]]:
    """The baseline, then the operator; each result is emitted as soon as it is known.

    `run` numbers the repeats of one scenario (`--repeat`); both results carry it.
    """
    results = []
    for kind, runner in (("baseline", run_baseline), ("operator", run_operator)):
        log.info(
            "%s %s (run %d): %d cells in %d studies, parallelism %d%s",
            kind,
            scenario.name,
            run,
            scenario.total_cells,
            len(study_names(scenario)),
            scenario.parallelism,
            f", restarted at {scenario.restart_at:.0%} of the cells"
            if scenario.restart_at and kind == "operator"
            else "",
        )
        try:
            result = {**runner(bench, scenario), "run": run}
        except Exception as error:
            log.exception("%s %s failed", kind, scenario.name)
            result = {
                "kind": kind,
                **_shape(bench, scenario),
                "run": run,
                "error": f"{type(error).__name__}: {error}"[:2000],
            }
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


def chosen(only: Sequence[str] | None, scale: float, restart_at: float | None) -> list[Scenario]:
    """The scenarios to run: those named, else the default run's; scaled, and with `--restart-at`'s restart."""
    scenarios = [s for s in SCENARIOS if (s.name in only if only else s.in_default_run)]
    if restart_at is not None:
        scenarios = [replace(s, restart_at=restart_at or None) for s in scenarios]
    return [s.scaled(scale) for s in scenarios]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", type=Path, default=REPO / ".cluster-bench" / "kubeconfig")
    parser.add_argument("--scale", type=float, default=1.0, help="cells per study times this (default 1)")
    parser.add_argument(
        "--only",
        action="append",
        choices=[s.name for s in SCENARIOS],
        help="run only these (repeatable); without it, every scenario but "
        + ", ".join(s.name for s in SCENARIOS if not s.in_default_run),
    )
    parser.add_argument(
        "--repeat", type=int, default=1, metavar="N", help="run each chosen scenario N times (rounds); median ratio"
    )
    parser.add_argument(
        "--restart-at",
        type=float,
        metavar="FRACTION",
        help="kill and restart the operator once this fraction of the cells completed, in every chosen scenario "
        "(0: never, also in 100k)",
    )
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
    scenarios = chosen(args.only, args.scale, args.restart_at)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    for run_number in range(1, args.repeat + 1):  # rounds: each scenario's repeats spread over the run
        for scenario in scenarios:
            results += run_scenario(
                bench, scenario, lambda result: print(json.dumps(result), flush=True), run=run_number
            )
    duration_s = round(time.monotonic() - started)
    run = {
        "started_at": started_at,
        "duration_s": duration_s,
        "repeat": args.repeat,
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
