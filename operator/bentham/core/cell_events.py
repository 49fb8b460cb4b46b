"""Events about cells, summarised: one per kind of outcome in a decision, not one per cell.

A burst of a thousand finished Jobs yields at most three events, each naming the first few cells
and counting the rest, so the event stream (and the webhook) stays readable. Summaries of several
decisions whose status was written together are merged the same way (`merge_cell_events`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from bentham.api.manifest import Manifest
from bentham.core.cells import cell_at, cell_key
from bentham.core.conditions import clip
from bentham.core.decision import StudyEvent
from bentham.core.outcomes import CellOutcome

CELLS_NAMED_PER_EVENT = 10
MAX_EVENT_MESSAGE = 1_024  # Kubernetes truncates Event messages at 1 KiB.

_KINDS: tuple[tuple[str, Literal["Normal", "Warning"], str], ...] = (
    ("completed", "Normal", "CellsCompleted"),
    ("retrying", "Normal", "CellsRetrying"),
    ("failed", "Warning", "CellsFailed"),
)


def cell_events(outcomes: Sequence[CellOutcome], manifest: Manifest) -> list[StudyEvent]:
    """CellsCompleted, CellsRetrying and CellsFailed events for this decision's outcomes."""
    events = []
    for result, kind, reason in _KINDS:
        chosen = [o for o in outcomes if o.result == result]
        if chosen:
            named = tuple(_describe(o, manifest) for o in chosen[:CELLS_NAMED_PER_EVENT])
            events.append(_summary(kind, reason, result, named, len(chosen)))
    return events


def merge_cell_events(events: Sequence[StudyEvent]) -> list[StudyEvent]:
    """The events in order, each kind of cell summary merged into one where it first appears."""
    merged: list[StudyEvent] = []
    summaries: dict[str, int] = {}  # reason -> its place in `merged`
    results = {reason: (kind, result) for result, kind, reason in _KINDS}
    for event in events:
        if event.reason not in results or not event.cell_count:
            merged.append(event)
            continue
        place = summaries.get(event.reason)
        if place is None:
            summaries[event.reason] = len(merged)
            merged.append(event)
            continue
        first = merged[place]
        kind, result = results[event.reason]
        named = (first.cells + event.cells)[:CELLS_NAMED_PER_EVENT]
        merged[place] = _summary(kind, event.reason, result, named, first.cell_count + event.cell_count)
    return merged


def _summary(
    kind: Literal["Normal", "Warning"], reason: str, result: str, named: tuple[str, ...], count: int
) -> StudyEvent:
    more = count - len(named)
    text = f"{count} cell{'s' if count != 1 else ''} {result}: {', '.join(named)}"
    message = clip(text + (f" and {more} more" if more else ""), MAX_EVENT_MESSAGE)
    return StudyEvent(kind, reason, message, cells=named, cell_count=count)


def _describe(outcome: CellOutcome, manifest: Manifest) -> str:
    key = cell_key(cell_at(manifest, outcome.cell_index))
    if outcome.result == "completed":
        return f"{key} (attempt {outcome.attempt})"
    return f"{key} (attempt {outcome.attempt}: {outcome.verdict.reason}, {outcome.verdict.message})"
