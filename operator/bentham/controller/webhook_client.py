"""One webhook POST: resolve the host once, check every address, connect to one checked, all within one deadline.

Plain asyncio streams, not urllib, because each of these must hold for a tenant's URL:

- **the address connected to is the one checked** (`bentham.core.webhook_policy`): the host is
  resolved once here and the socket connects to that exact address, so a DNS answer that changes
  between check and connect (DNS rebinding) cannot point the POST elsewhere. The Host header, TLS
  SNI and the certificate's check still use the URL's name;
- **no redirect is followed**: the answer's status is the result, so a 3xx is a failed try and the
  Authorization header never goes to another host;
- **one deadline covers the whole try** (DNS, connect, TLS, sending, the answer): a server that
  drips its answer a byte at a time is cut at the deadline, not after a timeout per read;
- **no proxy from the environment** (urllib honours HTTP_PROXY, which would void the address check).

Only the answer's status line is needed; the request says `Connection: close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bentham.core.webhook_policy import IPNetwork, WebhookRefused, WebhookUrl, checked_addresses, header_problem

SocketAddress = tuple[Any, ...]
Resolver = Callable[[str, int], Awaitable[Sequence[tuple[int, SocketAddress]]]]
"""(host, port) -> every (address family, socket address) the host resolves to."""

MAX_INTERIM_ANSWERS = 10
MAX_HEADER_LINES = 200


@dataclass(frozen=True)
class Answer:
    """The HTTP status of one try (None: no answer: a network error or the deadline), and what went wrong."""

    status: int | None
    problem: str = ""


class SystemResolver:
    """The system's resolver (getaddrinfo), in threads of its own so that slow DNS never holds an API thread."""

    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="bentham-dns")

    async def __call__(self, host: str, port: int) -> list[tuple[int, SocketAddress]]:
        found = await asyncio.get_running_loop().run_in_executor(
            self._pool, socket.getaddrinfo, host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, socket.IPPROTO_TCP
        )
        return [(family, address) for family, _, _, _, address in found]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


async def post(
    url: WebhookUrl,
    body: bytes,
    headers: Mapping[str, str],
    *,
    source: str,
    allowed: Sequence[IPNetwork],
    deadline_s: float,
    resolve: Resolver,
    tls: ssl.SSLContext | None = None,
) -> Answer:
    """POSTs `body` to `url` once; raises WebhookRefused when the policy forbids it (nothing is sent then)."""
    for name, value in headers.items():
        problem = header_problem(name, value)
        if problem is not None:
            raise WebhookRefused(f"{source}: {problem}")
    request = _request_bytes(url, body, headers)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    writer: asyncio.StreamWriter | None = None
    answered = False
    try:
        async with asyncio.timeout_at(deadline):
            resolved = await resolve(url.host, url.port)
            checked_addresses(url, [str(address[0]) for _, address in resolved], allowed, source)
            reader, writer = await _connect(url, resolved, tls)
            writer.write(request)
            await writer.drain()
            status = await _final_status(reader)
        with contextlib.suppress(TimeoutError, OSError, ValueError, asyncio.IncompleteReadError):
            async with asyncio.timeout_at(deadline):  # read the headers out, so closing does not reset the answer
                await _skip_headers(reader)
        answered = True
        return Answer(status)
    except WebhookRefused:
        raise  # a ValueError, but the policy's: not a network failure
    except TimeoutError:
        return Answer(None, f"no answer from {url.origin} within the {deadline_s:g}s deadline of a try")
    except socket.gaierror as error:
        return Answer(None, f"cannot resolve {url.host}: {error.strerror}")
    except (OSError, ValueError, asyncio.IncompleteReadError) as error:
        return Answer(None, f"{url.origin}: {type(error).__name__}: {error}")
    finally:
        if writer is not None:  # a try cut short drops the connection: nothing it still holds may linger
            if answered:
                writer.close()
            else:
                writer.transport.abort()


@functools.cache
def _system_tls() -> ssl.SSLContext:
    """The system's CAs with hostname checks, loaded once."""
    return ssl.create_default_context()


def _request_bytes(url: WebhookUrl, body: bytes, headers: Mapping[str, str]) -> bytes:
    lines = [f"POST {url.target} HTTP/1.1", f"Host: {url.host_header}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("ascii") + body


async def _connect(
    url: WebhookUrl, resolved: Sequence[tuple[int, SocketAddress]], tls: ssl.SSLContext | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the first checked address that accepts one, TLS checked against the URL's name."""
    loop = asyncio.get_running_loop()
    failure: OSError | None = None
    for family, address in resolved:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
            if url.scheme == "https":
                context = tls or _system_tls()
                return await asyncio.open_connection(sock=sock, ssl=context, server_hostname=url.host)
            return await asyncio.open_connection(sock=sock)
        except OSError as error:
            sock.close()
            if isinstance(error, ssl.SSLError):
                raise  # the name's certificate is wrong: another address of it will not fix that
            failure = error
        except BaseException:
            sock.close()
            raise
    raise failure or OSError(f"no address to connect to for {url.host}")


async def _final_status(reader: asyncio.StreamReader) -> int:
    """The status of the final answer, after any interim (1xx) ones."""
    for _ in range(MAX_INTERIM_ANSWERS):
        line = await reader.readline()
        if not line:
            raise ConnectionError("the server closed the connection without an answer")
        version, _, rest = line.partition(b" ")
        code = rest[:3]
        if not version.startswith(b"HTTP/") or not code.isdigit() or len(code) != 3:
            raise ValueError("the answer is not HTTP")
        status = int(code)
        if status >= 200:
            return status
        await _skip_headers(reader)
    raise ValueError(f"more than {MAX_INTERIM_ANSWERS} interim answers")


async def _skip_headers(reader: asyncio.StreamReader) -> None:
    for _ in range(MAX_HEADER_LINES):
        if (await reader.readline()).strip() == b"":
            return
