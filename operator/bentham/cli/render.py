"""Text views of a Study for `kubectl study`: pure functions from objects (and `now`) to text.

Nothing here reads the cluster or the clock, so every view is tested with plain objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bentham.api.manifest import EvidenceLevel, Manifest, ProxyType
from bentham.api.status import ActualCost, CellCounts, CostEstimate, DeadlineSetBy, StudyStatus
from bentham.core.cells import cell_at, cell_key
from bentham.core.checkpoint import CellRecord
from bentham.core.states import TERMINAL_STATES
from bentham.core.timestamps import as_utc, parse_rfc3339, rfc3339

BAR_WIDTH = 24
# One character per kind of cell, in the order the bar draws them.
BAR_MARKS = (("completed", "#"), ("failed", "x"), ("executing", ">"), ("pending", "."), ("skipped", "-"))
LEGEND = "bars: # completed  x failed  > running  . pending  - skipped (deadline)"


def is_terminal(study: Mapping[str, Any]) -> bool:
    """Whether the study has reached a state nothing leaves: complete, failed or cancelled."""
    return (study.get("status") or {}).get("state") in TERMINAL_STATES


def bar(counts: CellCounts, width: int = BAR_WIDTH) -> str:
    """`[###x>>....]`: each kind of cell gets its share of `width` characters (largest remainder)."""
    total = sum(getattr(counts, field) for field, _ in BAR_MARKS)
    if total == 0:
        return "[" + " " * width + "]"
    shares = [(mark, getattr(counts, field) * width / total) for field, mark in BAR_MARKS]
    lengths = {mark: int(share) for mark, share in shares}
    left = width - sum(lengths.values())
    by_remainder = sorted(shares, key=lambda item: item[1] - int(item[1]), reverse=True)
    for mark, _ in by_remainder[:left]:
        lengths[mark] += 1
    return "[" + "".join(mark * lengths[mark] for _, mark in BAR_MARKS) + "]"


def percent(completed: int, total: int) -> str:
    """Completed share, rounded down as the operator rounds it: 100% only when every cell completed."""
    return f"{completed * 100 // total if total else 0}%"


def relative(moment: datetime, now: datetime) -> str:
    """`in 3h 12m` or `5m ago`, to the minute (seconds under a minute)."""
    seconds = int((as_utc(moment) - as_utc(now)).total_seconds())
    text = duration(abs(seconds))
    return f"in {text}" if seconds >= 0 else f"{text} ago"


def duration(seconds: int) -> str:
    """`2d 3h`, `3h 12m`, `12m`, `40s`: the two largest units."""
    if seconds < 60:
        return f"{seconds}s"
    minutes, _ = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m"


def _when(text: str | None, now: datetime) -> str | None:
    """An RFC 3339 time with how far it is from now, or the text itself if it is not a time."""
    if not text:
        return None
    try:
        moment = parse_rfc3339(text)
    except ValueError:
        return text
    return f"{rfc3339(moment)} ({relative(moment, now)})"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], right: Iterable[int] = ()) -> list[str]:
    """Columns padded to their widest cell; the columns in `right` are right-aligned."""
    rows = [list(header), *[list(row) for row in rows]]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    aligned = set(right)
    return [
        "  ".join(
            cell.rjust(widths[column]) if column in aligned else cell.ljust(widths[column])
            for column, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def slice_table(title: str, slices: Mapping[str, CellCounts], mark_required: bool) -> list[str]:
    """One line per surface (or location): its name, a bar, its percent and its counts."""
    header = [title, "PROGRESS", "", "DONE", "FAILED", "RUNNING", "PENDING", "SKIPPED", "TOTAL"]
    rows = []
    for name, counts in slices.items():
        label = f"{name} *" if mark_required and counts.required else name
        rows.append(
            [
                label,
                bar(counts),
                percent(counts.completed, counts.total),
                str(counts.completed),
                str(counts.failed),
                str(counts.executing),
                str(counts.pending),
                str(counts.skipped),
                str(counts.total),
            ]
        )
    return _table(header, rows, right=range(2, 9))


def render_status(study: Mapping[str, Any], now: datetime) -> str:
    """The study at a glance: state, overall progress, deadline and rates, then per surface and location."""
    metadata = study.get("metadata") or {}
    spec = study.get("spec") or {}
    status = StudyStatus.model_validate(study.get("status") or {})
    name = f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"
    state = status.state.value if status.state else "(not yet seen by the operator)"
    lines = [f"Study:     {name}" + (f"  (tenant {spec['tenantId']})" if spec.get("tenantId") else "")]
    lines.append(f"State:     {state}" + (f"  {status.message}" if status.message else ""))
    progress = status.progress
    if progress is not None:
        overall = CellCounts(
            total=progress.totalCells,
            completed=progress.completedCells,
            failed=progress.failedCells,
            executing=progress.executingCells,
            pending=progress.pendingCells,
            skipped=progress.skippedCells,
        )
        lines.append(
            f"Progress:  {bar(overall)} {progress.completedCells}/{progress.totalCells} completed "
            f"({percent(progress.completedCells, progress.totalCells)}), {progress.failedCells} failed, "
            f"{progress.executingCells} running, {progress.pendingCells} pending, {progress.skippedCells} skipped"
        )
    cost = cost_line(status.estimate, status.cost)
    if cost:
        lines.append(f"Cost:      {cost}")
    manifest = spec.get("manifest") or {}
    lines.extend(_deadline_lines(status, manifest.get("deadline"), now))
    retention = retention_line(manifest)
    if retention:
        lines.append(f"Retention: {retention}")
    for label, text in (("Started:", status.startedAt), ("Finished:", status.completedAt)):
        when = _when(text, now)
        if when:
            lines.append(f"{label:<10} {when}")
    true_conditions = [c for c in status.conditions if c.status == "True"]
    if true_conditions:
        lines.append("Conditions: " + ", ".join(f"{c.type} ({c.reason})" for c in true_conditions))
    for warning in status.warnings:
        lines.append(f"Warning:   {warning}")
    lines += _breakdown(status)
    return "\n".join(lines) + "\n"


def _breakdown(status: StudyStatus) -> list[str]:
    """The tables below the summary: progress per surface and per location, then cost per surface."""
    progress, lines = status.progress, []
    if progress is not None and progress.bySurface:
        lines += ["", *slice_table("SURFACE", progress.bySurface, mark_required=True)]
        if any(counts.required for counts in progress.bySurface.values()):
            lines.append("* required: the study completes only when these reach their coverage threshold")
    if progress is not None and progress.byLocation:
        lines += ["", *slice_table("LOCATION", progress.byLocation, mark_required=False)]
    costs = cost_table(status.estimate, status.cost)
    if costs:
        lines += ["", *costs]
    if progress is not None:
        lines += ["", LEGEND]
    return lines


def usd(amount: float) -> str:
    """`$1.20`, `$0.0002775`: to the cent, or to the first significant digits below a cent (at most 7 places)."""
    text = f"{amount:.7f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"${whole}.{fraction.ljust(2, '0')}"


def cost_line(estimate: CostEstimate | None, cost: ActualCost | None) -> str | None:
    """Reported spending against the estimate, e.g. `$0.45 reported by 3 attempts; estimated $0.10-$0.17`."""
    parts = []
    if cost is not None:
        parts.append(f"{usd(cost.totalUsd)} reported by {cost.attempts} attempt{'s' if cost.attempts != 1 else ''}")
    if estimate is not None:
        parts.append(f"estimated {usd(estimate.minUsd)}-{usd(estimate.maxUsd)}")
    return "; ".join(parts) or None


def cost_table(estimate: CostEstimate | None, cost: ActualCost | None) -> list[str]:
    """One line per surface: what its attempts reported beside its estimated range; none without a reported cost."""
    if cost is None or not cost.bySurface:
        return []
    shares = estimate.bySurface if estimate is not None else {}
    surfaces = [*shares, *(surface for surface in cost.bySurface if surface not in shares)]
    rows = [
        [
            surface,
            usd(cost.bySurface.get(surface, 0.0)),
            f"{usd(shares[surface].minUsd)}-{usd(shares[surface].maxUsd)}" if surface in shares else "-",
        ]
        for surface in surfaces
    ]
    return _table(["SURFACE", "REPORTED", "ESTIMATED"], rows, right=range(1, 3))


def render_estimate(name: str, manifest: Manifest, estimate: CostEstimate, warnings: Sequence[str] = ()) -> str:
    """What `kubectl study estimate` prints: the cells, the USD range, what adjusted it, and each surface's share."""
    lines = [
        f"Study:     {name}",
        f"Cells:     {len(manifest.queries)} queries x {len(manifest.surfaces)} surfaces x "
        f"{len(manifest.locations)} locations = {estimate.cells}",
        f"Estimate:  {usd(estimate.minUsd)} - {usd(estimate.maxUsd)} USD",
    ]
    reasons = []
    if any(location.proxyType is ProxyType.MOBILE for location in manifest.locations):
        reasons.append("a location uses a mobile proxy")
    if manifest.evidenceLevel is EvidenceLevel.FULL:
        reasons.append("evidenceLevel is full")
    if reasons:
        lines.append(f"Adjusted:  x{estimate.multiplier:g} ({'; '.join(reasons)})")
    lines.extend(f"Warning:   {warning}" for warning in warnings)
    rows = [
        [
            surface,
            (share.model or "-") + ("" if share.listed else " *"),
            usd(share.perRequestUsd),
            str(share.cells),
            usd(share.minUsd),
            usd(share.maxUsd),
        ]
        for surface, share in estimate.bySurface.items()
    ]
    lines += ["", *_table(["SURFACE", "MODEL", "PER REQUEST", "CELLS", "MIN", "MAX"], rows, right=range(2, 6))]
    if any(not share.listed for share in estimate.bySurface.values()):
        lines.append("* not in the pricing table: priced at its rate for unknown surfaces")
    return "\n".join(lines) + "\n"


def retention_line(manifest: Mapping[str, Any]) -> str | None:
    """`2555 days, under legal hold (the Study cannot be deleted)`: what the manifest asks of the evidence store."""
    days, forever, hold = manifest.get("retentionDays"), manifest.get("preserveForever"), manifest.get("legalHold")
    parts = []
    if forever is True:
        parts.append("kept forever")
    elif isinstance(days, int) and not isinstance(days, bool):
        parts.append(f"{days} day{'s' if days != 1 else ''}")
    if hold is True:
        parts.append("under legal hold (the Study cannot be deleted until the hold is lifted)")
    return ", ".join(parts) or None


def _deadline_lines(status: StudyStatus, manifest_deadline: str | None, now: datetime) -> list[str]:
    tracked = status.deadline
    deadline = _when((tracked.deadline if tracked else None) or manifest_deadline, now)
    if deadline is None:
        return []
    timed = tracked is not None and tracked.setBy is DeadlineSetBy.STUDY_TIMEOUT
    lines = [
        f"Deadline:  {deadline}"
        + ("  (the study time-out: running time, paused time excluded)" if timed else "")
        + ("  AT RISK" if tracked and tracked.atRisk else "")
    ]
    if tracked is None:
        return lines
    facts = []
    if tracked.currentRate is not None:
        facts.append(f"rate {tracked.currentRate:.1f} cells/h")
    if tracked.requiredRate is not None:
        facts.append(f"needed {tracked.requiredRate:.1f} cells/h")
    projected = _when(tracked.projectedCompletion, now)
    if projected:
        facts.append(f"projected finish {projected}")
    if tracked.bottleneckSurface:
        facts.append(f"bottleneck {tracked.bottleneckSurface}")
    if facts:
        lines.append("           " + ", ".join(facts))
    return lines


@dataclass(frozen=True)
class CellRow:
    """One cell as `kubectl study cells` lists it."""

    index: int
    key: str
    query_index: int
    surface: str
    location: str
    state: str
    attempts: int
    retry_at: datetime | None


def cell_rows(manifest: Manifest, records: Sequence[CellRecord]) -> list[CellRow]:
    """The decoded checkpoint: every cell with its coordinates and where it stands."""
    rows = []
    for index, record in enumerate(records):
        cell = cell_at(manifest, index)
        rows.append(
            CellRow(
                index=index,
                key=cell_key(cell),
                query_index=cell.query_index,
                surface=cell.surface.value,
                location=cell.location.value,
                state=record.state.name.lower(),
                attempts=record.attempts,
                retry_at=record.retry_at,
            )
        )
    return rows


def select_cells(
    rows: Iterable[CellRow], *, state: str | None = None, surface: str | None = None, location: str | None = None
) -> list[CellRow]:
    """The rows that match every filter given."""
    return [
        row
        for row in rows
        if (state is None or row.state == state)
        and (surface is None or row.surface == surface)
        and (location is None or row.location == location)
    ]


def render_cells(rows: Sequence[CellRow], total: int, now: datetime) -> str:
    """A table of cells, one per line, and how many of the study's cells it shows."""
    if not rows:
        return f"No cells match (the study has {total}).\n"
    waiting = any(row.retry_at is not None for row in rows)
    header = ["INDEX", "CELL", "QUERY", "SURFACE", "LOCATION", "STATE", "ATTEMPTS"]
    if waiting:
        header.append("RETRY")
    table_rows = []
    for row in rows:
        cells = [str(row.index), row.key, str(row.query_index), row.surface, row.location, row.state, str(row.attempts)]
        if waiting:
            cells.append(relative(row.retry_at, now) if row.retry_at is not None else "")
        table_rows.append(cells)
    lines = _table(header, table_rows, right=(0, 2, 6))
    return "\n".join([*lines, "", f"{len(rows)} of {total} cells"]) + "\n"
