"""When a study stops to ask a person, and how the person lets it go on.

Two causes open an intervention (`status.intervention`):

- **SurfaceFailing**: a required surface's attempts failed `consecutiveFailuresForIntervention`
  times in a row (default 5), each with a failure listed in `policy.interventionFailures`
  (AUTH_FAILED, QUOTA_EXCEEDED, CAPTCHA, NotActualContent): the surface is blocked, no cell
  starts on it, the other surfaces go on. A completed attempt on the surface resets its count;
  other failures (a timeout) neither count nor reset. A surface with no cell left to run is
  never blocked.
- **DeadlineMissed**: the deadline passed with a required surface below its threshold and
  `policy.onDeadlineMissed` is HumanIntervention: no cell of any surface starts.

Attempts in flight finish and are recorded either way. The intervention records
`spec.interventionAck` as it was when it opened; setting that field to any other value resolves
the intervention: blocked surfaces are unblocked (their counts reset) and the study resumes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bentham.api.manifest import Manifest
from bentham.api.spec import Policy
from bentham.api.status import Intervention, Progress, StudyState
from bentham.core.cells import cell_at
from bentham.core.conditions import clip
from bentham.core.decision import StudyEvent
from bentham.core.notifications import Note
from bentham.core.outcomes import CellOutcome
from bentham.core.results import Verdict
from bentham.core.running_time import is_running
from bentham.core.timestamps import rfc3339, rfc3339_millis

SURFACE_FAILING = "SurfaceFailing"
DEADLINE_MISSED = "DeadlineMissed"


def counts_towards_intervention(verdict: Verdict, policy: Policy) -> bool:
    """Whether a failed attempt is of a kind that says the surface is blocked for us."""
    if verdict.passed:
        return False
    listed = set(policy.interventionFailures)
    return verdict.reason in listed or (verdict.code is not None and verdict.code in listed)


def consecutive_failures(
    previous: Mapping[str, int], outcomes: Sequence[CellOutcome], manifest: Manifest, policy: Policy
) -> dict[str, int]:
    """Each required surface's count of counting failures in a row, after this decision's outcomes.

    Outcomes are taken in the order they were recorded. Surfaces at 0 are left out.
    """
    required = [surface.value for surface in manifest.required_surface_ids]
    counts = {surface: n for surface, n in previous.items() if surface in required and n > 0}
    for outcome in outcomes:
        surface = cell_at(manifest, outcome.cell_index).surface.value
        if surface not in required:
            continue
        if outcome.result == "completed":
            counts.pop(surface, None)
        elif counts_towards_intervention(outcome.verdict, policy):
            counts[surface] = counts.get(surface, 0) + 1
    return {surface: counts[surface] for surface in required if surface in counts}


def surfaces_to_block(
    counts: Mapping[str, int], progress: Progress, *, limit: int, blocked: Sequence[str]
) -> list[str]:
    """Required surfaces that reached `limit` failures in a row, still have cells to run and are not yet blocked."""
    chosen = []
    for surface, n in counts.items():
        slice_ = progress.bySurface.get(surface)
        if n >= limit and surface not in blocked and slice_ is not None and slice_.pending + slice_.executing > 0:
            chosen.append(surface)
    return chosen


def acknowledged(intervention: Intervention, ack: str | None) -> bool:
    """Whether `spec.interventionAck` resolves the intervention: set, and not the value it opened with."""
    return ack is not None and ack != intervention.ack


def resume_hint(name: str) -> str:
    """How a person resumes the study, for messages."""
    return (
        "fix the cause, then set spec.interventionAck to a new value: kubectl patch study "
        f'{name} --type merge -p \'{{"spec":{{"interventionAck":"<new value>"}}}}\''
    )


@dataclass(frozen=True)
class InterventionStep:
    """The intervention and failure counts after one step, and what the step announces."""

    intervention: Intervention | None
    failures: dict[str, int]
    events: list[StudyEvent] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


def take_acknowledgement(
    intervention: Intervention | None, ack: str | None, failures: dict[str, int]
) -> InterventionStep:
    """Resolves the open intervention when spec.interventionAck has a new value, unblocking its surfaces."""
    if intervention is None or not acknowledged(intervention, ack):
        return InterventionStep(intervention, failures)
    unblocked = intervention.blockedSurfaces
    remaining = {surface: n for surface, n in failures.items() if surface not in unblocked}
    also = f"; unblocked {', '.join(unblocked)}" if unblocked else ""
    message = f"spec.interventionAck is {ack!r}: {intervention.reason} resolved{also}"
    return InterventionStep(None, remaining, events=[StudyEvent("Normal", "InterventionAcknowledged", message)])


@dataclass(frozen=True)
class Asking:
    """Who asks a person, and when: the parts of a request that do not change with its cause."""

    study_name: str
    ack: str | None
    """spec.interventionAck now: the value a person must change to resume."""
    now: datetime


def ask_for_person(
    intervention: Intervention | None,
    asking: Asking,
    *,
    reason: str,
    cause: str,
    what: str,
    surfaces: Sequence[str] = (),
    stop: bool = False,
) -> tuple[Intervention, StudyEvent, Note]:
    """Opens the intervention, or adds a cause to the open one; announced once per cause."""
    if intervention is None:
        opened = Intervention(
            reason=reason,
            message=what,
            since=rfc3339(asking.now),
            blockedSurfaces=list(surfaces),
            allCellsStopped=stop,
            ack=asking.ack,
        )
    else:
        opened = intervention.model_copy(
            update={
                "reason": reason,
                "message": clip(f"{intervention.message}; {what}"),
                "blockedSurfaces": [*intervention.blockedSurfaces, *surfaces],
                "allCellsStopped": intervention.allCellsStopped or stop,
            }
        )
    message = f"Waiting for a person: {what}; {resume_hint(asking.study_name)}"
    event = StudyEvent("Warning", "HumanInterventionRequired", message)
    note = Note("study.needs_intervention", f"{rfc3339_millis(asking.now)}:{cause}", reason, message)
    return opened, event, note


def block_failing_surfaces(
    intervention: Intervention | None, failures: dict[str, int], progress: Progress, policy: Policy, asking: Asking
) -> InterventionStep:
    """Blocks required surfaces that failed too often in a row, asking for a person once per surface."""
    blocked = intervention.blockedSurfaces if intervention is not None else []
    limit = policy.consecutiveFailuresForIntervention
    events: list[StudyEvent] = []
    notes: list[Note] = []
    for surface in surfaces_to_block(failures, progress, limit=limit, blocked=blocked):
        what = (
            f"required surface {surface} failed {failures[surface]} times in a row "
            f"({', '.join(policy.interventionFailures)}); no cell starts on it"
        )
        intervention, event, note = ask_for_person(
            intervention, asking, reason=SURFACE_FAILING, cause=surface, what=what, surfaces=[surface]
        )
        events.append(event)
        notes.append(note)
    return InterventionStep(intervention, failures, events, notes)


def may_start_cells(state: StudyState, intervention: Intervention | None) -> bool:
    """Whether cells may start now: executing, or waiting for a person with only some surfaces blocked."""
    return is_running(state, all_cells_stopped=intervention is not None and intervention.allCellsStopped)


def waiting_message(intervention: Intervention | None, state: StudyState, study_name: str) -> str | None:
    """The status message while a person is awaited."""
    if intervention is None:
        return None
    if state is StudyState.PAUSED:
        return f"Paused, and waiting for a person: {intervention.message}"
    if state is StudyState.HUMAN_INTERVENTION_REQUIRED:
        return f"Waiting for a person: {intervention.message}; {resume_hint(study_name)}"
    return None
