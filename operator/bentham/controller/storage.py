"""kopf's per-object storages, switched off: the operator keeps no state in kopf.

kopf keeps a diff-base (the last handled essence of each object) and per-handler progress so that
its change handlers (on.create/update/resume) can tell what changed and resume half-done work.
The operator has no such handler: indexes and on.event handlers only, with the study's whole
state in its own status. Yet kopf builds and deep-copies both on every watch event of every
watched object, Jobs included: at 10,000 cells about a fifth of the operator's CPU
(bench/README.md). These storages store nothing and return nothing, so that work is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kopf


class NoDiffBase(kopf.DiffBaseStorage):
    """Remembers no essence: every event looks like an object seen for the first time."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass


class NoProgress(kopf.ProgressStorage):
    """Keeps no handler progress: there is no multi-step handler to resume."""

    def fetch(self, *, key: Any, body: kopf.Body) -> None:
        return None

    def store(self, *, key: Any, record: Any, body: kopf.Body, patch: kopf.Patch) -> None:
        pass

    def purge(self, *, key: Any, body: kopf.Body, patch: kopf.Patch) -> None:
        pass

    def touch(self, *, body: kopf.Body, patch: kopf.Patch, value: str | None) -> None:
        pass

    def clear(self, *, essence: kopf.BodyEssence) -> kopf.BodyEssence:
        return essence


def keep_nothing(settings: kopf.OperatorSettings) -> None:
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.persistence.progress_storage = NoProgress()
