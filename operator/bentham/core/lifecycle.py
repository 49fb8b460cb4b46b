"""The study's state as it moves during one decision, and the events its moves announce."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from bentham.api.status import Progress, StudyState
from bentham.core.decision import NotificationEvent, StudyEvent
from bentham.core.notifications import Note
from bentham.core.states import STATE_REASONS, move
from bentham.core.timestamps import rfc3339_millis

# The notification announcing an announced move into each state; executing is started or resumed.
_NOTIFIED_ON_ENTRY: dict[StudyState, NotificationEvent] = {
    StudyState.MANIFEST_RECEIVED: "study.created",
    StudyState.PAUSED: "study.paused",
    StudyState.COMPLETE: "study.completed",
    StudyState.FAILED: "study.failed",
    StudyState.CANCELLED: "study.cancelled",
}
SETTLED = "Every required surface has settled; checking coverage"
_ONCE_IN_A_LIFE = {StudyState.MANIFEST_RECEIVED, StudyState.COMPLETE, StudyState.FAILED, StudyState.CANCELLED}


class Lifecycle:
    """The state through one decision's moves, each checked by the state machine.

    Every announced move (one with a reason) posts an event; moves into manifest_received,
    executing, paused and the terminal states also note a notification. The first announced
    move into executing is the study's start, later ones are resumes. `now` dates the notes.
    """

    def __init__(self, state: StudyState | None, *, started: bool = False, now: datetime | None = None) -> None:
        self.state = state
        self.started = started
        self.now = now
        self.events: list[StudyEvent] = []
        self.notes: list[Note] = []
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
            self._note(target, reason, message)

    def _note(self, target: StudyState, reason: str, message: str) -> None:
        event = _NOTIFIED_ON_ENTRY.get(target)
        if target is StudyState.EXECUTING:
            event = "study.resumed" if self.started else "study.started"
            self.started = True
        if event is None:
            return
        once = target in _ONCE_IN_A_LIFE or event == "study.started"
        moment = rfc3339_millis(self.now) if self.now is not None else ""
        self.notes.append(Note(event, None if once else moment, reason, message))

    def end(self, target: StudyState, reason: str, message: str) -> None:
        """Moves to a terminal state whose reason and message the status keeps."""
        kind: Literal["Normal", "Warning"] = "Warning" if target is StudyState.FAILED else "Normal"
        self.move(target, reason, message, kind=kind)
        self.reason, self.message = reason, message

    @property
    def current(self) -> StudyState:
        """The state now (a decision always has one once the study is received)."""
        assert self.state is not None, "a study is born in manifest_received before anything asks its state"
        return self.state

    def queue(self, message: str) -> None:
        """Moves a new study whose spec and checkpoint read on to queued, through validating."""
        if self.state is StudyState.MANIFEST_RECEIVED:
            self.move(StudyState.VALIDATING, "Validating", "Validating the spec")
        if self.state is StudyState.VALIDATING:
            self.move(StudyState.QUEUED, "Queued", message)

    def complete(self, message: str, *, checking: str = SETTLED) -> None:
        """Completes the study, through validating_results, with `checking` saying why it checks."""
        if self.state in (StudyState.PAUSED, StudyState.HUMAN_INTERVENTION_REQUIRED):
            self.move(StudyState.EXECUTING, None)  # completing passes through executing
        self.move(StudyState.VALIDATING_RESULTS, "ValidatingResults", checking)
        self.end(StudyState.COMPLETE, "Completed", message)

    def announce(self, events: Sequence[StudyEvent], notes: Sequence[Note] = ()) -> None:
        """Adds what a step of the decision announces, in order."""
        self.events.extend(events)
        self.notes.extend(notes)

    def start(self, *, paused: bool, cells: int) -> None:
        """Moves a queued study on: to executing, or to paused when created with spec.paused."""
        if self.state is not StudyState.QUEUED:
            return
        if paused:
            self.move(StudyState.PAUSED, "Paused", "Created paused: no cell starts until spec.paused is false")
        else:
            self.move(StudyState.EXECUTING, "Started", f"Started: {cells} cells")

    def follow(self, *, paused: bool, waiting: str | None, in_flight: int) -> None:
        """Moves between executing, paused and human_intervention_required as the spec asks.

        `waiting` is the open intervention's message (None when none is open): an open
        intervention keeps an unpaused study in human_intervention_required. Its opening was
        announced already; the move into it is announced only when unpausing leads back to it.
        """
        if self.state is StudyState.EXECUTING:
            if paused:
                self.move(StudyState.PAUSED, "Paused", f"Paused: no new cell starts; {in_flight} in flight may finish")
            elif waiting is not None:
                self.move(StudyState.HUMAN_INTERVENTION_REQUIRED, None)
        elif self.state is StudyState.PAUSED and not paused:
            if waiting is not None:
                # The state machine has no paused → human_intervention_required: pass through executing.
                self.move(StudyState.EXECUTING, None)
                self.move(
                    StudyState.HUMAN_INTERVENTION_REQUIRED,
                    "HumanInterventionRequired",
                    f"Unpaused, but still waiting for a person: {waiting}",
                    kind="Warning",
                )
            else:
                self.move(StudyState.EXECUTING, "Resumed", "Resumed: cells start again")
        elif self.state is StudyState.HUMAN_INTERVENTION_REQUIRED:
            if paused:
                self.move(StudyState.PAUSED, "Paused", f"Paused: no new cell starts; {in_flight} in flight may finish")
            elif waiting is None:
                self.move(StudyState.EXECUTING, "Resumed", "Resumed by spec.interventionAck: cells start again")


def state_message(state: StudyState, progress: Progress | None) -> str:
    """The status message of a state that has no message of its own, e.g. `Executing: 3/10 ...`."""
    return f"{STATE_REASONS[state]}: {tally(progress)}"


def tally(progress: Progress | None) -> str:
    """The cell counts in words."""
    if progress is None:
        return "no cells"
    skipped = f", {progress.skippedCells} skipped" if progress.skippedCells else ""
    return (
        f"{progress.completedCells}/{progress.totalCells} cells completed, {progress.failedCells} failed, "
        f"{progress.executingCells} in flight, {progress.pendingCells} pending{skipped}"
    )
