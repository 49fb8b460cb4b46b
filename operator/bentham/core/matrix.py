"""The cell matrix a study started with, so that results are never recorded against other cells.

A cell is its index in the matrix of query texts x surface ids x location ids, in manifest
order (`cells`). Change any of them and the same index names another cell: the records would
credit one surface's answers to another. The API server refuses such an edit (a CEL transition
rule on the spec); what CEL cannot price (1,000 query texts of 10,000 characters), the operator
guards: the status keeps a fingerprint of each part, and a spec whose matrix differs holds the
study (`SpecValid=False`, reason `MatrixChanged`) until the matrix is what it was.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from bentham.api.manifest import Manifest
from bentham.api.status import MatrixFingerprint

MATRIX_CHANGED = "MatrixChanged"


def fingerprint_of(manifest: Manifest) -> MatrixFingerprint:
    """The SHA-256 of each part of the manifest's cell matrix."""
    return MatrixFingerprint(
        queries=_digest([query.text for query in manifest.queries]),
        surfaces=_digest([surface.id.value for surface in manifest.surfaces]),
        locations=_digest([location.id.value for location in manifest.locations]),
        cells=manifest.cell_count,
    )


def changed_parts(started: MatrixFingerprint | None, now: MatrixFingerprint, recorded_cells: int | None) -> list[str]:
    """The manifest fields whose part of the matrix differs from the one the study started with.

    A study recorded before fingerprints were kept is judged by its cell count alone.
    """
    if started is None:
        return ["queries, surfaces or locations"] if recorded_cells not in (None, now.cells) else []
    return [
        f"manifest.{part}"
        for part in ("queries", "surfaces", "locations")
        if getattr(started, part) != getattr(now, part)
    ]


def describe_change(parts: Sequence[str]) -> str:
    """The error of a changed matrix, naming the parts and what to do."""
    return (
        f"{', '.join(parts)}: the cell matrix (query texts, surface ids, location ids, in order) is fixed once "
        "the study has started; put it back as it was, or create a new Study for the new matrix"
    )


def _digest(values: list[str]) -> str:
    return hashlib.sha256(json.dumps(values, ensure_ascii=False).encode()).hexdigest()
