"""Builders for the core's tests: a spec with only what a test cares about, and a study harness.

Imported by the tests of this folder (pytest puts the folder on sys.path), not a conftest, so
the builders are plain functions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bentham.api.manifest import Manifest
from bentham.api.spec import StudySpec
from bentham.core import (
    Decision,
    Derived,
    ExecutorPolicy,
    Held,
    JobToCreate,
    Notification,
    ObservedJob,
    StudyEvent,
    decide,
)
from bentham.core.write_plan import StudyVersion, plan_write, status_to_decide_from

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
UID = "7f1c2a9e-0d4b-4c55-9a3e-2b8f6c1d0e99"


def make_spec(
    *,
    queries: int = 2,
    surfaces: Sequence[str] = ("openai-api", "anthropic-api"),
    locations: Sequence[str] = ("us-nyc", "uk-lon"),
    optional: Sequence[str] = (),
    threshold: float = 0.95,
    max_retries: int = 3,
    parallelism: int = 10,
    paused: bool = False,
    cancel: str | None = None,
    min_length: int = 0,
    actual_content: bool = True,
    evidence: str = "metadata",
    deadline: str | None = None,
    consecutive_failure_limit: int | None = None,
    query_text: Callable[[int], str] = lambda q: f"What is the best espresso machine? ({q})",
) -> dict[str, Any]:
    """A valid raw spec; every surface not in `optional` is required."""
    required = [s for s in surfaces if s not in optional]
    manifest: dict[str, Any] = {
        "name": "Espresso study",
        "queries": [{"text": query_text(q)} for q in range(queries)],
        "surfaces": [{"id": s} for s in surfaces],
        "locations": [{"id": loc} for loc in locations],
        "completionCriteria": {
            "requiredSurfaces": {"surfaceIds": required, "coverageThreshold": threshold},
            "maxRetriesPerCell": max_retries,
        },
        "qualityGates": {"minResponseLength": min_length, "requireActualContent": actual_content},
        "evidenceLevel": evidence,
    }
    if optional:
        manifest["completionCriteria"]["optionalSurfaces"] = {"surfaceIds": list(optional)}
    if deadline is not None:
        manifest["deadline"] = deadline
    if consecutive_failure_limit is not None:
        manifest["completionCriteria"]["consecutiveFailureLimit"] = consecutive_failure_limit
    spec: dict[str, Any] = {
        "tenantId": "acme",
        "manifest": manifest,
        "executor": {"image": "registry.example/executor:1", "parallelism": parallelism},
        "paused": paused,
    }
    if cancel is not None:
        spec["cancel"] = {"reason": cancel}
    return spec


DEADLINE = "2030-01-01T16:00:00Z"  # 4 hours after T0


def deadline_spec(
    *, max_parallelism: int | None = 6, policy: dict[str, Any] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """A study of 2 queries (by default) at parallelism 2, due 4 hours after T0, maxParallelism 6."""
    options: dict[str, Any] = {"queries": 2, "parallelism": 2, "deadline": DEADLINE} | kwargs
    spec = make_spec(**options)
    if max_parallelism is not None:
        spec["executor"]["maxParallelism"] = max_parallelism
    if policy is not None:
        spec["policy"] = policy
    return spec


def manifest(**kwargs: Any) -> Manifest:
    """The validated manifest of `make_spec(**kwargs)`."""
    return StudySpec.model_validate(make_spec(**kwargs)).manifest


def result(
    *,
    success: bool = True,
    length: int = 800,
    actual: bool = True,
    code: str | None = None,
    retryable: bool = True,
    evidence: bool = False,
) -> str:
    """An executor's termination message."""
    body: dict[str, Any] = {
        "success": success,
        "responseLength": length,
        "isActualContent": actual,
        "responseTimeMs": 1200,
    }
    if code is not None:
        body["error"] = {"code": code, "message": f"{code} happened", "retryable": retryable}
    if evidence:
        body["evidence"] = [{"url": "s3://bucket/evidence.json", "sha256": "ab" * 32}]
    return json.dumps(body)


def running(job: JobToCreate) -> ObservedJob:
    """The Job of `job` as just created, its pod running."""
    return ObservedJob(job.name, job.cell.index, job.attempt, "running", None, None, None)


def succeeded(job: JobToCreate | ObservedJob, message: str | None = None, *, at: datetime = T0) -> ObservedJob:
    index = job.cell.index if isinstance(job, JobToCreate) else job.cell_index
    return ObservedJob(job.name, index, job.attempt, "succeeded", message or result(), None, at)


def failed(
    job: JobToCreate | ObservedJob,
    message: str | None = None,
    *,
    reason: str | None = None,
    at: datetime = T0,
) -> ObservedJob:
    index = job.cell.index if isinstance(job, JobToCreate) else job.cell_index
    return ObservedJob(job.name, index, job.attempt, "failed", message, reason, at)


@dataclass(frozen=True)
class Decided:
    """A decision as the tests read it: its status as the API server would store it, the rest as decided."""

    decision: Decision

    @property
    def status(self) -> dict[str, Any]:
        return self.decision.status.as_stored()

    @property
    def create(self) -> list[JobToCreate]:
        return self.decision.create

    @property
    def delete(self) -> list[str]:
        return self.decision.delete

    @property
    def events(self) -> list[StudyEvent]:
        return self.decision.events

    @property
    def notifications(self) -> list[Notification]:
        return self.decision.notifications

    @property
    def requeue_after(self) -> float | None:
        return self.decision.requeue_after


@dataclass
class Study:
    """One Study as the worker would see it, with its stored status, held status and Jobs carried between calls."""

    spec: dict[str, Any]
    name: str = "mystudy"
    namespace: str = "tenant-acme"
    uid: str = UID
    created_at: datetime = T0
    generation: int = 1
    status: dict[str, Any] | None = None
    """The status as the API server stores it."""
    held: Held | None = None
    """What the write plan held back, as the worker keeps it."""
    resource_version: str | None = None
    """The Study's version as the API server would give it; these simulations have no other writer to tell apart."""
    jobs: dict[str, ObservedJob] = field(default_factory=dict)
    executor_policy: ExecutorPolicy | None = None
    """The operator admin's policy, as the worker passes it (None: the default, which allows nothing extra)."""

    def decide(
        self, now: datetime = T0, *, jobs: Sequence[ObservedJob] | None = None, derived: Derived | None = None
    ) -> Decided:
        """Calls the decider on the current world, without applying anything; `derived` as the worker keeps it."""
        return Decided(
            decide(
                name=self.name,
                namespace=self.namespace,
                uid=self.uid,
                generation=self.generation,
                created_at=self.created_at,
                spec=self.spec,
                status=status_to_decide_from(self.stored, self.held),
                jobs=list(self.jobs.values()) if jobs is None else list(jobs),
                now=now,
                executor_policy=self.executor_policy,
                derived=derived,
            )
        )

    def step(self, now: datetime = T0, *, since_last_write: float = math.inf, interval: float = 0.0) -> Decided:
        """Decides and carries out the write plan as the worker does: write, delete, create.

        By default the last write is long past, so nothing is held and every change is written.
        """
        decided = self.decide(now)
        plan = plan_write(self.stored, self.held, decided.decision, since_last_write=since_last_write,
                          interval=interval)  # fmt: skip
        if plan.write is not None:
            self.status = plan.write.as_stored()
        self.held = plan.held
        for name in plan.delete:
            self.jobs.pop(name, None)
        for job in plan.create:
            self.jobs.setdefault(job.name, running(job))
        return decided

    def finish(self, name: str, observed: ObservedJob) -> None:
        assert name in self.jobs
        self.jobs[name] = observed

    def running_jobs(self) -> list[ObservedJob]:
        return sorted((j for j in self.jobs.values() if j.phase == "running"), key=lambda j: j.cell_index)

    @property
    def stored(self) -> StudyVersion:
        """The status as the API server stores it, with the Study's version."""
        return StudyVersion(self.status, self.resource_version)

    @property
    def state(self) -> str | None:
        return None if self.status is None else self.status.get("state")

    def condition(self, kind: str) -> dict[str, Any]:
        assert self.status is not None
        return next(c for c in self.status["conditions"] if c["type"] == kind)


def at(seconds: float) -> datetime:
    """T0 plus `seconds`."""
    return T0 + timedelta(seconds=seconds)
