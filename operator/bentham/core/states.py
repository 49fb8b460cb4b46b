"""The study's lifecycle: which state may follow which.

The moves are the original orchestrator's, plus two of ours:

- every non-terminal state may move to `cancelled` (the seed's `cancelStudy(id, reason)`);
- `queued → paused`: a study created with `spec.paused: true` waits in `paused` without ever
  starting a cell, and `paused → executing` (already allowed) starts it. We add no
  `paused → queued`: resuming always means executing.

`complete`, `failed` and `cancelled` are terminal: nothing leaves them.
"""

from __future__ import annotations

from collections.abc import Mapping

from bentham.api.status import StudyState

TERMINAL_STATES: frozenset[StudyState] = frozenset({StudyState.COMPLETE, StudyState.FAILED, StudyState.CANCELLED})

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

_ORIGINAL_MOVES: Mapping[StudyState, frozenset[StudyState]] = {
    StudyState.MANIFEST_RECEIVED: frozenset({StudyState.VALIDATING, StudyState.FAILED}),
    StudyState.VALIDATING: frozenset({StudyState.QUEUED, StudyState.FAILED}),
    StudyState.QUEUED: frozenset({StudyState.EXECUTING, StudyState.FAILED}),
    StudyState.EXECUTING: frozenset(
        {
            StudyState.VALIDATING_RESULTS,
            StudyState.PAUSED,
            StudyState.HUMAN_INTERVENTION_REQUIRED,
            StudyState.FAILED,
        }
    ),
    StudyState.VALIDATING_RESULTS: frozenset({StudyState.COMPLETE, StudyState.EXECUTING, StudyState.FAILED}),
    StudyState.PAUSED: frozenset({StudyState.EXECUTING, StudyState.FAILED}),
    StudyState.HUMAN_INTERVENTION_REQUIRED: frozenset({StudyState.EXECUTING, StudyState.PAUSED, StudyState.FAILED}),
}

# Ours: a study created paused waits in `paused`; any live study can be cancelled.
_OUR_MOVES: Mapping[StudyState, frozenset[StudyState]] = {
    StudyState.QUEUED: frozenset({StudyState.PAUSED}),
}

ALLOWED_MOVES: Mapping[StudyState, frozenset[StudyState]] = {
    state: (
        frozenset()
        if state in TERMINAL_STATES
        else _ORIGINAL_MOVES[state] | _OUR_MOVES.get(state, frozenset()) | {StudyState.CANCELLED}
    )
    for state in StudyState
}


class IllegalTransition(Exception):
    """A move the state machine does not allow."""

    def __init__(self, source: StudyState, target: StudyState) -> None:
        super().__init__(f"a study cannot move from {source.value} to {target.value}")
        self.source = source
        self.target = target


def is_terminal(state: StudyState) -> bool:
    """Whether nothing can follow `state`."""
    return state in TERMINAL_STATES


def can_move(source: StudyState, target: StudyState) -> bool:
    """Whether `target` may follow `source`."""
    return target in ALLOWED_MOVES[source]


def move(source: StudyState, target: StudyState) -> StudyState:
    """Returns `target` when the move is allowed; raises `IllegalTransition` otherwise."""
    if not can_move(source, target):
        raise IllegalTransition(source, target)
    return target
