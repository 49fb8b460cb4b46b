"""What the core is told of a Job's pod, and when a finished Job's attempt may be judged.

A Job can be seen finished before its pod is listed as ended; judging it then would judge the
attempt without its result. So a finished Job whose pod has not been seen terminated counts as
running for up to `POD_GRACE`, unless the Job was stopped at its deadline (its pod was killed:
no result will come).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bentham.core.decision import ObservedJob

POD_GRACE = timedelta(seconds=15)


@dataclass(frozen=True)
class PodSighting:
    """The executor container of one Job's pod: whether it ended, and its termination message."""

    job_name: str
    terminated: bool
    message: str | None


def observed_jobs(jobs: Iterable[ObservedJob], pods: Mapping[str, PodSighting], now: datetime) -> list[ObservedJob]:
    """A study's Jobs with their pods' termination messages filled in, late ones still running."""
    observed = []
    for job in jobs:
        pod = pods.get(job.name)
        if pod is not None and pod.terminated:
            observed.append(replace(job, termination_message=pod.message))
            continue
        waited = now - job.finished_at if job.finished_at else POD_GRACE
        late = job.phase != "running" and waited < POD_GRACE and job.failure_reason != "DeadlineExceeded"
        observed.append(replace(job, phase="running") if late else job)
    return observed
