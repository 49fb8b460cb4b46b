"""The studies' requests to the API server, made on the event loop with aiohttp.

Every request a study's worker makes (Jobs created and deleted, ended pods listed, the status
written, Events posted) goes out here, not through the kubernetes client. That client is
synchronous: each request took a trip to a thread and back (~0.1 ms of CPU) and then ~0.4 ms in
http.client, urllib3 and the email package's header parser; aiohttp, which kopf already runs its
watches on, makes the same request for ~0.23 ms on the loop itself (bench/README.md).

The requests are the kubernetes client's in all that matters, because they are made from its
`ApiClient`: the same server, TLS settings and credentials (its `update_params_for_auth`, which
refreshes an expiring token as the client would), the same User-Agent, the same bounds (the
`BoundedApiClient`'s connect and read timeouts) and the same `WriteFence` (no write leaves a
`FencedApiClient`'s replica once its fence has closed). An answer that is not a success raises
the client's own `ApiException`, so callers read refusals as before.

One pool of connections (`API_CONNECTIONS`) serves all studies. A request that times out, or
whose connection breaks, retires the pool: later requests open new connections, since the idle
ones are likely as dead as that one, while the requests under way finish on theirs (it is closed
once they must have: a read timeout later). Answers are not compressed: the API server is near,
and gzip would cost CPU at both ends. The pool belongs to the event loop it was opened on; `close`
it before the loop ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
from kubernetes import client
from kubernetes.client.rest import ApiException
from pydantic_core import to_json
from yarl import URL

from bentham.controller.leadership import WriteFence

API_CONNECTIONS = 32
"""Connections to the API server at most: the first Jobs of 20 studies created at once go out together."""

READS = frozenset({"GET", "HEAD", "OPTIONS"})


class ApiHttp:
    """Requests to the API server on the running event loop, as the kubernetes `ApiClient` `api` would make them."""

    def __init__(self, api: client.ApiClient, fence: WriteFence | None = None) -> None:
        self._api = api
        self._fence = fence
        configuration = api.configuration
        self._host = str(configuration.host).rstrip("/")
        connect_s, read_s = getattr(api, "request_timeout", None) or (None, None)
        self._timeout = aiohttp.ClientTimeout(sock_connect=connect_s, sock_read=read_s)
        self._tls = _tls_context(configuration) if self._host.startswith("https:") else None
        self._server_name = configuration.tls_server_name or None
        self._retire_after_s = (connect_s or 0.0) + (read_s or 0.0) + 1.0
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._retired: set[asyncio.Task[None]] = set()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> bytes:
        """One request; the answer's body if the API server took it, else ApiException (aiohttp's own errors)."""
        if method not in READS and self._fence is not None:
            self._fence.check()  # the last step before the request leaves this replica
        headers = self._headers(method, path, body, content_type)
        payload = None if body is None else to_json(body)  # pydantic-core's writer: a Job's body 4x faster than json
        session = self._open()
        try:
            async with session.request(
                method, self._url(path, query), data=payload, headers=headers, server_hostname=self._server_name
            ) as response:
                data = await response.read()
                status, reason = response.status, response.reason
        except (TimeoutError, aiohttp.ClientError):
            self._drop(session)
            raise
        if not 200 <= status <= 299:
            raise ApiException(status=status, reason=reason, body=data.decode("utf-8", "replace"))
        return data

    @contextlib.asynccontextmanager
    async def lines(self, path: str, *, query: dict[str, str], silence_s: float) -> AsyncIterator[Lines]:
        """A GET whose answer is read line by line as it comes (a watch); the network's errors after `silence_s`."""
        session = self._open()
        timeout = aiohttp.ClientTimeout(sock_connect=self._timeout.sock_connect, sock_read=silence_s)
        try:
            async with session.get(
                self._url(path, query),
                headers=self._headers("GET", path, None, "application/json"),
                timeout=timeout,
                server_hostname=self._server_name,
            ) as response:
                if not 200 <= response.status <= 299:
                    data = await response.read()
                    raise ApiException(
                        status=response.status, reason=response.reason, body=data.decode("utf-8", "replace")
                    )
                yield Lines(response)
        except (TimeoutError, aiohttp.ClientError):
            self._drop(session)
            raise

    async def close(self) -> None:
        """Closes the pool, and any retired one, at once."""
        retired = list(self._retired)
        for task in retired:
            task.cancel()
        await asyncio.gather(*retired, return_exceptions=True)
        session, self._session = self._session, None
        if session is not None and self._loop is asyncio.get_running_loop():
            await session.close()

    def _headers(self, method: str, path: str, body: Any, content_type: str) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": content_type, **self._api.default_headers}
        self._api.update_params_for_auth(headers, None, ["BearerToken"], path, method, body)
        return headers

    def _url(self, path: str, query: dict[str, str] | None) -> URL:
        return URL(self._host + path + (f"?{urlencode(query)}" if query else ""), encoded=True)

    def _open(self) -> aiohttp.ClientSession:
        """The pool of the running loop: opened on first use, and again on a new loop (a test's `asyncio.run`)."""
        loop = asyncio.get_running_loop()
        if self._session is not None and not self._session.closed and self._loop is loop:
            return self._session
        if self._session is not None and self._loop is not loop:
            self._session.detach()  # its loop has ended, and its connections with it
        connector = aiohttp.TCPConnector(limit=API_CONNECTIONS, ssl=self._tls if self._tls is not None else True)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, skip_auto_headers=("User-Agent", "Accept-Encoding")
        )
        self._loop = loop
        return self._session

    def _drop(self, session: aiohttp.ClientSession) -> None:
        """Retires the pool after a timeout or a broken connection: new requests get new connections."""
        if self._session is not session:
            return  # retired already
        self._session = None
        task = asyncio.get_running_loop().create_task(self._close_later(session))
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    async def _close_later(self, session: aiohttp.ClientSession) -> None:
        try:
            await asyncio.sleep(self._retire_after_s)
        finally:
            await session.close()


class Lines:
    """An answer's lines, each without its newline, as they arrive; `close` ends the reading from anywhere."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    def close(self) -> None:
        self._response.close()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        part: list[bytes] = []  # the start of a line that has not ended yet
        async for chunk in self._response.content.iter_any():
            *ended, rest = chunk.split(b"\n")
            if ended:
                yield b"".join([*part, ended[0]])
                part = []
                for line in ended[1:]:
                    yield line
            if rest:
                part.append(rest)
        if part:
            yield b"".join(part)


def _tls_context(configuration: client.Configuration) -> ssl.SSLContext | bool:
    """TLS as the client's configuration says: its CA, its client certificate, or no verification at all."""
    if not configuration.verify_ssl:
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    if configuration.assert_hostname is False:
        context.check_hostname = False
    return context
