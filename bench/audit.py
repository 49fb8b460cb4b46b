"""The operator's own writes, read from the API server's audit log.

`apiserver_request_total` has no client label, so it counts the whole control plane's traffic
(Job controller, scheduler, garbage collector, kwok) beside the operator's. The local control
plane's audit log records every write of Jobs and Studies with its user agent; the operator's
are those of no other client we know. Reads are not recorded: the operator's are its watches
and one list per watch, a handful per scenario.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

# User agents of every writer that is not the operator: the control plane's parts are one
# multi-call binary (`controlplane/…`), then kwok, kubectl, and the benchmark's own clients.
NOT_OPERATOR = ("controlplane/", "kube-", "kwok", "kubectl/", "bentham-bench/", "bentham-baseline/")


@dataclass(frozen=True)
class AuditMark:
    """A place in the audit log: the file (by inode, which rotation keeps) and an offset in it."""

    log: Path
    inode: int
    offset: int


def mark(log: Path) -> AuditMark | None:
    """Where the audit log ends now; None when this cluster keeps none (a cluster given by kubeconfig)."""
    try:
        stat = log.stat()
    except FileNotFoundError:
        return None
    return AuditMark(log, stat.st_ino, stat.st_size)


def _lines_since(start: AuditMark) -> Iterator[bytes]:
    """Every complete line written after `start`, across a rotation of the log."""
    current = start.log.stat()
    if current.st_ino != start.inode:
        # Rotated: the old file lives on under a timestamped name, with the same inode.
        for candidate in start.log.parent.glob(f"{start.log.stem}-*{start.log.suffix}"):
            if os.stat(candidate).st_ino == start.inode:
                yield from _read(candidate, start.offset)
        yield from _read(start.log, 0)
    else:
        yield from _read(start.log, start.offset)


def _read(path: Path, offset: int) -> Iterator[bytes]:
    with open(path, "rb") as log:
        log.seek(offset)
        data = log.read()
    complete = data[: data.rfind(b"\n") + 1]
    yield from (line for line in complete.split(b"\n") if line)


def operator_writes(start: AuditMark, namespaces: Collection[str]) -> Counter[str]:
    """The operator's writes in `namespaces` since `start`, by `verb resource[/subresource]` (and code if refused)."""
    needles = [f'"namespace":"{namespace}"'.encode() for namespace in namespaces]
    tally: Counter[str] = Counter()
    for line in _lines_since(start):
        if not any(needle in line for needle in needles):
            continue  # cheap: most lines belong to other namespaces
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        if ref.get("namespace") not in namespaces or str(event.get("userAgent", "")).startswith(NOT_OPERATOR):
            continue
        resource = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        code = int((event.get("responseStatus") or {}).get("code") or 0)
        # A refused write (409 on a Job created before, 404 on one already gone) is named apart.
        tally[f"{event.get('verb')} {resource}" + (f" ({code})" if code >= 400 else "")] += 1
    return tally
