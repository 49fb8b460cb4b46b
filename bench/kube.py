"""A lean client for the benchmarks: plain HTTP to the API server, JSON in and out.

The kubernetes package's typed client converts every object through its models, which costs
more CPU per Job than everything else the baseline does; a floor must not pay for that, and the
harness must not steal the machine's two cores from what it measures.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from kubernetes import client, config

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]
EventHandler = Callable[[str, JsonObject], None]

# kube-apiserver's own count of the requests it served, by verb, resource, code, …
_REQUEST_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class ApiError(Exception):
    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500].decode(errors='replace')}")
        self.status = status


class Api:
    """The API server of one kubeconfig, spoken to as the user agent `user_agent`."""

    def __init__(self, kubeconfig: Path, user_agent: str, pool_size: int = 32) -> None:
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        self.kubeconfig = kubeconfig
        self.host = str(configuration.host).rstrip("/")
        self._pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=pool_size,
            cert_reqs="CERT_REQUIRED" if configuration.verify_ssl else "CERT_NONE",
            ca_certs=configuration.ssl_ca_cert,
            cert_file=configuration.cert_file,
            key_file=configuration.key_file,
        )
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}
        token = configuration.api_key.get("BearerToken") or configuration.api_key.get("authorization")
        if token:
            self._headers["Authorization"] = str(token)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: object = None,
        content_type: str = "application/json",
        accept: tuple[int, ...] = (200, 201),
    ) -> tuple[int, bytes]:
        """One request; raises ApiError unless the status is one of `accept`."""
        url = self.host + path + (f"?{urlencode(query)}" if query else "")
        headers = dict(self._headers)
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        response = self._pool.request(method, url, body=data, headers=headers, timeout=urllib3.Timeout(10, 120))
        if response.status not in accept:
            raise ApiError(method, path, response.status, response.data)
        return response.status, response.data

    def get(self, path: str, query: Mapping[str, str] | None = None) -> JsonObject:
        parsed: JsonObject = json.loads(self.request("GET", path, query=query)[1])
        return parsed

    def exists(self, path: str) -> bool:
        return self.request("GET", path, accept=(200, 404))[0] == 200

    def stream(self, path: str, query: Mapping[str, str]) -> urllib3.BaseHTTPResponse:
        """A streaming GET (a watch); the caller reads it line by line and releases it."""
        url = f"{self.host}{path}?{urlencode(query)}"
        response = self._pool.request(
            "GET", url, headers=self._headers, preload_content=False, timeout=urllib3.Timeout(10, None)
        )
        if response.status != 200:
            body = response.read()
            response.release_conn()
            raise ApiError("GET", path, response.status, body)
        return response

    def apiserver_requests(self) -> Counter[tuple[str, str]]:
        """Requests the API server has served since it started, by (verb, resource[/subresource])."""
        text = self.request("GET", "/metrics")[1].decode()
        tally: Counter[tuple[str, str]] = Counter()
        for line in text.splitlines():
            match = _REQUEST_SAMPLE.match(line)
            if not match:
                continue
            labels = dict(_LABEL.findall(match["labels"]))
            resource = labels.get("resource", "") + (f"/{labels['subresource']}" if labels.get("subresource") else "")
            tally[(labels.get("verb", ""), resource)] += int(float(match["value"]))
        return tally


def namespaced(namespace: str, resource: str, group_version: str = "v1") -> str:
    """The path of a namespaced collection: `jobs` in `batch/v1`, `pods` in the core group (`v1`)."""
    prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    return f"{prefix}/namespaces/{quote(namespace)}/{resource}"


def lines(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """The newline-separated documents of a watch stream, as they arrive."""
    buffer = b""
    for chunk in response.stream(None, decode_content=True):
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        yield from (line for line in complete if line)


class Watch:
    """Follows one collection in a background thread, handing each event to `on_event(type, object)`.

    It starts from a list's resourceVersion, so it sees every change made after `start()`
    returns, and resumes from the last version it saw when a stream ends early.
    """

    def __init__(self, api: Api, path: str, on_event: EventHandler, *, label_selector: str = "") -> None:
        self._api = api
        self._path = path
        self._on_event = on_event
        self._selector = {"labelSelector": label_selector} if label_selector else {}
        self._stopping = threading.Event()
        self._response: urllib3.BaseHTTPResponse | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch:{path}", daemon=True)
        self._version = ""
        self.error: BaseException | None = None

    def start(self) -> Watch:
        self._version = self._current_version()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(OSError):  # its connection may be closed already (EBADF): stopped either way
                response.shutdown()
        if self._thread.ident is not None:
            self._thread.join(timeout=10)

    def _current_version(self) -> str:
        listed = self._api.get(self._path, {**self._selector, "limit": "1"})
        return str(listed["metadata"]["resourceVersion"])

    def _run(self) -> None:
        while not self._stopping.is_set():
            query = {
                **self._selector,
                "watch": "true",
                "resourceVersion": self._version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": "1800",
            }
            try:
                self._response = self._api.stream(self._path, query)
                for line in lines(self._response):
                    event = json.loads(line)
                    kind, body = event["type"], event["object"]
                    if kind == "ERROR":
                        if body.get("code") == 410:  # too old: start again from now (rare in one scenario)
                            log.warning("watch of %s expired; resuming from the current version", self._path)
                            self._version = self._current_version()
                            break
                        raise ApiError("WATCH", self._path, int(body.get("code") or 0), line)
                    self._version = str(body["metadata"]["resourceVersion"])
                    if kind != "BOOKMARK":
                        self._on_event(kind, body)
            except Exception as error:
                if self._stopping.is_set():
                    return
                if isinstance(error, ApiError) and error.status != 0:
                    self.error = error
                    log.error("watch of %s failed: %s", self._path, error)
                    return
                time.sleep(0.5)  # a dropped connection: resume from the last version seen
            finally:
                if self._response is not None:
                    self._response.release_conn()
                    self._response = None


def create_namespace(api: Api, name: str, labels: Mapping[str, str], timeout_s: float = 30) -> None:
    """Creates the namespace and waits for its default ServiceAccount, without which no pod is admitted."""
    api.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name, "labels": dict(labels)}})
    wait_until(
        lambda: api.exists(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
        timeout_s,
        f"the default ServiceAccount of {name}",
    )


def delete_namespace(api: Api, name: str, wait_s: float = 0) -> None:
    """Deletes the namespace (in the background), waiting up to `wait_s` for it to be gone."""
    api.request(
        "DELETE", f"/api/v1/namespaces/{name}", body={"propagationPolicy": "Background"}, accept=(200, 202, 404)
    )
    if wait_s:
        wait_until(lambda: not api.exists(f"/api/v1/namespaces/{name}"), wait_s, f"namespace {name} to go")


@contextmanager
def scratch_namespace(api: Api, name: str, labels: Mapping[str, str], delete_wait_s: float = 0) -> Iterator[str]:
    """A namespace ready for pods while the block runs, deleted after it (waiting up to `delete_wait_s`)."""
    create_namespace(api, name, labels)
    try:
        yield name
    finally:
        delete_namespace(api, name, wait_s=delete_wait_s)


def is_empty(api: Api, namespace: str) -> bool:
    """No Job and no pod left in the namespace."""
    return all(
        not api.get(namespaced(namespace, resource, group_version), {"limit": "1"})["items"]
        for resource, group_version in (("jobs", "batch/v1"), ("pods", "v1"))
    )


def wait_until(probe: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.25) -> float:
    """Polls `probe` until it holds; returns the seconds waited, or raises TimeoutError."""
    started = time.monotonic()
    while not probe():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(every_s)
    return time.monotonic() - started
