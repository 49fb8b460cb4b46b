"""The order in which cells start: required surfaces first, fair across surfaces and locations.

Within each group (required surfaces, then optional ones) the order walks the queries one
after another, and for each query visits every (surface, location) pair of the group along
diagonals: the k-th start of a query uses surface k mod S and location (k div S + k mod S) mod L.
Consecutive starts therefore hit a different surface (when S > 1) and a different location
(when L > 1), so a slow or failing surface or proxy location never holds the whole front of
the queue, and every surface and location advances at the same pace.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache

from bentham.api.manifest import Manifest
from bentham.core.cells import surface_position


@dataclass(frozen=True)
class StartOrder:
    """Cell indexes in start order, required surfaces' cells before optional ones'."""

    required: tuple[int, ...]
    optional: tuple[int, ...]

    @property
    def all(self) -> tuple[int, ...]:
        return self.required + self.optional


def start_order(manifest: Manifest) -> StartOrder:
    """The fair start order of the manifest's cells."""
    required = set(manifest.required_surface_ids)
    positions = range(len(manifest.surfaces))
    return _start_order(
        len(manifest.queries),
        len(manifest.surfaces),
        len(manifest.locations),
        tuple(p for p in positions if manifest.surfaces[p].id in required),
        tuple(p for p in positions if manifest.surfaces[p].id not in required),
    )


# Reconciles of one study ask for the same order again and again; it only depends on shape.
@lru_cache(maxsize=64)
def _start_order(
    queries: int, surfaces: int, locations: int, required: tuple[int, ...], optional: tuple[int, ...]
) -> StartOrder:
    return StartOrder(
        required=_diagonal_order(queries, surfaces, locations, required),
        optional=_diagonal_order(queries, surfaces, locations, optional),
    )


def _diagonal_order(queries: int, surfaces: int, locations: int, surface_positions: tuple[int, ...]) -> tuple[int, ...]:
    group = len(surface_positions)
    order: list[int] = []
    for query in range(queries):
        for k in range(group * locations):
            round_, s = divmod(k, group)
            location = (round_ + s) % locations
            order.append(query * surfaces * locations + surface_positions[s] * locations + location)
    return tuple(order)


def open_start_order(manifest: Manifest, blocked: Collection[str]) -> StartOrder:
    """The fair start order without the cells of `blocked` surfaces (ids), which start nothing."""
    order = start_order(manifest)
    if not blocked:
        return order
    positions = {p for p, s in enumerate(manifest.surfaces) if s.id.value in blocked}

    def open_(index: int) -> bool:
        return surface_position(manifest, index) not in positions

    return StartOrder(required=tuple(filter(open_, order.required)), optional=tuple(filter(open_, order.optional)))
