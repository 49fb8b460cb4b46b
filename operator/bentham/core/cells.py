"""A cell's identity: one query on one surface from one location.

A cell's index is a pure function of its coordinates in manifest order,

    index = query_index * (S * L) + surface_position * L + location_position

so the same manifest always yields the same cells, and a Job's name is a pure function of the
cell and the attempt: no reconcile, however often it runs or crashes, can start the same
attempt under two names.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from bentham.api.manifest import LocationId, Manifest, SurfaceId

DNS_LABEL_MAX = 63
_NOT_NAME_CHARS = re.compile(r"[^a-z0-9-]+")


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


def job_name(study_name: str, study_uid: str, cell_index: int, attempt: int) -> str:
    """The Job of one attempt of one cell: `<study>-<uid hash>-c<cell>-a<attempt>`, ≤ 63 chars.

    The study's name is truncated to fit; the hash of the study's uid keeps two studies whose
    truncated names agree (or a study re-created under an old name) apart.
    """
    if cell_index < 0 or attempt < 1:
        raise ValueError(f"no Job for cell {cell_index}, attempt {attempt}")
    suffix = f"-{short_hash(study_uid)}-c{cell_index}-a{attempt}"
    # Study names are DNS subdomains: dots become dashes so the Job name is also a DNS label.
    prefix = _NOT_NAME_CHARS.sub("-", study_name.lower())[: DNS_LABEL_MAX - len(suffix)].strip("-")
    return f"{prefix or 'study'}{suffix}"
