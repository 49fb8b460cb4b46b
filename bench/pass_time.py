"""How long one worker pass takes at a study's size, when one Job has changed: JSON on stdout.

    python -m bench.pass_time                      500 x 10 x 20 = 100,000 cells, parallelism 500
    python -m bench.pass_time --queries 150 --surfaces 4 --locations 5 --parallelism 100

A pass is what `StudyWorker.reconcile` computes between reading its inputs and its first API
call: the Jobs joined with their pods' termination messages (`observed_jobs`), `decide()`, the
write plan (`plan_write`) and the status serialised as the API server would receive it. The
study is brought to a steady state first (parallelism Jobs in flight, a status written and
read back, the last decision's `Derived` kept as the worker keeps it); then each timed pass
sees one more Job finished, and starts its successor. Reported: the median and the worst pass,
and each part's median. No API server is involved: this is the CPU a pass takes.

Then the first pass after a restart (no `Derived` kept: the checkpoint decoded, every cell
counted), timed alone and twice more while an event loop ticks every millisecond: once run on
the loop itself, once as the worker runs it (`workers.decide_off_loop`, in the decision thread).
`loop_lag_*_ms` is the longest the loop waited for its turn beyond its tick in each case.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from bench.scenarios import GOOD_RESULT
from bentham.api.manifest import LocationId, SurfaceId
from bentham.api.names import GROUP, VERSION
from bentham.controller.workers import decide_off_loop
from bentham.core.decision import ObservedJob
from bentham.core.reconcile import decide
from bentham.core.sightings import PodSighting, observed_jobs
from bentham.core.write_plan import StudyVersion, plan_write, stored_status

T = TypeVar("T")
UID = "00000000-0000-4000-8000-000000000100"
T0 = datetime(2030, 1, 1, 12, tzinfo=UTC)


def spec_of(queries: int, surfaces: int, locations: int, parallelism: int) -> dict[str, Any]:
    surface_ids = [s.value for s in list(SurfaceId)[:surfaces]]
    return {
        "tenantId": "bench",
        "executor": {"image": "example.invalid/executor:1", "parallelism": parallelism},
        "manifest": {
            "name": "pass-time",
            "queries": [{"text": f"Benchmark question number {i}?"} for i in range(queries)],
            "surfaces": [{"id": s} for s in surface_ids],
            "locations": [{"id": loc.value} for loc in list(LocationId)[:locations]],
            "completionCriteria": {"requiredSurfaces": {"surfaceIds": surface_ids, "coverageThreshold": 0.95}},
        },
    }


def timed(parts: dict[str, list[float]], part: str, work: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    started = time.perf_counter()
    result = work(*args, **kwargs)
    parts.setdefault(part, []).append((time.perf_counter() - started) * 1000)
    return result


def run(queries: int, surfaces: int, locations: int, parallelism: int, passes: int) -> dict[str, Any]:
    spec = spec_of(queries, surfaces, locations, parallelism)
    common: dict[str, Any] = dict(name="pass-time", namespace="bench", uid=UID, generation=1, created_at=T0, spec=spec)
    version = "0"
    body: dict[str, Any] = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Study", "metadata": {"uid": UID}}
    jobs: dict[str, ObservedJob] = {}
    messages: dict[str, PodSighting] = {}
    stored, written, derived, now = StudyVersion(None), None, None, T0
    parts: dict[str, list[float]] = {}
    totals: list[float] = []
    message = json.dumps(GOOD_RESULT)
    for number in range(passes + 2):  # two passes to a steady state, then the timed ones
        now = T0 + timedelta(seconds=number)
        if number >= 2:  # one Job finished since the last pass
            running = next(job for job in jobs.values() if job.phase == "running")
            jobs[running.name] = replace(running, phase="succeeded", finished_at=now)
            messages[running.name] = PodSighting(running.name, terminated=True, message=message)
        started = time.perf_counter()
        observed = timed(parts, "observe_ms", observed_jobs, jobs.values(), messages, now)
        decision = timed(
            parts, "decide_ms", decide, **common, status=stored.status, jobs=observed, now=now, derived=derived
        )
        plan = timed(parts, "plan_ms", plan_write, stored, None, decision, since_last_write=60.0, interval=0.0)
        if plan.write is not None:
            sent = timed(parts, "serialise_ms", lambda status: json.dumps(status.as_stored()), plan.write)
            version = str(number)  # the Study's resourceVersion after our write
            body["status"], written = json.loads(sent), StudyVersion(plan.write, version)
        if number >= 2:
            totals.append((time.perf_counter() - started) * 1000)
        # As the worker: the status it last wrote, unless the watch showed a newer one.
        stored, derived = stored_status(StudyVersion(body.get("status"), version), written), decision.derived
        for gone in plan.delete:
            jobs.pop(gone, None)
            messages.pop(gone, None)
        for job in plan.create:
            jobs[job.name] = ObservedJob(job.name, job.cell.index, job.attempt, "running", None, None, None)
    timed_parts = {name: round(statistics.median(values[2:]), 2) for name, values in parts.items() if values[2:]}
    observed = observed_jobs(jobs.values(), messages, now)
    restart: dict[str, Any] = dict(common, status=body["status"], jobs=observed, now=now)  # no Derived: decoded afresh
    started = time.perf_counter()
    decide(**restart)
    first_pass_ms = (time.perf_counter() - started) * 1000
    return {
        "bench": "pass_time",
        "cells": queries * surfaces * locations,
        "shape": [queries, surfaces, locations],
        "parallelism": parallelism,
        "passes": passes,
        "pass_median_ms": round(statistics.median(totals), 2),
        "pass_max_ms": round(max(totals), 2),
        **timed_parts,
        "status_kib": round(len(json.dumps(body["status"])) / 1024, 1),
        "first_pass_ms": round(first_pass_ms, 1),
        "loop_lag_inline_ms": round(asyncio.run(loop_lag(lambda: _inline(restart))), 1),
        "loop_lag_thread_ms": round(asyncio.run(loop_lag(lambda: decide_off_loop(**restart))), 1),
    }


async def _inline(inputs: dict[str, Any]) -> Any:
    return decide(**inputs)


async def loop_lag(pass_: Callable[[], Any]) -> float:
    """The longest an event loop ticking every millisecond waited beyond its tick while `pass_()` ran."""
    worst = 0.0
    done = False

    async def tick() -> None:
        nonlocal worst
        while not done:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, (time.perf_counter() - before) * 1000 - 1)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.01)
    await pass_()
    done = True
    await ticker
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--surfaces", type=int, default=10)
    parser.add_argument("--locations", type=int, default=20)
    parser.add_argument("--parallelism", type=int, default=500)
    parser.add_argument("--passes", type=int, default=30)
    args = parser.parse_args(argv)
    result = run(args.queries, args.surfaces, args.locations, args.parallelism, args.passes)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
