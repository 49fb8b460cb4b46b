"""The floor raw Kubernetes sets: the very same Jobs, created straight through the API, no operator.

    python -m bench.baseline --kubeconfig K --namespace NS --studies 1 --cells 3000 --parallelism 100
    python -m bench.baseline --kubeconfig K --namespace NS --scenario '{"name": "mixed", …}'    (Scenario.to_json)

Each study's Jobs (built by the operator's own `build_job`, under a made-up study uid and with no
owner) go through a window of `parallelism`: create that many, and on each Job's completion
delete it (in the background, as the operator does) and create the next. It prints one JSON
object: the wall time from the first create to the last completion, and this script's own cost.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import resource
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.kube import Api, JsonObject, Watch, namespaced
from bench.scenarios import Scenario, plans, study_body
from bentham.api.spec import StudySpec
from bentham.core.cells import cell_at
from bentham.core.jobs import build_job
from bentham.core.ordering import start_order

USER_AGENT = "bentham-baseline/1"
POOL_SIZE = 32  # as many connections as the operator's client keeps


def planned_jobs(
    name: str, namespace: str, cells: int, parallelism: int, uid: str = "", *, surfaces: int = 4, locations: int = 5
) -> list[dict[str, Any]]:
    """The first attempt's Job of every cell of the benchmark study `name`, in the operator's start order.

    They are the Jobs the operator would create for the study of that uid (a made-up one by
    default), but owned by nothing.
    """
    body = study_body(name, cells, parallelism, surfaces=surfaces, locations=locations)
    spec = StudySpec.model_validate(body["spec"])
    uid = uid or str(uuid.uuid4())
    jobs = []
    for index in start_order(spec.manifest).all:
        cell = cell_at(spec.manifest, index)
        body = build_job(study_name=name, namespace=namespace, study_uid=uid, spec=spec, cell=cell, attempt=1)
        del body["metadata"]["ownerReferences"]
        jobs.append(body)
    return jobs


@dataclass
class Window:
    """One study's Jobs, at most `size` of them in flight."""

    jobs: list[dict[str, Any]]
    size: int
    started: int = 0
    names: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.names = {job["metadata"]["name"] for job in self.jobs}

    def next_jobs(self, count: int) -> list[dict[str, Any]]:
        batch = self.jobs[self.started : self.started + count]
        self.started += len(batch)
        return batch


@dataclass(frozen=True)
class BaselineResult:
    wall_s: float
    jobs: int
    cpu_s: float
    peak_rss_mb: float


def finished(job: JsonObject) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions)


# One loop that creates, retires and refills windows as Jobs finish, and stops on errors and time-outs.
def run_windows(api: Api, namespace: str, windows: Sequence[Window], timeout_s: float) -> float:  # noqa: C901
    """Runs every window to the end; returns the wall time from the first create to the last completion."""
    done: queue.Queue[str] = queue.Queue()
    window_of = {name: window for window in windows for name in window.names}
    jobs_path = namespaced(namespace, "jobs", "batch/v1")
    errors: list[BaseException] = []

    def on_event(kind: str, job: JsonObject) -> None:
        if kind != "DELETED" and finished(job):
            done.put(job["metadata"]["name"])

    def create(body: dict[str, Any]) -> None:
        api.request("POST", jobs_path, body=body, accept=(201, 409))

    def delete(name: str) -> None:
        api.request("DELETE", f"{jobs_path}/{name}", query={"propagationPolicy": "Background"}, accept=(200, 202, 404))

    def note_failure(future: Future[None]) -> None:
        if future.exception() is not None:
            errors.append(future.exception() or RuntimeError())

    watch = Watch(api, jobs_path, on_event).start()
    total = sum(len(window.jobs) for window in windows)
    completed: set[str] = set()
    with ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="baseline") as pool:

        def submit(task: Callable[[Any], None], argument: Any) -> None:
            pool.submit(task, argument).add_done_callback(note_failure)

        started = time.monotonic()
        for window in windows:
            for body in window.next_jobs(window.size):
                submit(create, body)
        try:
            while len(completed) < total:
                if errors or watch.error:
                    raise RuntimeError(f"the baseline failed: {errors[0] if errors else watch.error}")
                if time.monotonic() - started > timeout_s:
                    raise TimeoutError(f"{len(completed)} of {total} Jobs finished in {timeout_s:.0f}s")
                try:
                    name = done.get(timeout=1)
                except queue.Empty:
                    continue
                if name in completed or name not in window_of:
                    continue
                completed.add(name)
                submit(delete, name)
                for body in window_of[name].next_jobs(1):
                    submit(create, body)
            wall_s = time.monotonic() - started
        finally:
            watch.stop()
    return wall_s


def run_baseline(api: Api, namespace: str, scenario: Scenario, timeout_s: float) -> BaselineResult:
    """The scenario's Jobs, straight through the API, with each study's window (its companions' too)."""
    windows = [
        Window(
            planned_jobs(
                plan.name, namespace, plan.cells, plan.parallelism, surfaces=plan.surfaces, locations=plan.locations
            ),
            plan.parallelism,
        )
        for plan in plans(scenario)
    ]
    before = resource.getrusage(resource.RUSAGE_SELF)
    wall_s = run_windows(api, namespace, windows, timeout_s)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return BaselineResult(
        wall_s=wall_s, jobs=sum(len(w.jobs) for w in windows), cpu_s=cpu_s, peak_rss_mb=after.ru_maxrss / 1024
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", type=Path, default=Path(os.environ.get("KUBECONFIG", ".cluster/kubeconfig")))
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--name", default="baseline", help="the scenario's name: it names the studies")
    parser.add_argument("--studies", type=int, default=1)
    parser.add_argument("--cells", type=int, help="cells per study")
    parser.add_argument("--parallelism", type=int, help="Jobs in flight per study")
    parser.add_argument(
        "--scenario",
        metavar="JSON",
        help="a whole Scenario (Scenario.to_json: its grid and companions too), instead of --studies/--cells/…",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="give up after this many seconds")
    args = parser.parse_args(argv)
    if args.scenario:
        scenario = Scenario.from_json(args.scenario)
    elif args.cells and args.parallelism:
        scenario = Scenario(args.name, studies=args.studies, cells=args.cells, parallelism=args.parallelism)
    else:
        parser.error("either --scenario, or --cells and --parallelism")
    result = run_baseline(Api(args.kubeconfig, USER_AGENT, POOL_SIZE), args.namespace, scenario, args.timeout)
    print(json.dumps(asdict(result)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
