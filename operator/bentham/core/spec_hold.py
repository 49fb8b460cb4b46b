"""Holding a running study whose spec no longer reads, and letting it go once it reads again.

Nothing a running study has done is undone by a spec that cannot be read: it is a spec edit to
fix, or a CRD newer than this operator (fields it does not know) during an upgrade. While held,
cells neither start nor get judged (the gates are in the spec); Jobs in flight are left alone;
the study carries on from its checkpoint once the spec reads again. The condition `SpecValid`
says which: False while held, True once released (absent before any hold).
"""

from __future__ import annotations

from datetime import datetime

from bentham.api.status import StudyStatus
from bentham.api.validation import Invalid
from bentham.core.conditions import SPEC_VALID, clip, condition_of, with_condition
from bentham.core.decision import Decision, StudyEvent


def hold(validation: Invalid, previous: StudyStatus, generation: int, now: datetime) -> Decision:
    """A study that was valid and no longer is: stop deciding, change nothing, say why (once)."""
    problem = "Invalid spec: " + "; ".join(validation.errors)
    condition = condition_of(
        SPEC_VALID,
        False,
        reason=validation.reason,
        message=problem,
        previous=previous.conditions,
        generation=generation,
        now=now,
    )
    already_held = any(
        c.type == SPEC_VALID and c.status == "False" and c.message == condition.message for c in previous.conditions
    )
    held = previous.model_copy(
        update={
            "conditions": with_condition(previous.conditions, condition),
            "message": clip(f"{problem}. Holding: no cell starts or is judged until the spec is valid again."),
        }
    )
    events = [] if already_held else [StudyEvent("Warning", "SpecInvalid", problem)]
    return Decision(status=held, create=[], delete=[], events=events, requeue_after=None)


def release(previous: StudyStatus, generation: int, now: datetime) -> tuple[StudyStatus, StudyEvent | None]:
    """Ends a hold: the SpecValid condition turns True, once, with an Event."""
    if not any(c.type == SPEC_VALID and c.status == "False" for c in previous.conditions):
        return previous, None
    message = "The spec is valid again; the study carries on from its checkpoint"
    condition = condition_of(
        SPEC_VALID,
        True,
        reason="SpecValid",
        message=message,
        previous=previous.conditions,
        generation=generation,
        now=now,
    )
    updated = previous.model_copy(update={"conditions": with_condition(previous.conditions, condition)})
    return updated, StudyEvent("Normal", "SpecValid", message)
