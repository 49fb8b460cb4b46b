"""When a study stops to ask a person, and how the person lets it go on.

A failure a person can fix is one listed in `policy.interventionFailures` (AUTH_FAILED,
QUOTA_EXCEEDED, CAPTCHA, NotActualContent by default). A cell of a required surface that fails
for good with one is `blocked`, not plainly failed: counted as failed, but a person may reopen it.
Two causes open an intervention (`status.intervention`):

- **SurfaceFailing**: a required surface is blocked, no cell starts on it, the other surfaces go
  on. Either its blocked cells alone keep it from its coverage threshold (from the first such
  cell: fail-early never fails a study a person can still save), or its attempts failed
  `manifest.completionCriteria.consecutiveFailureLimit` times in a row (default 5) with such
  failures while it has cells left to run. A completed attempt on the surface resets its count;
  other failures (a timeout) neither count nor reset.
- **DeadlineMissed**: the deadline passed with a required surface below its threshold and
  `policy.onDeadlineMissed` is HumanIntervention: no cell of any surface starts.

Attempts in flight finish and are recorded either way. The intervention records
`spec.interventionAck` as it was when it opened; setting that field to any other value resolves
the intervention: blocked surfaces are unblocked (their counts reset), their blocked cells are
reopened with a fresh budget of attempts (`reopen_blocked`), and the study resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bentham.api.manifest import Manifest
from bentham.api.spec import Policy
from bentham.api.status import Intervention, Progress, StudyState
from bentham.core.cells import cell_at, surface_position
from bentham.core.checkpoint import MAX_ATTEMPTS, CellRecord, CellState
from bentham.core.conditions import clip
from bentham.core.coverage import at_risk_of_blocked
from bentham.core.decision import StudyEvent
from bentham.core.notifications import Note
from bentham.core.outcomes import CellOutcome
from bentham.core.results import Verdict
from bentham.core.running_time import is_running
from bentham.core.timestamps import rfc3339, rfc3339_millis

SURFACE_FAILING = "SurfaceFailing"


def counts_towards_intervention(verdict: Verdict, policy: Policy) -> bool:
    """Whether a failed attempt is of a kind that says the surface is blocked for us."""
    if verdict.passed:
        return False
    listed = set(policy.interventionFailures)
    return verdict.reason in listed or (verdict.code is not None and verdict.code in listed)


def waits_for_person(manifest: Manifest, policy: Policy) -> Callable[[int, Verdict], bool]:
    """Whether a cell failing for good with a verdict is blocked: a required surface's, and a person can fix it."""
    required = {p for p, surface in enumerate(manifest.surfaces) if surface.id in manifest.required_surface_ids}

    def blocked(cell_index: int, verdict: Verdict) -> bool:
        return surface_position(manifest, cell_index) in required and counts_towards_intervention(verdict, policy)

    return blocked


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


@dataclass(frozen=True)
class Acknowledgement:
    """The open intervention after `spec.interventionAck` was read, and the cells it reopened."""

    step: InterventionStep
    records: list[CellRecord]


def take_acknowledgement(
    intervention: Intervention | None,
    ack: str | None,
    failures: dict[str, int],
    records: list[CellRecord],
    manifest: Manifest,
    *,
    max_attempts: int,
) -> Acknowledgement:
    """Resolves the open intervention when spec.interventionAck has a new value, unblocking its surfaces.

    The blocked cells of the unblocked surfaces are reopened with a fresh budget of attempts.
    """
    if intervention is None or not acknowledged(intervention, ack):
        return Acknowledgement(InterventionStep(intervention, failures), records)
    unblocked = intervention.blockedSurfaces
    remaining = {surface: n for surface, n in failures.items() if surface not in unblocked}
    reopened = reopen_blocked(records, manifest, unblocked, max_attempts=max_attempts)
    also = f"; unblocked {', '.join(unblocked)}" if unblocked else ""
    count = sum(
        1
        for before, after in zip(records, reopened, strict=True)
        if before.state is CellState.BLOCKED and after.state is CellState.PENDING
    )
    again = f", reopening {count} blocked cells" if count else ""
    message = f"spec.interventionAck is {ack!r}: {intervention.reason} resolved{also}{again}"
    event = StudyEvent("Normal", "InterventionAcknowledged", message)
    return Acknowledgement(InterventionStep(None, remaining, events=[event]), reopened)


def reopen_blocked(
    records: list[CellRecord], manifest: Manifest, surfaces: Sequence[str], *, max_attempts: int
) -> list[CellRecord]:
    """`records` with the blocked cells of `surfaces` pending again, their attempts so far spent.

    A cell's attempts keep their numbers (a Job name is never reused), but only those made after
    the reopening count against its budget. A cell with fewer than `max_attempts` of its 31
    lifetime attempts left fails for good instead.
    """
    if not surfaces:
        return records
    positions = {p for p, surface in enumerate(manifest.surfaces) if surface.id.value in surfaces}

    def reopened(index: int, record: CellRecord) -> CellRecord:
        if record.state is not CellState.BLOCKED or surface_position(manifest, index) not in positions:
            return record
        if record.attempts + max_attempts > MAX_ATTEMPTS:
            return record.moved(CellState.FAILED)
        return CellRecord(CellState.PENDING, record.attempts, spent=record.attempts)

    return [reopened(index, record) for index, record in enumerate(records)]


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
    intervention: Intervention | None,
    failures: dict[str, int],
    progress: Progress,
    manifest: Manifest,
    policy: Policy,
    asking: Asking,
) -> InterventionStep:
    """Blocks required surfaces a person must save, asking for a person once per surface.

    First those whose blocked cells keep them from their threshold, then those that failed
    `consecutiveFailureLimit` times in a row.
    """
    criteria = manifest.completionCriteria
    causes = ", ".join(policy.interventionFailures)
    blocked = list(intervention.blockedSurfaces) if intervention is not None else []
    reasons: dict[str, str] = {}
    for surface, cells in at_risk_of_blocked(progress, criteria.requiredSurfaces.coverageThreshold).items():
        if surface not in blocked:
            reasons[surface] = (
                f"required surface {surface} has {cells} cells failed with a cause a person can fix ({causes}); "
                f"without them it cannot reach its coverage threshold "
                f"{criteria.requiredSurfaces.coverageThreshold:g}; no cell starts on it"
            )
    in_a_row = surfaces_to_block(failures, progress, limit=criteria.consecutiveFailureLimit, blocked=blocked)
    for surface in in_a_row:
        in_a_row_what = f"required surface {surface} failed {failures[surface]} times in a row ({causes})"
        reasons.setdefault(surface, f"{in_a_row_what}; no cell starts on it")
    events: list[StudyEvent] = []
    notes: list[Note] = []
    for surface, what in reasons.items():
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
