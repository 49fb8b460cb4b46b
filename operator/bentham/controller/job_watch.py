"""Our own watch of the studies' Jobs: selected on the API server by the uid label, decoded as plain JSON alone.

kopf's watch of Jobs decoded every event and ran it through kopf's per-event machinery (its
`labels=` filter is applied after decoding): about 45 % of the operator's CPU (bench/README.md).
This watch asks the API server for the Jobs labelled `bentham.io/study-uid` only, reads the
stream's lines in a thread of its own, and hands the event loop small `JobEntry`s for the
`JobIndex`, which wakes the study's worker as kopf's index did.

Each stream (one cluster-wide, or one per namespace given by name) lists, then watches from the
list's resourceVersion, with bookmarks, resuming from the last resourceVersion it saw whenever a
watch ends (the server's timeout, a silence, an error, with backoff). When the API server no
longer has that resourceVersion (410 Gone) it lists again, and the list replaces everything the
index held in its scope, so a Job deleted while no watch was open does not linger.

Threads: each stream reads its response in a daemon thread of its own, outside the event loop's
default executor (`kube.api_executor`), and over an ApiClient of its own (its own connection
pool): a watch holds its thread and its connection for minutes at a time, and must never take one
from the studies' API calls. The loop is woken once per batch of lines, not once per event.

JSON is decoded by pydantic-core's parser (`from_json`, already here with pydantic): about 2.5
times faster than the standard library's on Job events, and the events and pod lists were the
largest part of the operator's decoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from kopf._cogs.structs.references import NamespaceName, match_namespace  # kopf's glob syntax, as for Studies
from kubernetes import client
from kubernetes.client.rest import ApiException
from pydantic_core import from_json

from bentham.controller.job_index import JobEntry, JobIndex, job_entry
from bentham.controller.kube import CONNECT_TIMEOUT_S
from bentham.controller.metrics import Metrics
from bentham.controller.namespace_access import is_pattern
from bentham.core.jobs import LABEL_STUDY_UID

log = logging.getLogger(__name__)

BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 15.0)  # as a worker's: an outage that ends is noticed within 15 s
PAGE_SIZE = 500
"""Jobs per page of a list."""
SILENCE_S = 70.0
"""A watch that says nothing this long (the API server sends a bookmark each minute) is dead: resume it.

As kopf's inactivity timeout for the Study watch. A connection cut off without a word (a network
partition) is noticed this long after its last event; at 90 s the Jobs were seen again only ~30 s
after a 60-second cut had ended (tests/integration/test_api_outage.py)."""
JOIN_S = 5.0
"""How long `stop` waits for each stream's thread to notice."""


class Expired(Exception):
    """The API server no longer has the resourceVersion to resume from (410 Gone): list again."""


def watch_scopes(namespaces: Sequence[str]) -> tuple[list[str | None], Callable[[str], bool]]:
    """The streams to run (a namespace each, None: cluster-wide) and which namespaces' Jobs count.

    kopf serves Studies in `namespaces` (none: all). Names only: one stream per namespace, which
    the chart's namespaced RBAC (a Role in each) allows. Any glob: one cluster-wide stream, kept to
    the matching namespaces here; the chart refuses globs unless its RBAC is cluster-wide.
    """
    if not namespaces:
        return [None], _every_namespace
    if any(is_pattern(namespace) for namespace in namespaces):
        patterns = list(namespaces)
        return [None], lambda namespace: _matches_any(namespace, patterns)
    named: list[str | None] = [*sorted(set(namespaces))]
    return named, _every_namespace


def _every_namespace(namespace: str) -> bool:
    return True


def _matches_any(namespace: str, patterns: Sequence[str]) -> bool:
    return any(match_namespace(NamespaceName(namespace), pattern) for pattern in patterns)


class JobWatch:
    """The streams that keep a `JobIndex` current; `listed` is set once every stream's first list is in."""

    def __init__(
        self,
        api: client.ApiClient,
        index: JobIndex,
        namespaces: Sequence[str],
        *,
        timeout_s: int,
        metrics: Metrics,
    ) -> None:
        self._index = index
        self._metrics = metrics
        scopes, served = watch_scopes(namespaces)
        self._streams = [_JobStream(client.BatchV1Api(api), scope, served, timeout_s, self) for scope in scopes]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._pending: list[tuple[str | None, str, list[JobEntry]]] = []
        self._scheduled = False
        self._listed_scopes: set[str | None] = set()
        self.stopping = threading.Event()
        self.listed = asyncio.Event()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for stream in self._streams:
            stream.start()

    async def stop(self) -> None:
        self.stopping.set()
        for stream in self._streams:
            stream.interrupt()
        for stream in self._streams:
            await asyncio.to_thread(stream.join, JOIN_S)

    def deliver(self, scope: str | None, kind: str, entries: list[JobEntry]) -> None:
        """From a stream's thread: a list (`kind` LISTED) or one event; applied on the loop, in order."""
        with self._lock:
            self._pending.append((scope, kind, entries))
            if self._scheduled:
                return
            self._scheduled = True
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop has closed: the operator is stopping
            self._loop.call_soon_threadsafe(self._apply_pending)

    def _apply_pending(self) -> None:
        with self._lock:
            pending, self._pending, self._scheduled = self._pending, [], False
        for scope, kind, entries in pending:
            if kind == "LISTED":
                dropped = self._index.replace(scope, entries)
                self._metrics.job_watch_lists.inc()
                if dropped:
                    log.info("Job list of %s: %d Jobs gone while unwatched", scope or "every namespace", dropped)
                self._listed_scopes.add(scope)
                if len(self._listed_scopes) == len(self._streams):
                    self.listed.set()
            else:
                for entry in entries:
                    self._index.apply(kind, entry)


class _JobStream(threading.Thread):
    """List, then watch from where it was, for ever: one namespace's Jobs, or every namespace's."""

    def __init__(
        self,
        batch: client.BatchV1Api,
        scope: str | None,
        served: Callable[[str], bool],
        timeout_s: int,
        watch: JobWatch,
    ) -> None:
        super().__init__(name=f"bentham-jobs:{scope or '*'}", daemon=True)
        self._batch = batch
        self._scope = scope
        self._served = served
        self._timeout_s = timeout_s
        self._watch = watch
        self._response: Any = None

    def interrupt(self) -> None:
        """Ends a read under way (from another thread): `stop` must not wait out a silent watch."""
        response = self._response
        if response is not None:
            with contextlib.suppress(ValueError, RuntimeError, OSError):  # no socket to shut: the read is over
                response.shutdown()

    def run(self) -> None:
        version: str | None = None
        failures = 0
        while not self._watch.stopping.is_set():
            try:
                if version is None:
                    version = self._list()
                version, progressed = self._follow(version)
                failures = 0 if progressed else failures
            except Expired:
                log.info("Job watch of %s: resourceVersion %s expired; listing again", self._where(), version)
                version = None
                failures += 1
                if failures == 1:
                    continue  # at once: only a second expiry in a row waits
            except Exception as error:  # the stream must survive anything the API server or network does
                if self._watch.stopping.is_set():
                    return
                log.warning("Job watch of %s failed (%s); resuming", self._where(), error)
                failures += 1
            self._watch.stopping.wait(BACKOFF_S[min(failures, len(BACKOFF_S)) - 1] if failures else 0)

    def _where(self) -> str:
        return f"namespace {self._scope}" if self._scope else "every namespace"

    def _call(self, **params: Any) -> Any:
        params.update(label_selector=LABEL_STUDY_UID, _preload_content=False)
        try:
            if self._scope is None:
                return self._batch.list_job_for_all_namespaces(**params)
            return self._batch.list_namespaced_job(self._scope, **params)
        except ApiException as error:
            if error.status == 410:
                raise Expired() from error
            raise

    def _list(self) -> str:
        """Lists every Job in scope, page by page, and hands them over as one; the list's resourceVersion."""
        entries: list[JobEntry] = []
        token = None
        while True:
            response = self._call(limit=PAGE_SIZE, **({"_continue": token} if token else {}))
            page = from_json(response.data)
            response.release_conn()
            entries += [entry for entry in map(job_entry, page.get("items") or []) if self._served(entry.namespace)]
            metadata = page.get("metadata") or {}
            token = metadata.get("continue")
            if not token:
                self._watch.deliver(self._scope, "LISTED", entries)
                return str(metadata["resourceVersion"])

    def _follow(self, version: str) -> tuple[str, bool]:
        """One watch from `version` until the API server ends it; the last resourceVersion, and whether one came."""
        self._response = self._call(
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._timeout_s,
            _request_timeout=(CONNECT_TIMEOUT_S, SILENCE_S),
        )
        progressed = False
        try:
            for kind, entry, seen in watch_events(self._response):
                version, progressed = seen, True
                if entry is not None and self._served(entry.namespace):
                    self._watch.deliver(self._scope, kind, [entry])
        finally:
            response, self._response = self._response, None
            response.close()
            response.release_conn()
        return version, progressed


def watch_events(lines: Any) -> Iterator[tuple[str, JobEntry | None, str]]:
    """A watch stream's events as (type, entry, resourceVersion); a bookmark has no entry. Raises Expired on a 410."""
    for line in lines:
        if not line.strip():
            continue
        event = from_json(line)
        kind, body = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if body.get("code") == 410:
                raise Expired(body.get("message"))
            raise RuntimeError(f"watch error {body.get('code')}: {body.get('message')}")
        version = str((body.get("metadata") or {}).get("resourceVersion"))
        yield str(kind), (None if kind == "BOOKMARK" else job_entry(body)), version
