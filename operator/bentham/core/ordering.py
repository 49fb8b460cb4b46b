"""The order in which cells start: required surfaces first, then as `execution.executionOrder` says.

Within each group (required surfaces, then optional ones) the default order (`round-robin`)
walks the queries one after another, and for each query visits every (surface, location) pair
of the group along diagonals: the k-th start of a query uses surface k mod S and location
(k div S + k mod S) mod L. Consecutive starts therefore hit a different surface (when S > 1) and
a different location (when L > 1), so a slow or failing surface or proxy location never holds
the whole front of the queue, and every surface and location advances at the same pace.

`surface-first` runs one surface's cells (every query, every location) before the next
surface's; `location-first` one location's before the next's. `shuffleQueries: true` walks the
queries in an order drawn from a hash of the study's uid: the same order after any restart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from functools import cached_property, lru_cache

from bentham.api.manifest import ExecutionOrder, Manifest
from bentham.core.cells import surface_of


@dataclass(frozen=True)
class StartOrder:
    """Cell indexes in start order, required surfaces' cells before optional ones'."""

    required: tuple[int, ...]
    optional: tuple[int, ...]

    @property
    def all(self) -> tuple[int, ...]:
        return self.required + self.optional

    @cached_property
    def positions(self) -> dict[int, int]:
        """Each cell's place in the order: required cells from 0, optional ones after them."""
        return {index: position for position, index in enumerate(self.all)}


@dataclass(frozen=True)
class _Shape:
    """All a start order depends on: reconciles of one study ask for the same order again and again."""

    queries: tuple[int, ...]
    """Query indexes, in the order they are walked."""
    surfaces: int
    locations: int
    kind: ExecutionOrder


def start_order(manifest: Manifest, seed: str = "") -> StartOrder:
    """The start order of the manifest's cells; `seed` (the study's uid) draws a shuffled query order."""
    return _open_order(*_shape_of(manifest, seed), frozenset())


def _shape_of(manifest: Manifest, seed: str) -> tuple[_Shape, tuple[int, ...], tuple[int, ...]]:
    """What the start order of a manifest depends on: its shape, and its required and optional surfaces."""
    required = set(manifest.required_surface_ids)
    positions = range(len(manifest.surfaces))
    execution = manifest.execution
    queries = tuple(range(len(manifest.queries)))
    if execution is not None and execution.shuffleQueries:
        queries = tuple(sorted(queries, key=lambda q: hashlib.sha256(f"{seed}/{q}".encode()).digest()))
    kind = execution.executionOrder if execution is not None and execution.executionOrder else None
    shape = _Shape(queries, len(manifest.surfaces), len(manifest.locations), kind or ExecutionOrder.ROUND_ROBIN)
    return (
        shape,
        tuple(p for p in positions if manifest.surfaces[p].id in required),
        tuple(p for p in positions if manifest.surfaces[p].id not in required),
    )


@lru_cache(maxsize=64)
def _start_order(shape: _Shape, required: tuple[int, ...], optional: tuple[int, ...]) -> StartOrder:
    return StartOrder(required=_group_order(shape, required), optional=_group_order(shape, optional))


def _group_order(shape: _Shape, surface_positions: tuple[int, ...]) -> tuple[int, ...]:
    def index(query: int, surface: int, location: int) -> int:
        return query * shape.surfaces * shape.locations + surface * shape.locations + location

    locations = range(shape.locations)
    if shape.kind is ExecutionOrder.SURFACE_FIRST:
        return tuple(index(q, s, loc) for s in surface_positions for q in shape.queries for loc in locations)
    if shape.kind is ExecutionOrder.LOCATION_FIRST:
        return tuple(index(q, s, loc) for loc in locations for q in shape.queries for s in surface_positions)
    group = len(surface_positions)
    order: list[int] = []
    for query in shape.queries:
        for k in range(group * shape.locations):
            round_, s = divmod(k, group)
            order.append(index(query, surface_positions[s], (round_ + s) % shape.locations))
    return tuple(order)


def open_start_order(manifest: Manifest, blocked: Collection[str], seed: str = "") -> StartOrder:
    """The start order without the cells of `blocked` surfaces (ids), which start nothing.

    Passes over one study ask for the same order again and again, and get the same object: what is
    kept beside an order (its positions, the frontier a `Tally` keeps) then holds across passes.
    """
    positions = frozenset(p for p, s in enumerate(manifest.surfaces) if s.id.value in blocked)
    return _open_order(*_shape_of(manifest, seed), positions)


@lru_cache(maxsize=64)
def _open_order(
    shape: _Shape, required: tuple[int, ...], optional: tuple[int, ...], blocked: frozenset[int]
) -> StartOrder:
    order = _start_order(shape, required, optional)
    if not blocked:
        return order

    def open_(index: int) -> bool:
        return surface_of(index, surfaces=shape.surfaces, locations=shape.locations) not in blocked

    return StartOrder(required=tuple(filter(open_, order.required)), optional=tuple(filter(open_, order.optional)))
