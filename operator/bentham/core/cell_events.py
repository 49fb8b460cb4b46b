"""Events about cells, summarised: one per kind of outcome in a decision, not one per cell.

A burst of a thousand finished Jobs yields at most three events, each naming the first few cells
and counting the rest, so the event stream (and the webhook) stays readable.
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
        if not chosen:
            continue
        named = ", ".join(_describe(o, manifest) for o in chosen[:CELLS_NAMED_PER_EVENT])
        more = len(chosen) - min(len(chosen), CELLS_NAMED_PER_EVENT)
        text = f"{len(chosen)} cell{'s' if len(chosen) != 1 else ''} {result}: {named}"
        events.append(StudyEvent(kind, reason, clip(text + (f" and {more} more" if more else ""), MAX_EVENT_MESSAGE)))
    return events


def _describe(outcome: CellOutcome, manifest: Manifest) -> str:
    key = cell_key(cell_at(manifest, outcome.cell_index))
    if outcome.result == "completed":
        return f"{key} (attempt {outcome.attempt})"
    return f"{key} (attempt {outcome.attempt}: {outcome.verdict.reason}, {outcome.verdict.message})"
