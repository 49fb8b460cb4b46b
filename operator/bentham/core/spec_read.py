"""A study's spec, read once and kept while it stays the same.

Every pass judges the spec (`api.validation`) and fingerprints its cell matrix (`core.matrix`),
and a spec changes far less often than its Jobs do: validating a 500-query spec and hashing its
matrix cost a pass ~0.6 ms, at 100,000 cells a tenth of it. So a decision leaves what it read
for the next (`Derived.spec`), which takes it while the spec is the one it was read from: the
same generation (the API server moves it with every change to the spec) and an equal spec (a
caller that keeps the generation, as tests do, and edits the spec still has it read again). The
spec kept to compare with is a copy, so an edit in place of the caller's dict is seen too.
Only what does not depend on the time is kept: the warnings are worked out every pass.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bentham.api.spec import StudySpec
from bentham.api.status import MatrixFingerprint
from bentham.api.validation import Invalid, Valid, manifest_warnings, read_spec
from bentham.core.matrix import fingerprint_of


@dataclass(frozen=True)
class SpecRead:
    """What a spec was judged to be, and the spec it was judged from."""

    raw: Any
    """A copy of the spec as stored, to compare the next one with (an invalid one is not kept)."""
    generation: int
    created_at: datetime
    judged: StudySpec | Invalid
    matrix: MatrixFingerprint | None
    """The valid spec's cell matrix; None when it is invalid."""

    def holds_for(self, raw: Any, *, generation: int, created_at: datetime) -> bool:
        """Whether this is what `raw`, the spec of `generation`, reads as."""
        if self.generation != generation or self.created_at != created_at:
            return False
        try:
            return bool(self.raw == raw)
        except RecursionError:
            return False

    def validation(self, *, now: datetime) -> Valid | Invalid:
        """The spec's verdict at `now`: the warnings are the time's (a deadline less than an hour away)."""
        if isinstance(self.judged, Invalid):
            return self.judged
        return Valid(spec=self.judged, warnings=manifest_warnings(self.judged.manifest, now=now))


def read_once(raw: Any, *, generation: int, created_at: datetime, known: SpecRead | None) -> SpecRead:
    """`raw` read: `known` when it was read from this same spec, else read afresh."""
    if known is not None and known.holds_for(raw, generation=generation, created_at=created_at):
        return known
    judged = read_spec(raw, created_at=created_at)
    if isinstance(judged, Invalid):
        return SpecRead(_NEVER_EQUAL, generation, created_at, judged, None)  # rare: judged again each pass
    try:
        kept = copy.deepcopy(raw)
    except RecursionError:  # a free-form field (env valueFrom) nested deeper than Python recurses
        kept = _NEVER_EQUAL
    return SpecRead(kept, generation, created_at, judged, fingerprint_of(judged.manifest))


_NEVER_EQUAL = object()  # equal to nothing but itself
