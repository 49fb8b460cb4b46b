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

from bentham.api.manifest import Manifest
from bentham.api.spec import Policy
from bentham.api.status import Intervention, Progress
from bentham.core.cells import cell_at
from bentham.core.outcomes import CellOutcome
from bentham.core.results import Verdict

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
