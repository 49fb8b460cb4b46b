"""A cell's identity: one query on one surface from one location.

A cell's index is a pure function of its coordinates in manifest order,

    index = query_index * (S * L) + surface_position * L + location_position

so the same manifest always yields the same cells, and a Job's name is a pure function of the
cell and the attempt: no reconcile, however often it runs or crashes, can start the same
attempt under two names.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bentham.api.manifest import LocationId, Manifest, SurfaceId

DNS_LABEL_MAX = 63


@dataclass(frozen=True)
class Cell:
    """One query asked of one surface from one location."""

    index: int
    query_index: int
    surface: SurfaceId
    location: LocationId


def cell_at(manifest: Manifest, index: int) -> Cell:
    """The cell at `index`; raises IndexError outside 0 ≤ index < cell count."""
    if not 0 <= index < manifest.cell_count:
        raise IndexError(f"cell {index} is outside 0..{manifest.cell_count - 1}")
    surfaces, locations = len(manifest.surfaces), len(manifest.locations)
    query_index, rest = divmod(index, surfaces * locations)
    surface_position, location_position = divmod(rest, locations)
    return Cell(
        index=index,
        query_index=query_index,
        surface=manifest.surfaces[surface_position].id,
        location=manifest.locations[location_position].id,
    )


def surface_position(manifest: Manifest, index: int) -> int:
    """The position in `manifest.surfaces` of cell `index`'s surface (no bounds check: this is hot)."""
    return surface_of(index, surfaces=len(manifest.surfaces), locations=len(manifest.locations))


def surface_of(index: int, *, surfaces: int, locations: int) -> int:
    """The surface position of cell `index` in a matrix of that many surfaces and locations."""
    return (index // locations) % surfaces


def cells_of(manifest: Manifest) -> list[Cell]:
    """Every cell of the manifest, in index order."""
    return [cell_at(manifest, index) for index in range(manifest.cell_count)]


def cell_key(cell: Cell) -> str:
    """A short, stable, label-safe name for the cell, e.g. `q12-openai-api-us-nyc`."""
    # Surface and location ids are lowercase DNS labels, so the key is one too (at most 32 chars).
    return f"q{cell.query_index}-{cell.surface.value}-{cell.location.value}"


def short_hash(text: str, length: int = 5) -> str:
    """The first `length` hex digits of the SHA-256 of `text`."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]
