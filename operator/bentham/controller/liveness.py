"""What `/healthz` says: whether the operator is making progress, not merely running.

kopf serves the liveness endpoint and answers 500 when a probe handler fails (`handlers.progress`).
The operator is stalled, and its Deployment should restart it, when:

- a study's worker has been inside one pass for longer than `stall_after_s`. Every API call is
  bounded (`kube.BoundedApiClient`), so a pass that long is stuck on something that no timeout
  covers; the worker will never finish it by itself.
- the API server has not answered for longer than `stall_after_s`. A heartbeat asks it for its
  version every `HEARTBEAT_S` (a bounded request served from memory), so an operator cut off
  from the API server turns unhealthy within `stall_after_s` + `HEARTBEAT_S`, whether or not a
  study is due a pass.

A study whose passes keep failing while others succeed (one study's own problem) does not make
the operator unhealthy: a restart would not fix it, and would stall every other study. Its
worker retries with backoff and logs each failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0
"""How often the API server is asked whether it answers."""


class Liveness:
    """The operator's verdict on itself, from the heartbeat and from its workers' passes."""

    def __init__(
        self,
        ask_api: Callable[[], Awaitable[object]],
        longest_pass: Callable[[float], tuple[str, float] | None],
        *,
        stall_after_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ask_api = ask_api
        self._longest_pass = longest_pass
        self._stall_after_s = stall_after_s
        self._clock = clock
        self._answered_at = clock()  # a fresh start counts as an answer: kopf has just listed everything
        self._task: asyncio.Task[None] | None = None

    def problem(self) -> str | None:
        """Why the operator is stalled; None while it makes progress."""
        now, limit = self._clock(), self._stall_after_s
        silent = now - self._answered_at
        if silent > limit:
            return f"the API server has not answered for {silent:.0f}s (limit {limit:.0f}s)"
        longest = self._longest_pass(now)
        if longest is not None and longest[1] > limit:
            study, seconds = longest
            return f"the worker of {study} has been inside one pass for {seconds:.0f}s (limit {limit:.0f}s)"
        return None

    async def beat_once(self) -> None:
        """Asks the API server once; an answer, even an error status, means it is reachable."""
        try:
            await self._ask_api()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if not getattr(error, "status", None):  # no HTTP answer at all: a timeout, a refused connection
                log.warning("liveness: the API server did not answer: %s", error)
                return
        self._answered_at = self._clock()

    def start(self) -> None:
        self._task = asyncio.create_task(self._beat(), name="liveness-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _beat(self) -> None:
        while True:
            await self.beat_once()
            await asyncio.sleep(HEARTBEAT_S)
