"""Our own watch of the studies' Jobs: selected on the API server by the uid label, read on the event loop.

kopf's watch of Jobs decoded every event and ran it through kopf's per-event machinery (its
`labels=` filter is applied after decoding): about 45 % of the operator's CPU (bench/README.md).
This watch asks the API server for the Jobs labelled `bentham.io/study-uid` only, and keeps the
`JobIndex` current, which wakes the study's worker as kopf's index did.

Each stream (one cluster-wide, or one per namespace given by name) lists, then watches from the
list's resourceVersion, with bookmarks, resuming from the last resourceVersion it saw whenever a
watch ends (the server's timeout, a silence, an error, with backoff). When the API server no
longer has that resourceVersion (410 Gone) it lists again, and the list replaces everything the
index held in its scope, so a Job deleted while no watch was open does not linger.

The streams are tasks on the event loop, reading with aiohttp as kopf's own watches do, over a
pool of connections of their own (the watch's own client, `api_http.ApiHttp`): a watch holds its
connection for minutes at a time, and must never take one from the studies' requests. (They were
threads over the kubernetes client: each event's hand-off to the loop, with the GIL changing
hands, cost more than reading it.)

Of each event only what a sighting needs is decoded: pydantic-core reads the JSON into a few
typed fields and skips the rest (the pod template and the managed fields are most of a Job), in
~60 % of the time a whole decoding takes. Most of a Job's five events are the Job controller's
bookkeeping (its pod started, the success criteria met) and change nothing the index keeps: they
go no further than the stream. A list's pages are decoded in a thread: a page of 500 Jobs would
hold the loop for several milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from kopf._cogs.structs.references import NamespaceName, match_namespace  # kopf's glob syntax, as for Studies
from kubernetes import client
from kubernetes.client.rest import ApiException
from pydantic import TypeAdapter, ValidationError
from pydantic_core import from_json
from typing_extensions import TypedDict  # pydantic reads only typing_extensions' TypedDict on Python 3.11

from bentham.controller.api_http import ApiHttp, Lines
from bentham.controller.job_index import JobEntry, JobIndex, job_entry
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


class Expired(Exception):
    """The API server no longer has the resourceVersion to resume from (410 Gone): list again."""


class _Metadata(TypedDict, total=False):
    name: str
    namespace: str
    uid: str
    resourceVersion: str
    labels: dict[str, str]


class _Condition(TypedDict, total=False):
    type: str
    status: str
    reason: str
    lastTransitionTime: str


class _JobStatus(TypedDict, total=False):
    conditions: list[_Condition]


class _Object(TypedDict, total=False):
    """A Job, a bookmark (its metadata alone) or an error's Status (`status` "Failure", `code`, `message`)."""

    metadata: _Metadata
    status: _JobStatus | str
    code: int
    message: str


class _Event(TypedDict, total=False):
    type: str
    object: _Object


_ListMetadata = TypedDict("_ListMetadata", {"resourceVersion": str, "continue": str}, total=False)


class _Page(TypedDict, total=False):
    metadata: _ListMetadata
    items: list[_Object]


_EVENT = TypeAdapter(_Event)
_PAGE = TypeAdapter(_Page)


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


def read_event(line: bytes) -> tuple[str, JobEntry | None, str] | None:
    """A watch line as (type, entry, resourceVersion); a bookmark has no entry, a blank line is None.

    Raises Expired on a 410 in the stream, RuntimeError on any other error the API server sends.
    """
    if not line.strip():
        return None
    try:
        event: Any = _EVENT.validate_json(line)
    except ValidationError:  # a shape the typed reading does not expect: read it whole, as before
        event = from_json(line)
    kind, body = event.get("type"), event.get("object") or {}
    if kind == "ERROR":
        if body.get("code") == 410:
            raise Expired(body.get("message"))
        raise RuntimeError(f"watch error {body.get('code')}: {body.get('message')}")
    version = str((body.get("metadata") or {}).get("resourceVersion"))
    return str(kind), (None if kind == "BOOKMARK" else job_entry(body)), version


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
        self._http = ApiHttp(api)  # reads only: the write fence has nothing to stop here
        scopes, served = watch_scopes(namespaces)
        self._streams = [_JobStream(self._http, scope, served, timeout_s, self) for scope in scopes]
        self._tasks: list[asyncio.Task[None]] = []
        self._listed_scopes: set[str | None] = set()
        self.listed = asyncio.Event()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(stream.run(), name=f"bentham-jobs:{stream.scope or '*'}") for stream in self._streams
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._http.close()

    def replace(self, scope: str | None, entries: list[JobEntry]) -> None:
        """A stream's full list: it replaces all the index held in the stream's scope."""
        dropped = self._index.replace(scope, entries)
        self._metrics.job_watch_lists.inc()
        if dropped:
            log.info("Job list of %s: %d Jobs gone while unwatched", scope or "every namespace", dropped)
        self._listed_scopes.add(scope)
        if len(self._listed_scopes) == len(self._streams):
            self.listed.set()

    def apply(self, kind: str, entry: JobEntry) -> None:
        self._index.apply(kind, entry)


class _JobStream:
    """List, then watch from where it was, for ever: one namespace's Jobs, or every namespace's."""

    def __init__(
        self,
        http: ApiHttp,
        scope: str | None,
        served: Callable[[str], bool],
        timeout_s: int,
        watch: JobWatch,
    ) -> None:
        self.scope = scope
        self._http = http
        self._path = f"/apis/batch/v1/namespaces/{quote(scope)}/jobs" if scope else "/apis/batch/v1/jobs"
        self._served = served
        self._timeout_s = timeout_s
        self._watch = watch
        self._told: dict[tuple[str, str], JobEntry] = {}  # (namespace, name) -> what the index was last given
        self._lines: Lines | None = None

    def interrupt(self) -> None:
        """Ends the watch under way: the stream resumes (with a failure's backoff)."""
        lines = self._lines
        if lines is not None:
            lines.close()

    async def run(self) -> None:
        version: str | None = None
        failures = 0
        while True:
            try:
                if version is None:
                    version = await self._list()
                version, progressed = await self._follow(version)
                failures = 0 if progressed else failures
            except Expired:
                log.info("Job watch of %s: resourceVersion %s expired; listing again", self._where(), version)
                version = None
                failures += 1
                if failures == 1:
                    continue  # at once: only a second expiry in a row waits
            except Exception as error:  # the stream must survive anything the API server or network does
                log.warning("Job watch of %s failed (%s); resuming", self._where(), error)
                failures += 1
            if failures:
                await asyncio.sleep(BACKOFF_S[min(failures, len(BACKOFF_S)) - 1])

    def _where(self) -> str:
        return f"namespace {self.scope}" if self.scope else "every namespace"

    async def _list(self) -> str:
        """Lists every Job in scope, page by page, and hands them over as one; the list's resourceVersion."""
        entries: list[JobEntry] = []
        token = None
        while True:
            query = {
                "labelSelector": LABEL_STUDY_UID,
                "limit": str(PAGE_SIZE),
                **({"continue": token} if token else {}),
            }
            try:
                answer = await self._http.request("GET", self._path, query=query)
            except ApiException as error:
                if error.status == 410:
                    raise Expired() from error
                raise
            page = await asyncio.to_thread(_PAGE.validate_json, answer)
            entries += [entry for entry in map(job_entry, page.get("items") or []) if self._served(entry.namespace)]
            metadata = page.get("metadata") or {}
            token = metadata.get("continue")
            if not token:
                self._told = {(entry.namespace, entry.name): entry for entry in entries}
                self._watch.replace(self.scope, entries)
                return str(metadata["resourceVersion"])

    async def _follow(self, version: str) -> tuple[str, bool]:
        """One watch from `version` until the API server ends it; the last resourceVersion, and whether one came."""
        query = {
            "labelSelector": LABEL_STUDY_UID,
            "watch": "true",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self._timeout_s),
        }
        progressed = False
        try:
            async with self._http.lines(self._path, query=query, silence_s=SILENCE_S) as lines:
                self._lines = lines
                async for line in lines:
                    event = read_event(line)
                    if event is None:
                        continue
                    kind, entry, version = event
                    progressed = True
                    if entry is not None and self._served(entry.namespace):
                        self._tell(kind, entry)
        except ApiException as error:
            if error.status == 410:
                raise Expired() from error
            raise
        finally:
            self._lines = None
        return version, progressed

    def _tell(self, kind: str, entry: JobEntry) -> None:
        """Gives the index an event, unless it changes nothing the index keeps (the Job controller's bookkeeping)."""
        place = (entry.namespace, entry.name)
        if kind == "DELETED":
            self._told.pop(place, None)
        elif self._told.get(place) == entry:
            return
        else:
            self._told[place] = entry
        self._watch.apply(kind, entry)
