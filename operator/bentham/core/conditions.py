"""The standard conditions of a study, derived from its state.

Four conditions, always present so `kubectl wait --for=condition=...` works from the start:

- `Ready`: True once the study is complete (its results are ready to use);
- `Complete`, `Failed`, `Paused`: True while the study is in that state.

A study with a deadline has a fifth, `AtRisk`, True while it is
projected to miss the deadline, with the at-risk rule's reason (`BehindSchedule`, `NoProgress`,
`DeadlinePassed`; `OnSchedule` or `ThresholdsMet` when False, the state's reason once ended).

Every condition carries the state's CamelCase reason (`Executing`, `Paused`, `Complete`,
`Cancelled`, or the failure's own reason such as `InvalidSpec`). A condition's
`lastTransitionTime` moves only when its status flips, as the API conventions ask.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bentham.api.status import Condition, StudyState
from bentham.core.timestamps import rfc3339

CONDITION_TYPES = ("Ready", "Complete", "Failed", "Paused")
MAX_MESSAGE = 4_096
MAX_REASON = 128

_TRUE_IN: dict[str, StudyState] = {
    "Ready": StudyState.COMPLETE,
    "Complete": StudyState.COMPLETE,
    "Failed": StudyState.FAILED,
    "Paused": StudyState.PAUSED,
}


def conditions_for(
    state: StudyState,
    *,
    reason: str,
    message: str,
    previous: Sequence[Condition],
    generation: int,
    now: datetime,
) -> list[Condition]:
    """The study's conditions in `state`, keeping each unflipped one's lastTransitionTime."""
    conditions = [
        condition_of(
            kind,
            state is _TRUE_IN[kind],
            reason=reason,
            message=message,
            previous=previous,
            generation=generation,
            now=now,
        )
        for kind in CONDITION_TYPES
    ]
    # Conditions others may have added (AtRisk, later) stay as they are.
    conditions.extend(c for c in previous if c.type not in CONDITION_TYPES)
    return conditions


AT_RISK = "AtRisk"


def condition_of(
    kind: str,
    true: bool,
    *,
    reason: str,
    message: str,
    previous: Sequence[Condition],
    generation: int,
    now: datetime,
) -> Condition:
    """The condition `kind`, keeping its lastTransitionTime unless its status flips."""
    status = "True" if true else "False"
    old = next((c for c in previous if c.type == kind), None)
    return Condition(
        type=kind,
        status=status,
        reason=reason[:MAX_REASON],
        message=clip(message),
        lastTransitionTime=old.lastTransitionTime if old is not None and old.status == status else rfc3339(now),
        observedGeneration=generation,
    )


SPEC_VALID = "SpecValid"
"""Present only once a running study's spec has turned invalid (see reconcile's hold)."""


def with_condition(conditions: Sequence[Condition], condition: Condition) -> list[Condition]:
    """`conditions` with `condition` replacing the one of its type, or added at the end."""
    kept = [c if c.type != condition.type else condition for c in conditions]
    return kept if any(c.type == condition.type for c in conditions) else [*kept, condition]


def clip(message: str, limit: int = MAX_MESSAGE) -> str:
    """`message` cut to fit a status field, marking the cut."""
    return message if len(message) <= limit else message[: limit - 1] + "…"
