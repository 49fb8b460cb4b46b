"""The operator's calls to the API server: Jobs, the Study's status, Events, and finished pods.

The studies' calls (`KubeClient`) are made on the event loop with aiohttp (`api_http.ApiHttp`),
from the kubernetes client's `ApiClient`: its server, credentials, timeouts and write fence. The
other callers (the Lease, the notifier's Secret reads, the Job watch) use the synchronous
kubernetes client itself, in threads, so that the event loop never blocks on the network.

Every call is bounded (`BoundedApiClient`): a connect timeout and a read timeout on each request,
whoever makes it (this module, the Lease, the notifier's Secret read). A call that times out
fails like any other, and its pass is retried with backoff; a half-open connection never holds a
worker or a thread for good.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from pydantic_core import from_json

from bentham import __version__
from bentham.api.names import GROUP, KIND, PLURAL, VERSION
from bentham.api.status import StudyStatus
from bentham.controller.api_http import ApiHttp
from bentham.controller.leadership import WriteFence
from bentham.controller.metrics import Metrics
from bentham.controller.observe import JOB_NAME_LABEL, pod_items
from bentham.core import CreateAnswer
from bentham.core.jobs import LABEL_ATTEMPT, LABEL_CELL_INDEX, LABEL_STUDY_UID

log = logging.getLogger(__name__)

COMPONENT = "bentham-operator"
API_THREADS = 32
"""Threads, and connections, for the kubernetes client's calls (the Lease, the notifier's Secret reads)."""


@dataclass(frozen=True)
class StudyRef:
    """One study: a name in a namespace, and the uid that makes it this study and no later one of that name."""

    namespace: str
    name: str
    uid: str


def api_executor() -> ThreadPoolExecutor:
    """The event loop's default executor, which `asyncio.to_thread` uses for the kubernetes client's calls.

    Python's own default has min(32, CPUs + 4) threads: 6 on two cores, which would queue the
    notifier's Secret reads and the decisions' hand-offs behind each other.
    """
    return ThreadPoolExecutor(API_THREADS, thread_name_prefix="bentham-api")


PODS_PER_LIST = 100
"""Jobs whose ended pods one list asks for at most: its label selector names each Job."""

JOBS_PER_DELETE = 20
"""Jobs per deletion request at most (its label selector lists each one's cell index). The API server deletes
a collection one Job after another, so a pass's deletions go as several requests side by side."""

CONNECT_TIMEOUT_S = 5.0
"""Seconds to open a connection to the API server (TCP and TLS)."""
READ_TIMEOUT_S = 15.0
"""Seconds the API server may stay silent in the middle of an answer (BENTHAM_API_TIMEOUT_SECONDS)."""


class BoundedApiClient(client.ApiClient):  # type: ignore[misc]  # the client is untyped
    """An ApiClient whose every request has a connect and a read timeout, unless the caller gives its own.

    The kubernetes client sends a request without any timeout unless told, so one stalled
    connection would block its thread forever. All API objects built on this client (Jobs, pods,
    Events, Studies, the Lease, Secrets) send every request through `call_api`. A timeout also
    drops the idle pooled connections: after an outage they are likely as dead as the one that
    timed out, and each would cost another timeout.
    """

    def __init__(
        self,
        configuration: client.Configuration,
        *,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        # urllib3 may retry a failed connect, never a read: a read that timed out has used its budget.
        configuration.retries = urllib3.Retry(total=2, connect=2, read=0, status=0, redirect=0, other=0)
        super().__init__(configuration)
        self.request_timeout = (connect_timeout_s, read_timeout_s)

    def call_api(
        self,
        method: str,
        url: str,
        header_params: Any = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: Any = None,
    ) -> Any:
        try:
            return super().call_api(
                method, url, header_params, body, post_params, _request_timeout=_request_timeout or self.request_timeout
            )
        except (urllib3.exceptions.TimeoutError, urllib3.exceptions.MaxRetryError, urllib3.exceptions.ProtocolError):
            self.rest_client.pool_manager.clear()  # connections in use stay theirs; idle ones are closed
            raise


class StudyChanged(Exception):
    """A status write was refused: the Study is no longer the version its status was decided from."""


class FencedApiClient(BoundedApiClient):
    """An ApiClient that sends no write once the replica's `WriteFence` has closed (controller/leadership.py).

    Checked here, the last step before a request leaves, so that no write of any kind (status,
    Job, Event) can slip out of a replica that has lost the Lease, whatever path it took.
    """

    READS = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, configuration: client.Configuration, fence: WriteFence, **timeouts: float) -> None:
        super().__init__(configuration, **timeouts)
        self.fence = fence
        # Who wrote what, in the API server's audit log: one replica among several.
        self.user_agent = f"{COMPONENT}/{__version__} ({fence.holder})"

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if method.upper() not in self.READS:
            self.fence.check()
        return super().call_api(method, url, *args, **kwargs)


def load_api_client(read_timeout_s: float = READ_TIMEOUT_S, fence: WriteFence | None = None) -> BoundedApiClient:
    """In a pod, its ServiceAccount; elsewhere, the current KUBECONFIG context.

    Every request is bounded; writes go behind `fence` when given.
    """
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    # The Lease and the notifier's Secret reads share the pool; the default of 4 would queue them.
    configuration.connection_pool_maxsize = API_THREADS
    timeouts = {"connect_timeout_s": min(CONNECT_TIMEOUT_S, read_timeout_s), "read_timeout_s": read_timeout_s}
    if fence is None:
        return BoundedApiClient(configuration, **timeouts)
    return FencedApiClient(configuration, fence, **timeouts)


class KubeClient:
    """Every call the operator makes for its studies besides the watches; each write is safe to repeat.

    Made on the event loop (`ApiHttp`); `close` its connections before the loop ends.
    """

    def __init__(self, api: client.ApiClient, metrics: Metrics) -> None:
        self._http = ApiHttp(api, api.fence if isinstance(api, FencedApiClient) else None)
        self._metrics = metrics

    async def close(self) -> None:
        await self._http.close()

    async def api_version(self) -> None:
        """Asks the API server for its version: the cheapest request that proves it answers (liveness)."""
        await self._http.request("GET", "/version")

    async def create_job(self, namespace: str, body: dict[str, Any]) -> CreateAnswer | None:
        """Creates the Job; None once created, else the API server's refusal (`core.refusals` says what it means).

        A refusal worth repeating at once (429 Too Many Requests, a 5xx, a timeout) raises
        instead. For a 409 the answer carries the metadata of the Job that holds the name, which
        may be this attempt's own Job (created by an earlier pass) or someone else's. The
        created Job the API server sends back is not decoded.
        """
        try:
            await self._http.request(
                "POST",
                f"/apis/batch/v1/namespaces/{quote(namespace)}/jobs",
                body=body,
                query={"fieldManager": COMPONENT},
            )
        except ApiException as error:
            if error.status is None or not 400 <= error.status < 500 or error.status == 429:
                raise
            message = _api_message(error)
            if error.status == 409:
                return CreateAnswer(409, message, await self._job_metadata(namespace, body["metadata"]["name"]))
            return CreateAnswer(error.status, message)
        self._metrics.cells_started.inc()
        if int(body["metadata"]["labels"].get(LABEL_ATTEMPT, "1")) > 1:
            self._metrics.cells_retried.inc()
        return None

    async def _get(self, path: str, **query: str) -> Any:
        """One read of `path`, its answer decoded as plain JSON (pydantic-core's parser), not into models."""
        return from_json(await self._http.request("GET", path, query=query))

    async def _job_metadata(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The metadata of the Job `name`, or None when there is none (a list of one name: RBAC grants no get)."""
        page = await self._get(
            f"/apis/batch/v1/namespaces/{quote(namespace)}/jobs", fieldSelector=f"metadata.name={name}"
        )
        for item in _items(page):
            metadata = item.get("metadata") if isinstance(item, dict) else None
            return dict(metadata) if isinstance(metadata, dict) else {}
        return None

    async def finished_pods(self, namespace: str, study_uid: str, job_names: list[str]) -> list[dict[str, Any]]:
        """The ended pods (phase Succeeded or Failed) of the study's Jobs `job_names`, as the API server sent them.

        A list for every PODS_PER_LIST names, side by side, selected on the server: the Job
        controller labels each pod with its Job's name, and the pod template carries the study's
        uid label, so a pod of another study of the same name (an earlier one, deleted with its
        Jobs orphaned) is never listed. Each pod is read for what a sighting needs
        (`observe.pod_items`): the caller wants only its owner and its executor's termination message.
        """
        path = f"/api/v1/namespaces/{quote(namespace)}/pods"
        answers = await asyncio.gather(
            *(
                self._http.request(
                    "GET",
                    path,
                    query={
                        "labelSelector": f"{LABEL_STUDY_UID}={study_uid},{JOB_NAME_LABEL} in ({','.join(part)})",
                        "fieldSelector": "status.phase!=Pending,status.phase!=Running",
                    },
                )
                for part in _parts(job_names, PODS_PER_LIST)
            )
        )
        return [pod for answer in answers for pod in pod_items(answer)]

    async def delete_jobs(self, namespace: str, study_uid: str, jobs: Iterable[tuple[int, int]]) -> None:
        """Deletes the study's Jobs of these (cell index, attempt)s and, in the background, their pods.

        A few requests, not one per Job: a `deletecollection` selected by the study's uid, one
        attempt number and up to JOBS_PER_DELETE cell indices (side by side), which together name each Job
        exactly (a Job's name is made of its study, cell and attempt). A Job already gone is
        simply not selected.
        """
        cells_by_attempt: dict[int, list[int]] = defaultdict(list)
        for cell, attempt in jobs:
            cells_by_attempt[attempt].append(cell)
        selectors = [
            f"{LABEL_STUDY_UID}={study_uid},{LABEL_ATTEMPT}={attempt},{LABEL_CELL_INDEX} in ({','.join(part)})"
            for attempt, cells in sorted(cells_by_attempt.items())
            for part in _parts([str(cell) for cell in sorted(cells)], JOBS_PER_DELETE)
        ]
        path = f"/apis/batch/v1/namespaces/{quote(namespace)}/jobs"
        await asyncio.gather(
            *(
                self._http.request("DELETE", path, query={"labelSelector": selector, "propagationPolicy": "Background"})
                for selector in selectors
            )
        )

    async def replace_status(self, study: StudyRef, status: StudyStatus, resource_version: str) -> str | None:
        """Writes the whole status in one request, only onto the Study's version `resource_version`.

        Returns the Study's new resourceVersion, or None if the study is gone; raises
        StudyChanged if the Study has been written since that version (by anyone: a user's spec
        change, or another replica's status), so that the caller re-reads and decides again
        instead of overwriting a status it has not seen.

        A JSON patch `add /status` replaces the status wholesale, so a cell that left a map (a
        retry that is no longer waiting) really leaves it, which a merge patch cannot express.
        Its `replace` of `/metadata/resourceVersion` is the precondition: the API server answers
        409 unless the Study is still at that version. Its `test` of the uid makes the write this
        study's only: once the study is deleted and another is created under its name, the patch
        fails instead of writing the newcomer's status.
        """
        patch = [
            {"op": "test", "path": "/metadata/uid", "value": study.uid},
            {"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version},
            {"op": "add", "path": "/status", "value": status.as_stored()},
        ]
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{quote(study.namespace)}/{PLURAL}/{quote(study.name)}/status"
        try:
            answer = await self._http.request(
                "PATCH", path, body=patch, query={"fieldManager": COMPONENT}, content_type="application/json-patch+json"
            )
        except ApiException as error:
            if error.status == 404:
                return None
            if error.status == 409:
                changed = f"{study.namespace}/{study.name} changed since resourceVersion {resource_version}"
                raise StudyChanged(changed) from error
            # A failed `test` and an invalid status both answer 422; only the first means the study is gone.
            if error.status == 422 and await self.current_uid(study) != study.uid:
                return None
            raise
        written = from_json(answer)  # the Study as written: its new resourceVersion is the next precondition
        self._metrics.status_writes.inc()
        return str(written["metadata"]["resourceVersion"])

    async def read_study(self, study: StudyRef) -> dict[str, Any] | None:
        """The Study now named as `study` is, whatever its uid, or None when there is none.

        A list selecting the one name, not a get: the operator's RBAC lets it list and watch
        Studies, and read no more of them.
        """
        found = await self._get(
            f"/apis/{GROUP}/{VERSION}/namespaces/{quote(study.namespace)}/{PLURAL}",
            fieldSelector=f"metadata.name={study.name}",
        )
        for item in _items(found):
            return dict(item)
        return None

    async def current_uid(self, study: StudyRef) -> str | None:
        """The uid of the Study now named as `study` is, or None when there is none."""
        found = await self.read_study(study)
        uid = ((found or {}).get("metadata") or {}).get("uid")
        return str(uid) if uid else None

    async def post_event(self, study: StudyRef, name: str, type_: str, reason: str, message: str) -> bool:
        """Posts a core/v1 Event named `name` on the Study; False when it could not, for now.

        The name is chosen once per Event by the caller, so posting it again after a failure
        that may have reached the API server (a timeout) cannot post it twice: the API server
        answers AlreadyExists, which counts as posted. An Event refused for good (a 4xx) is
        dropped with a warning: losing an Event never stops the study.
        """
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": study.namespace},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": study.name,
                "namespace": study.namespace,
                "uid": study.uid,
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": COMPONENT,
        }
        try:
            await self._http.request("POST", f"/api/v1/namespaces/{quote(study.namespace)}/events", body=event)
        except ApiException as error:
            if error.status == 409:
                return True
            log.warning("could not post event %s on %s/%s: %s", reason, study.namespace, study.name, error.reason)
            return error.status is not None and 400 <= error.status < 500 and error.status != 429
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            log.warning("could not post event %s on %s/%s yet: %s", reason, study.namespace, study.name, error)
            return False
        return True


def event_name(study_name: str) -> str:
    """A fresh name for one Event on the study `study_name`, as `generateName` would make it."""
    return f"{study_name[:200]}.{uuid.uuid4().hex[:16]}"


def _api_message(error: ApiException) -> str:
    """The API server's own message in a refusal (its Status object), else the HTTP reason."""
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message) if message else f"{error.status} {error.reason}"


def _parts(items: list[str], size: int) -> Iterator[list[str]]:
    return (items[start : start + size] for start in range(0, len(items), size))


def _items(page: Any) -> list[Any]:
    """The items of a list's answer (decoded JSON); none when it holds none."""
    items = page.get("items") if isinstance(page, dict) else None
    return items if isinstance(items, list) else []
