"""The study's state as it moves during one decision, and the events its moves announce."""

from __future__ import annotations

from typing import Literal

from bentham.api.status import Progress, StudyState
from bentham.core.decision import StudyEvent
from bentham.core.states import move

# The CamelCase reason of each state, for conditions when no more specific reason applies.
STATE_REASONS: dict[StudyState, str] = {
    StudyState.MANIFEST_RECEIVED: "ManifestReceived",
    StudyState.VALIDATING: "Validating",
    StudyState.QUEUED: "Queued",
    StudyState.EXECUTING: "Executing",
    StudyState.VALIDATING_RESULTS: "ValidatingResults",
    StudyState.PAUSED: "Paused",
    StudyState.HUMAN_INTERVENTION_REQUIRED: "HumanInterventionRequired",
    StudyState.COMPLETE: "Complete",
    StudyState.FAILED: "Failed",
    StudyState.CANCELLED: "Cancelled",
}


class Lifecycle:
    """The state through one decision's moves, each checked by the state machine."""

    def __init__(self, state: StudyState | None) -> None:
        self.state = state
        self.events: list[StudyEvent] = []
        self.reason: str | None = None
        """The reason the status keeps for the current state, when more specific than its name."""
        self.message: str | None = None

    def move(
        self,
        target: StudyState,
        reason: str | None,
        message: str = "",
        *,
        kind: Literal["Normal", "Warning"] = "Normal",
    ) -> None:
        """Moves to `target`, announcing it with an event unless `reason` is None."""
        if self.state is None:
            assert target is StudyState.MANIFEST_RECEIVED, f"a study is born in manifest_received, not {target}"
            self.state = target
        else:
            self.state = move(self.state, target)
        self.reason, self.message = None, None
        if reason is not None:
            self.events.append(StudyEvent(kind, reason, message))

    def end(self, target: StudyState, reason: str, message: str) -> None:
        """Moves to a terminal state whose reason and message the status keeps."""
        kind: Literal["Normal", "Warning"] = "Warning" if target is StudyState.FAILED else "Normal"
        self.move(target, reason, message, kind=kind)
        self.reason, self.message = reason, message

    def follow_pause(self, *, paused: bool, cells: int, in_flight: int) -> None:
        """Moves between queued, executing and paused as `spec.paused` asks."""
        if self.state is StudyState.QUEUED:
            if paused:
                self.move(StudyState.PAUSED, "Paused", "Created paused: no cell starts until spec.paused is false")
            else:
                self.move(StudyState.EXECUTING, "Started", f"Started: {cells} cells")
        elif self.state in (StudyState.PAUSED, StudyState.HUMAN_INTERVENTION_REQUIRED):
            if not paused:
                self.move(StudyState.EXECUTING, "Resumed", "Resumed: cells start again")
            elif self.state is StudyState.HUMAN_INTERVENTION_REQUIRED:
                self.move(StudyState.PAUSED, "Paused", "Paused")
        elif self.state is StudyState.EXECUTING and paused:
            self.move(StudyState.PAUSED, "Paused", f"Paused: no new cell starts; {in_flight} in flight may finish")


def state_message(state: StudyState, progress: Progress | None) -> str:
    """The status message of a state that has no message of its own, e.g. `Executing: 3/10 ...`."""
    return f"{STATE_REASONS[state]}: {tally(progress)}"


def tally(progress: Progress | None) -> str:
    """The cell counts in words."""
    if progress is None:
        return "no cells"
    return (
        f"{progress.completedCells}/{progress.totalCells} cells completed, {progress.failedCells} failed, "
        f"{progress.executingCells} in flight, {progress.pendingCells} pending"
    )
