"""Today's decisions, pinned: the golden fixtures replayed through `decide()` and the pacing rule, step by step.

The fixtures (golden/*.json) were written by golden/generate.py from the decider of commit
3fdebb8: each step holds the exact inputs of one call of `decide()` and everything it decided.
A refactor that preserves behaviour leaves every step passing. Regenerate the fixtures only when
a behaviour change is intended (see golden/generate.py).

What a refactor may change without changing behaviour is kept to the adapters below: `as_dict`
(a decided status as the stored dict), `decided` (one call of the decider) and `paced` (one call
of the pacing rule).
"""

from __future__ import annotations

import copy
import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from bentham.api.status import StudyStatus
from bentham.core.pacing import hold_for, write_at_once
from bentham.core.reconcile import Decision, ObservedJob, decide

GOLDEN = Path(__file__).parent / "golden"
PACING = "pacing.json"
SCENARIOS = sorted(path.name for path in GOLDEN.glob("*.json") if path.name != PACING)

SAME_SPEC = "<the spec of the step before>"
SAME_STATUS = "<the status the step before decided>"
SAME_BODY = "<the body asked for before under this name>"
WRITTEN_IS_INPUT = "<the status given to decide()>"
"""Stand-ins the fixtures use for a value repeated from the step before, to stay small.

Likewise a decided status is held as `status_patch`, a JSON merge patch (RFC 7386) over the
status given to `decide()` (statuses hold no nulls), unless that status was None.
"""


# --- reading the fixtures -------------------------------------------------------------------------


def merged(target: Any, patch: Any) -> Any:
    """`patch` applied to `target` as a JSON merge patch (RFC 7386): a null removes a key."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merged(result.get(key), value)
    return result


def expanded(fixture: dict[str, Any]) -> dict[str, Any]:
    """The fixture with its stand-ins and status patches replaced by what they stand for."""
    full = copy.deepcopy(fixture)
    bodies: dict[str, Any] = {}
    before: dict[str, Any] | None = None
    for step in full.get("steps", []):
        inputs = step["input"]
        if before is not None and inputs["status"] == SAME_STATUS:
            inputs["status"] = copy.deepcopy(before["expected"]["status"])
        if before is not None and inputs["spec"] == SAME_SPEC:
            inputs["spec"] = copy.deepcopy(before["input"]["spec"])
        if "status_patch" in step["expected"]:
            rest = {k: v for k, v in step["expected"].items() if k != "status_patch"}
            step["expected"] = {"status": merged(inputs["status"], step["expected"]["status_patch"]), **rest}
        expected = step["expected"]
        for job in expected["create"]:
            if job["body"] == SAME_BODY:
                job["body"] = copy.deepcopy(bodies[job["name"]])
            bodies.setdefault(job["name"], job["body"])
        before = step
    return full


@cache
def _fixture(name: str) -> str:
    return (GOLDEN / name).read_text(encoding="utf-8")


def fixture(name: str) -> dict[str, Any]:
    """A fixture, its stand-ins expanded (a fresh copy each time: a test may not change another's)."""
    loaded: dict[str, Any] = json.loads(_fixture(name))
    return expanded(loaded)


def observed(job: dict[str, Any]) -> ObservedJob:
    """An observed Job as a fixture holds it."""
    finished_at = job["finished_at"]
    return ObservedJob(
        name=job["name"],
        cell_index=job["cell_index"],
        attempt=job["attempt"],
        phase=job["phase"],
        termination_message=job["termination_message"],
        failure_reason=job["failure_reason"],
        finished_at=None if finished_at is None else datetime.fromisoformat(finished_at),
    )


def pacing_cases() -> list[dict[str, Any]]:
    """The pacing cases; none when the fixture is missing (golden/generate.py imports this module to write it)."""
    if not (GOLDEN / PACING).exists():
        return []
    cases: list[dict[str, Any]] = fixture(PACING)["cases"]
    return cases


# --- the adapters a refactor may have to point elsewhere -------------------------------------------


def as_dict(status: object) -> dict[str, Any]:
    """A decided status as the dict stored in the Study, whether the decider returns a dict or a StudyStatus."""
    if isinstance(status, BaseModel):
        return status.model_dump(mode="json", exclude_none=True)
    assert isinstance(status, dict), f"a status is a dict or a StudyStatus, not {type(status).__name__}"
    return status


def decided(inputs: dict[str, Any]) -> Decision:
    """One call of the decider, on exactly the inputs a fixture step holds (the status as stored, a raw dict)."""
    return decide(
        name=inputs["name"],
        namespace=inputs["namespace"],
        uid=inputs["uid"],
        generation=inputs["generation"],
        created_at=datetime.fromisoformat(inputs["created_at"]),
        spec=copy.deepcopy(inputs["spec"]),
        status=copy.deepcopy(inputs["status"]),
        jobs=[observed(job) for job in inputs["jobs"]],
        now=datetime.fromisoformat(inputs["now"]),
    )


def paced(
    written: dict[str, Any] | None, decision: Decision, *, since_write_s: float, interval_s: float
) -> tuple[float, bool]:
    """How long the pacing rule lets `decision`'s status wait to be written, and whether it must be written at once.

    The one call of the pacing rule: it takes the status last written as the worker keeps it (typed).
    """
    stored = None if written is None else StudyStatus.model_validate(written)
    held = hold_for(stored, decision, since_write_s=since_write_s, interval_s=interval_s)
    return held, write_at_once(stored, decision)


def outcome(decision: Decision) -> dict[str, Any]:
    """Everything decided, in the shape a fixture step expects it."""
    return {
        "status": as_dict(decision.status),
        "create": [{"name": job.name, "body": dict(job.body)} for job in decision.create],
        "delete": list(decision.delete),
        "events": [[e.type, e.reason, e.message, list(e.cells), e.cell_count] for e in decision.events],
        "notifications": [[n.event, n.id, dict(n.payload)] for n in decision.notifications],
        "requeue_after": decision.requeue_after,
    }


# --- the tests ------------------------------------------------------------------------------------


def test_the_golden_fixtures_are_all_there() -> None:
    assert len(SCENARIOS) >= 12, f"golden fixtures missing from {GOLDEN}"
    assert len(pacing_cases()) >= 8, f"{GOLDEN / PACING} is missing or short"


@pytest.mark.parametrize("name", SCENARIOS)
def test_todays_statuses_are_decided_on_identically(name: str) -> None:
    """Every step of the scenario decides exactly what it decided when the fixture was written."""
    for number, step in enumerate(fixture(name)["steps"]):
        got = outcome(decided(step["input"]))
        where = f"{name}, step {number} ({step['about']})"
        assert got.keys() == step["expected"].keys(), where
        for field, expected in step["expected"].items():
            assert got[field] == expected, f"{where}: {field} differs"


@pytest.mark.parametrize(
    "case", pacing_cases(), ids=lambda case: f"{case['fixture'].removesuffix('.json')}-{case['step']}"
)
def test_todays_decisions_are_held_or_written_at_once_identically(case: dict[str, Any]) -> None:
    """The pacing rule holds back or writes at once today's decisions exactly as when the fixture was written."""
    step = fixture(f"{case['fixture']}.json")["steps"][case["step"]]
    written = step["input"]["status"] if case["written"] == WRITTEN_IS_INPUT else case["written"]
    decision = decided(step["input"])
    for pace in case["paces"]:
        since, interval = pace["since_write_s"], pace["interval_s"]
        got = paced(written, decision, since_write_s=since, interval_s=interval)
        assert got == (pace["hold_for"], pace["write_at_once"]), f"{case['about']}, {since} s after a write"
