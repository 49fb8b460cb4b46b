"""Writes the golden fixtures that pin what `decide()` and the pacing rule produce today.

Regenerate only when a behaviour change is intended: the fixtures are the record of today's
behaviour, and test_golden.py fails on any change to it, which is the point of them. Run from
the repository root, and review the diff of the JSON files like code:

    PYTHONPATH=operator:. .venv/bin/python tests/unit/core/golden/generate.py

Each fixture drives a study step by step as the shell would: every step holds the exact inputs
given to `decide()` (the status as stored before the step, the Jobs as observed) and everything
decided. A value repeated from the step before is written as a stand-in, and a decided status as
a merge patch over the status given to `decide()` (test_golden.py expands both). `pacing.json`
holds, for some of those steps, the status last written and what the pacing rule says of the
step's decision. The fixtures were first written from the decider of commit 3fdebb8, and
rewritten for issue 14 (every cell runs, skipped and blocked cells, consecutiveFailureLimit).
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # core_builders, as pytest finds it for the tests of that folder

# The test's own reader and adapters: what is written here is what the test reads and compares.
from core_builders import T0, Study, at, deadline_spec, failed, make_spec, result, running, succeeded  # noqa: E402
from test_golden import (  # noqa: E402
    SAME_BODY,
    SAME_SPEC,
    SAME_STATUS,
    WRITTEN_IS_INPUT,
    as_dict,
    decided,
    expanded,
    outcome,
    paced,
)

from bentham.core import reconcile  # noqa: E402
from bentham.core.jobs import job_name  # noqa: E402
from bentham.core.reconcile import Decision, ObservedJob  # noqa: E402

H = 3600.0
CAPTCHA = result(success=False, code="CAPTCHA")
TIMEOUT = result(success=False, code="TIMEOUT")
AUTH_FAILED = result(success=False, code="AUTH_FAILED")
INVALID_REQUEST = result(success=False, code="INVALID_REQUEST")


def iso(moment: datetime | None) -> str | None:
    """A time as the fixtures hold it: ISO 8601, which `datetime.fromisoformat` reads back exactly."""
    return None if moment is None else moment.isoformat()


def job_dict(job: ObservedJob) -> dict[str, Any]:
    """An observed Job as the fixtures hold it."""
    return {
        "name": job.name,
        "cell_index": job.cell_index,
        "attempt": job.attempt,
        "phase": job.phase,
        "termination_message": job.termination_message,
        "failure_reason": job.failure_reason,
        "finished_at": iso(job.finished_at),
    }


def inputs_of(study: Study, now: datetime, jobs: Sequence[ObservedJob] | None) -> dict[str, Any]:
    """The study's world as `decide()` is given it, frozen."""
    observed = list(study.jobs.values()) if jobs is None else list(jobs)
    return {
        "name": study.name,
        "namespace": study.namespace,
        "uid": study.uid,
        "generation": study.generation,
        "created_at": iso(study.created_at),
        "spec": copy.deepcopy(study.spec),
        "status": copy.deepcopy(study.status),
        "jobs": [job_dict(job) for job in observed],
        "now": iso(now),
    }


def apply(study: Study, decision: Decision, *, held: bool = False) -> None:
    """Applies a decision as the shell would (and as Study.step does): create, write status, delete.

    A `held` status is not written yet, so the Jobs whose outcomes it records are not deleted yet.
    """
    for job in decision.create:
        study.jobs.setdefault(job.name, running(job))
    study.status = copy.deepcopy(as_dict(decision.status))
    for name in [] if held else decision.delete:
        study.jobs.pop(name, None)


class Recorder:
    """The steps of one fixture, recorded as they are played."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    def step(
        self,
        study: Study,
        about: str,
        now: datetime,
        *,
        jobs: Sequence[ObservedJob] | None = None,
        applied: bool = True,
        held: bool = False,
    ) -> Decision:
        """Decides on the study's world and records it.

        Then applies the decision unless `applied` is False; a `held` one (see core.pacing) deletes nothing.
        """
        inputs = inputs_of(study, now, jobs)
        decision = decided(inputs)
        self.steps.append({"about": about, "input": inputs, "expected": copy.deepcopy(outcome(decision))})
        if applied:
            apply(study, decision, held=held)
        return decision


def finish_all(study: Study, when: float, message: str | None = None) -> None:
    """Every running Job of the study ends at `when`, each with `message` (a success by default)."""
    for job in study.running_jobs():
        study.finish(job.name, succeeded(job, message, at=at(when)))


def running_of(study: Study, surface: str) -> list[ObservedJob]:
    """The running Jobs of one surface, to fail or finish a surface at once."""
    return [job for job in study.running_jobs() if surface_of(study, job) == surface]


def surface_of(study: Study, job: ObservedJob) -> str:
    """The surface of a Job's cell: cells are numbered query-major, then surface, then location."""
    manifest = study.spec["manifest"]
    per_query = len(manifest["surfaces"]) * len(manifest["locations"])
    surface: str = manifest["surfaces"][(job.cell_index % per_query) // len(manifest["locations"])]["id"]
    return surface


# --- the scenarios ------------------------------------------------------------------------------


def new_study_to_executing(r: Recorder) -> None:
    """A new study's first moves, the idempotence the shell relies on, and counts held back (see core.pacing)."""
    study = Study(make_spec(queries=13, parallelism=2))
    first, second = r.step(
        study, "a new study of 52 cells: received, validated, queued, executing; 2 Jobs asked", T0
    ).create
    study.jobs.clear()  # the creates are not visible yet
    r.step(study, "its own status fed back before the Jobs show up: the same Jobs, by the same names", at(1))
    r.step(study, "the Jobs are there and nothing changed: the same status, nothing to do", at(30))
    study.finish(first.name, succeeded(first, at=at(40)))
    r.step(study, "one cell completed: recorded, the next cell started; held, its Job kept", at(41), held=True)
    study.finish(second.name, succeeded(second, at=at(42)))
    r.step(study, "a second completion, decided on the held status: both Jobs deleted", at(43))


def pause_and_resume(r: Recorder) -> None:
    """Paused, nothing starts but cells in flight are recorded; resuming fills the slots, or completes the study."""
    study = Study(make_spec(queries=1, surfaces=("openai-api",), parallelism=1, paused=True))

    def pause(paused: bool) -> None:
        study.spec["paused"] = paused
        study.generation += 1

    r.step(study, "created paused: waits in paused, starting nothing", T0)
    pause(False)
    [first] = r.step(study, "unpaused: started, the first of two cells asked for", at(10)).create
    pause(True)
    r.step(study, "paused with the cell in flight", at(11))
    study.finish(first.name, succeeded(first, at=at(12)))
    r.step(study, "the cell in flight completed while paused: recorded, the next cell does not start", at(13))
    pause(False)
    [second] = r.step(study, "resumed: the next cell starts", at(14)).create
    pause(True)
    r.step(study, "paused again with the last cell in flight", at(15))
    study.finish(second.name, succeeded(second, at=at(16)))
    r.step(study, "the last cell completed while paused: the study stays paused", at(17))
    pause(False)
    r.step(study, "resumed: completion is checked in the same call, and the study completes", at(18))


def completions_and_retries(r: Recorder) -> None:
    """Retries wait out their backoff (the requeue asks for it) and are recorded by attempt."""
    study = Study(make_spec(queries=1, surfaces=("openai-api",), locations=("us-nyc", "uk-lon")))
    first, other = r.step(study, "two cells start", T0).create
    study.finish(first.name, failed(first, TIMEOUT, at=at(10)))
    r.step(study, "a retryable TIMEOUT: the cell waits out its backoff, a requeue asked for", at(10))
    r.step(study, "before the backoff is over: nothing starts", at(10.5))
    study.finish(other.name, failed(other, reason="DeadlineExceeded", at=at(11)))
    [retry] = r.step(study, "backoff over: attempt 2 starts; the other cell's Job hit its deadline", at(11)).create
    study.finish(retry.name, succeeded(retry, at=at(11.5)))
    r.step(study, "attempt 2 completed; the other cell still waits out its backoff", at(11.5))
    [again] = r.step(study, "the other cell's retry is due: attempt 2 starts", at(13)).create
    study.finish(again.name, succeeded(again, result(evidence=True), at=at(21)))
    r.step(study, "both cells completed: the study completes", at(22))


def cell_failed_for_good(r: Recorder) -> None:
    """Cells fail for good three ways (non-retryable, quality gate, out of attempts) without failing the study."""
    spec = make_spec(queries=2, surfaces=("openai-api",), max_retries=2, threshold=0.25, min_length=500, parallelism=4)
    study = Study(spec)
    auth, short, late, fine = r.step(study, "four cells start", T0).create
    study.finish(auth.name, succeeded(auth, INVALID_REQUEST, at=at(1)))
    study.finish(short.name, succeeded(short, result(length=120), at=at(1)))
    study.finish(late.name, failed(late, reason="DeadlineExceeded", at=at(1)))
    study.finish(fine.name, succeeded(fine, at=at(1)))
    retries = r.step(study, "a non-retryable error, a too short response, a timed out Job and a success", at(2)).create
    for job in retries:
        study.finish(job.name, failed(job, reason="DeadlineExceeded", at=at(61)))
    r.step(study, "out of attempts: the retried cells fail for good, and the study completes at its threshold", at(62))


def fail_early(r: Recorder) -> None:
    """A required surface that can no longer reach its threshold fails the study at once."""
    spec = make_spec(
        queries=10, surfaces=("openai-api", "grok"), locations=("us-nyc",), threshold=0.9, parallelism=4, max_retries=1
    )
    study = Study(spec)
    jobs = r.step(study, "20 cells, 4 start; maxRetriesPerCell 1 warns", T0).create
    broken = [j for j in jobs if j.cell.surface.value == "grok"]
    study.finish(broken[0].name, succeeded(broken[0], INVALID_REQUEST, at=at(1)))
    r.step(study, "one grok cell failed for good: 9 of 10 can still make 0.9", at(1))
    study.finish(broken[1].name, succeeded(broken[1], INVALID_REQUEST, at=at(2)))
    r.step(study, "a second one failed: grok cannot reach 0.9, the study fails and every Job goes", at(3))
    leftover = running(jobs[0])
    r.step(study, "a failed study records nothing more and deletes a leftover Job", at(4), jobs=[leftover])


def blocked_then_reopened(r: Recorder) -> None:
    """Failures a person can fix that would fail the study ask for a person; the ack reopens those cells."""
    spec = make_spec(queries=10, surfaces=("openai-api", "grok"), locations=("us-nyc",), threshold=0.9, parallelism=4)
    study = Study(spec)
    jobs = r.step(study, "20 cells, 4 start", T0).create
    broken = [j for j in jobs if j.cell.surface.value == "grok"]
    study.finish(broken[0].name, succeeded(broken[0], AUTH_FAILED, at=at(1)))
    r.step(study, "one grok cell blocked (AUTH_FAILED): 9 of 10 can still make 0.9", at(1))
    study.finish(broken[1].name, succeeded(broken[1], AUTH_FAILED, at=at(2)))
    r.step(study, "a second one: grok reaches 0.9 only if a person fixes it, so a person is asked", at(3))
    for job in study.running_jobs():
        study.finish(job.name, succeeded(job, at=at(30)))
    r.step(study, "openai-api goes on meanwhile; no grok cell starts", at(31))
    for job in study.running_jobs():
        study.finish(job.name, succeeded(job, at=at(59)))
    study.spec["interventionAck"] = "rotated the grok key"
    r.step(study, "the acknowledgement reopens both cells with fresh budgets: they start as attempt 2", at(60))


def cancel(r: Recorder) -> None:
    """Cancelling deletes every Job but keeps progress; a terminal study only deletes leftovers."""
    study = Study(make_spec(queries=2, parallelism=2))
    first = r.step(study, "two cells start", T0)
    done = first.create[0]
    study.finish(done.name, succeeded(done, at=at(1)))
    study.spec["cancel"] = {"reason": "budget cut"}
    study.generation = 2
    r.step(study, "cancelled: every Job deleted, progress and checkpoint kept", at(2))
    leftover = succeeded(first.create[1], at=at(3))
    r.step(study, "a cancelled study records nothing more and deletes a leftover Job", at(4), jobs=[leftover])


def optional_surface(r: Recorder) -> None:
    """An optional surface never decides the outcome: awaited when in flight, never started once required are done."""
    spec = make_spec(
        queries=3, surfaces=("openai-api", "grok"), locations=("us-nyc",), optional=("grok",), parallelism=4
    )
    study = Study(spec)
    jobs = r.step(study, "required cells start first, the slack goes to the optional surface", T0).create
    optional = [j for j in jobs if j.cell.surface.value == "grok"]
    for job in jobs:
        if job not in optional:
            study.finish(job.name, succeeded(job, at=at(1)))
    r.step(study, "the required cells completed: the optional cell in flight is awaited, no other starts", at(2))
    study.finish(optional[0].name, succeeded(optional[0], AUTH_FAILED, at=at(3)))
    r.step(study, "the optional cell failed for good: the study completes all the same", at(4))


def deadline_at_risk_escalation(r: Recorder) -> None:
    """At risk is announced once per stage, and raises parallelism a step a minute up to maxParallelism."""
    study = Study(deadline_spec(queries=10))
    r.step(study, "due in 4 hours: figures in status, a requeue within a minute", T0)
    r.step(study, "30 s later nothing changed: the figures stand, nothing is written", at(30))
    r.step(study, "a quarter of the time used and nothing completed: at risk, parallelism raised", at(1 * H))
    r.step(study, "30 s later: the parallelism is not raised again yet", at(1 * H + 30))
    r.step(study, "a minute after the raise: raised again", at(1 * H + 60))
    done = study.running_jobs()[0]
    study.finish(done.name, succeeded(done, at=at(2 * H - 10)))
    r.step(study, "half the time used: stage 1 announced, parallelism raised again", at(2 * H))
    r.step(study, "three quarters of the time used: stage 2 announced", at(3 * H))


def deadline_back_on_schedule(r: Recorder) -> None:
    """Back on schedule lowers the parallelism again; falling behind again is announced again."""
    study = Study(deadline_spec(threshold=1.0, max_parallelism=3))
    r.step(study, "8 cells at parallelism 2, due in 4 hours", T0)
    r.step(study, "nothing completed a quarter in: at risk, parallelism raised to its maximum", at(1 * H))
    finish_all(study, 1 * H + 59)
    r.step(study, "three cells completed at once: back on schedule, parallelism lowered", at(1 * H + 60))
    r.step(study, "nothing more completes by half time: at risk again, announced again", at(2 * H))


def deadline_passed_thresholds_met(r: Recorder) -> None:
    """At the deadline a study meeting its thresholds completes, stopping what is in flight."""
    study = Study(deadline_spec(threshold=0.5, optional=("anthropic-api",)))
    r.step(study, "two required cells start", T0)
    finish_all(study, 600)
    r.step(study, "they completed: the required surface meets 0.5; two more cells start", at(600))
    r.step(study, "the deadline passed with the thresholds met: complete, the Jobs in flight deleted", at(4 * H))


def deadline_missed_human_intervention(r: Recorder) -> None:
    """A missed deadline waits for a person by default, and runs on past it once acknowledged."""
    study = Study(deadline_spec())
    first = r.step(study, "two cells start", T0)
    r.step(study, "the deadline passed below the threshold: the study waits for a person", at(4 * H))
    for job in first.create:
        study.finish(job.name, succeeded(job, at=at(4 * H + 10)))
    r.step(study, "cells in flight finish and are recorded; nothing new starts", at(4 * H + 20))
    study.spec["interventionAck"] = "go-on-late"
    study.generation = 2
    r.step(study, "acknowledged: the study runs on past its deadline", at(4 * H + 60))


def deadline_missed_fail(r: Recorder) -> None:
    """With onDeadlineMissed Fail, a missed deadline fails the study and deletes its Jobs."""
    study = Study(deadline_spec(policy={"onDeadlineMissed": "Fail"}))
    first = r.step(study, "two cells start", T0)
    study.finish(first.create[0].name, failed(first.create[0], TIMEOUT, at=at(4 * H - 5)))
    r.step(study, "the deadline passed below the threshold: the Fail policy fails the study", at(4 * H + 1))


def intervention_then_ack(r: Recorder) -> None:
    """A required surface failing again and again is blocked until spec.interventionAck changes."""
    spec = make_spec(queries=3, locations=("us-nyc",), parallelism=3, consecutive_failure_limit=2)
    study = Study(spec)
    r.step(study, "6 cells, 3 start", T0)
    for job in running_of(study, "openai-api"):
        study.finish(job.name, succeeded(job, CAPTCHA, at=at(5)))
    r.step(study, "two CAPTCHAs in a row: openai-api blocked, a person asked for", at(5))
    for job in running_of(study, "anthropic-api"):
        study.finish(job.name, succeeded(job, at=at(60)))
    r.step(study, "the other surface done, the retries due, but the surface is blocked: nothing starts", at(120))
    study.spec["interventionAck"] = "rotated the credentials"
    study.generation = 2
    r.step(study, "spec.interventionAck set: resolved, the surface unblocked, its cells start again", at(130))
    r.step(study, "the same ack resolves nothing twice", at(131))


def spec_hold_and_valid_again(r: Recorder) -> None:
    """A running study whose spec stops reading is held, never failed, and carries on once it reads again."""
    valid = make_spec(parallelism=2)
    study = Study(copy.deepcopy(valid))
    started = r.step(study, "two cells start", T0)
    study.spec = {**copy.deepcopy(valid), "policyFromANewerCrd": {"x": 1}}
    study.generation = 2
    for job in started.create:
        study.finish(job.name, succeeded(job, at=at(4)))
    r.step(study, "the spec turned invalid: held, nothing judged, started or deleted", at(5))
    r.step(study, "still invalid: the hold is not announced again", at(6))
    study.spec = copy.deepcopy(valid)
    study.generation = 3
    r.step(study, "valid again: the study carries on from its checkpoint", at(7))


def invalid_at_creation(r: Recorder) -> None:
    """An invalid spec fails a new study (InvalidSpec, DeadlineInPast) instead of holding it."""
    spec = make_spec()
    spec["manifest"]["completionCriteria"]["maxRetriesPerCell"] = 0
    spec["manifest"]["surfaces"].append({"id": "no-such-surface"})
    study = Study(spec)
    r.step(study, "an invalid spec fails a new study, naming the fields", T0)
    late = Study(make_spec(deadline="2029-12-31T00:00:00Z"), name="latestudy")
    r.step(late, "a deadline in the past fails a new study", T0)


def unreadable_status(r: Recorder) -> None:
    """A status that cannot be read fails the study rather than start it over."""
    spec = make_spec(queries=1)
    jobs = [running(j) for j in Study(copy.deepcopy(spec)).decide().create]
    study = Study(spec, status={"state": "no-such-state"})
    r.step(study, "a status that cannot be read fails the study and deletes every Job", T0, jobs=jobs)


def unreadable_checkpoint(r: Recorder) -> None:
    """A checkpoint that cannot be read fails the study rather than rerun it; one for another matrix holds it."""
    study = Study(make_spec(queries=1, parallelism=2))
    r.step(study, "two cells start", T0)
    grown = copy.deepcopy(study.spec)
    grown["manifest"]["queries"].append({"text": "one more"})
    r.step(
        Study(grown, generation=2, status=study.status, jobs=dict(study.jobs)),
        "had the manifest grown a query, its checkpoint would not fit: the study would be held (MatrixChanged)",
        at(1),
        applied=False,
    )
    assert study.status is not None
    study.status["checkpoint"]["cells"] = "garbage!"
    r.step(study, "the checkpoint cannot be read: the study fails", at(1))


def checkpoint_read_back(r: Recorder) -> None:
    """A status written mid-study, its checkpoint holding every kind of cell, must read back the same."""
    study = Study(make_spec(queries=2, surfaces=("openai-api",), parallelism=3, threshold=0.5))
    a, b, c = study.step(T0).create
    study.finish(a.name, succeeded(a, at=at(5)))
    study.finish(b.name, succeeded(b, AUTH_FAILED, at=at(5)))
    study.finish(c.name, failed(c, TIMEOUT, at=at(5)))
    study.step(at(5))  # the setup, not recorded: completed, failed, waiting to retry and running cells
    [d] = study.running_jobs()
    r.step(study, "read back as written: nothing new to record, the retry not due yet", at(5.5), applied=False)
    r.step(study, "the running cell's Job gone: asked for again under its name", at(5.5), jobs=[], applied=False)
    done = ObservedJob(d.name, d.cell_index, d.attempt, "succeeded", result(), None, at(30))
    retry = ObservedJob(job_name(study.name, study.uid, c.cell.index, 2), c.cell.index, 2, "running", None, None, None)
    stray = ObservedJob("stray", 999, 1, "running", None, None, None)
    r.step(
        study,
        "after a lost status write: a retry started meanwhile adopted, a finished Job judged, a stray deleted",
        at(40),
        jobs=[done, retry, stray],
        applied=False,
    )


SCENARIOS: dict[str, Callable[[Recorder], None]] = {
    "new_study_to_executing": new_study_to_executing,
    "pause_and_resume": pause_and_resume,
    "completions_and_retries": completions_and_retries,
    "cell_failed_for_good": cell_failed_for_good,
    "fail_early": fail_early,
    "blocked_then_reopened": blocked_then_reopened,
    "cancel": cancel,
    "optional_surface": optional_surface,
    "deadline_at_risk_escalation": deadline_at_risk_escalation,
    "deadline_back_on_schedule": deadline_back_on_schedule,
    "deadline_passed_thresholds_met": deadline_passed_thresholds_met,
    "deadline_missed_human_intervention": deadline_missed_human_intervention,
    "deadline_missed_fail": deadline_missed_fail,
    "intervention_then_ack": intervention_then_ack,
    "spec_hold_and_valid_again": spec_hold_and_valid_again,
    "invalid_at_creation": invalid_at_creation,
    "unreadable_status": unreadable_status,
    "unreadable_checkpoint": unreadable_checkpoint,
    "checkpoint_read_back": checkpoint_read_back,
}


# --- pacing -------------------------------------------------------------------------------------

PACES = [(0.0, 5.0), (2.0, 5.0), (5.0, 5.0), (10.0, 5.0), (30.0, 5.0)]
"""(since_write_s, interval_s) pairs each case is paced at."""

PACED: list[tuple[str, int, int | None, str]] = [
    ("new_study_to_executing", 0, None, "the first decision of a new study: a new state"),
    ("new_study_to_executing", 2, None, "nothing changed"),
    ("new_study_to_executing", 3, None, "one completion in 52 cells: less than a step"),
    ("new_study_to_executing", 4, 2, "a second completion on top of a held status: a step since the last write"),
    ("completions_and_retries", 1, None, "a cell waiting to retry is announced"),
    ("cell_failed_for_good", 1, None, "a cell failed for good"),
    ("pause_and_resume", 2, None, "paused: a new state"),
    ("pause_and_resume", 3, None, "one completion in 2 cells: a step of outcomes"),
    ("deadline_at_risk_escalation", 1, None, "the deadline figures stand between refreshes"),
    ("deadline_at_risk_escalation", 2, None, "at risk: announced and notified"),
    ("spec_hold_and_valid_again", 1, None, "the spec turned invalid: a condition"),
]
"""The scenario steps whose decision is paced: (fixture, step, the step whose decided status was written last
when not the step's input status, what it is)."""


def paced_cases(fixtures: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """What the pacing rule says of the decisions of some scenario steps, against the status last written."""
    cases = []
    for name, number, written_by, about in PACED:
        steps = fixtures[name]["steps"]
        inputs = steps[number]["input"]
        written = inputs["status"] if written_by is None else steps[written_by]["expected"]["status"]
        decision = decided(inputs)
        paces = []
        for since, interval in PACES:
            held, at_once = paced(written, decision, since_write_s=since, interval_s=interval)
            paces.append({"since_write_s": since, "interval_s": interval, "hold_for": held, "write_at_once": at_once})
        shown = WRITTEN_IS_INPUT if written is not None and written == inputs["status"] else written
        cases.append({"about": about, "fixture": name, "step": number, "written": shown, "paces": paces})
    return cases


def patch_of(before: Any, after: Any) -> Any:
    """The JSON merge patch (RFC 7386) that turns `before` into `after`: what a step changed in the status."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return copy.deepcopy(after)
    patch = {key: patch_of(before.get(key), value) for key, value in after.items() if before.get(key, None) != value}
    patch.update({key: None for key in before if key not in after})
    return patch


def compacted(fixture: dict[str, Any]) -> dict[str, Any]:
    """The fixture with repeated values replaced by stand-ins, decided statuses by patches (test_golden.expanded)."""
    compact = copy.deepcopy(fixture)
    steps = fixture.get("steps", [])
    bodies: dict[str, Any] = {}
    for number, (step, out) in enumerate(zip(steps, compact.get("steps", []), strict=True)):
        inputs, before = step["input"], steps[number - 1] if number else None
        if before is not None and inputs["status"] is not None and inputs["status"] == before["expected"]["status"]:
            out["input"]["status"] = SAME_STATUS
        if before is not None and inputs["spec"] == before["input"]["spec"]:
            out["input"]["spec"] = SAME_SPEC
        if isinstance(inputs["status"], dict):
            patch = patch_of(inputs["status"], step["expected"]["status"])
            out["expected"] = {"status_patch": patch, **{k: v for k, v in out["expected"].items() if k != "status"}}
        for job, shown in zip(step["expected"]["create"], out["expected"]["create"], strict=True):
            if job["name"] in bodies and bodies[job["name"]] == job["body"]:
                shown["body"] = SAME_BODY
            bodies.setdefault(job["name"], job["body"])
    return compact


def dumped(value: Any, depth: int = 0, *, flat_from: int = 5) -> str:
    """JSON laid out to `flat_from` levels (a step's fields' items), each item then on one line: small, diffable."""
    if depth >= flat_from or not isinstance(value, dict | list) or not value:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    pad, inner = " " * depth, " " * (depth + 1)
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {dumped(v, depth + 1, flat_from=flat_from)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    items = [f"{inner}{dumped(v, depth + 1, flat_from=flat_from)}" for v in value]
    return "[\n" + ",\n".join(items) + f"\n{pad}]"


def main() -> None:
    """Writes every fixture, checking it reads back as written."""
    print(f"decider: {reconcile.__file__}")
    for path in HERE.glob("*.json"):
        path.unlink()
    fixtures: dict[str, dict[str, Any]] = {}
    for name, play in SCENARIOS.items():
        recorder = Recorder()
        play(recorder)
        fixtures[name] = {"scenario": name, "about": (play.__doc__ or "").strip(), "steps": recorder.steps}
    fixtures["pacing"] = {
        "scenario": "pacing",
        "about": "What the pacing rule says of (status written, decision) pairs met while a study runs.",
        "cases": paced_cases(fixtures),
    }
    total = 0
    for name, fixture in fixtures.items():
        text = dumped(compacted(fixture), flat_from=4 if name == "pacing" else 5) + "\n"
        assert expanded(json.loads(text)) == fixture, f"{name} does not read back as written"
        (HERE / f"{name}.json").write_text(text, encoding="utf-8")
        total += len(text)
        print(f"{name}.json: {len(text) // 1024} KB")
    print(f"{len(fixtures)} fixtures, {total // 1024} KB")


if __name__ == "__main__":
    main()
