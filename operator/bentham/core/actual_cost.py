"""What a study has cost so far: the executors' reported `costUsd`, summed into `status.cost`.

An attempt's cost is added by the decision that records its outcome (`outcomes.record_outcomes`),
into the same status as that outcome. Both are written together or not at all: a pass that sees
the same finished Job again, or a restarted operator deciding from the written status, finds the
outcome already recorded and adds nothing, and a status lost before its write loses the sum with
the outcome, which the next pass records (and adds) again. The running sums therefore live only
in the status. Failed attempts count too: the money was spent.

Costs are summed in whole micro-dollars (`core.money`), so adding many small costs never drifts;
`totalUsd` and `bySurface` are those integers in USD, for reading.
"""

from __future__ import annotations

from collections.abc import Sequence

from bentham.api.manifest import Manifest
from bentham.api.status import ActualCost
from bentham.core.cells import surface_position
from bentham.core.money import micro_usd, usd
from bentham.core.outcomes import CellOutcome


def add_reported_costs(
    previous: ActualCost | None, outcomes: Sequence[CellOutcome], manifest: Manifest
) -> ActualCost | None:
    """`previous` plus the cost of each newly recorded attempt that reported one; None while none has."""
    reported = [outcome for outcome in outcomes if outcome.cost_micro_usd is not None]
    if not reported:
        return previous
    total, by_surface = _sums(previous)
    for outcome in reported:
        assert outcome.cost_micro_usd is not None
        surface = manifest.surfaces[surface_position(manifest, outcome.cell_index)].id.value
        total += outcome.cost_micro_usd
        by_surface[surface] = by_surface.get(surface, 0) + outcome.cost_micro_usd
    return ActualCost(
        totalMicroUsd=total,
        bySurfaceMicroUsd=by_surface,
        totalUsd=usd(total),
        bySurface={surface: usd(micros) for surface, micros in by_surface.items()},
        attempts=(previous.attempts if previous is not None else 0) + len(reported),
    )


def _sums(previous: ActualCost | None) -> tuple[int, dict[str, int]]:
    """The micro-dollar sums so far; a status written before they existed is read from its USD figures."""
    if previous is None:
        return 0, {}
    if previous.bySurface and not previous.bySurfaceMicroUsd:
        by_surface = {surface: micro_usd(amount) for surface, amount in previous.bySurface.items()}
        return micro_usd(previous.totalUsd), by_surface
    return previous.totalMicroUsd, dict(previous.bySurfaceMicroUsd)
