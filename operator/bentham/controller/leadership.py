"""Leader election on a coordination.k8s.io Lease, and the write fence: of several replicas, exactly one acts.

kopf's own peering freezes replicas of *equal* priority against each other and needs its own
CRD; a Lease is what every Kubernetes controller uses, needs no CRD, and shows the leader in
`kubectl get lease`. The protocol is client-go's leader elector's: a replica takes the Lease when
it is free or when its record has not changed for `leaseDurationSeconds` *as this replica
measured it* (its own monotonic clock, from the moment it saw the record change, never the other
replica's `renewTime` against its own wall clock, which a clock skew or a frozen VM would fool),
then renews it every `renew_every_s`. The API server's optimistic concurrency (`resourceVersion`)
decides every race for the Lease.

The `WriteFence` is what every write of the operator checks (`kube.FencedApiClient`): it is
open only until `renew_deadline_s` after the start of the last renewal that succeeded, and once
it closes it stays closed. A leader paused past its Lease (GC, SIGSTOP, a frozen VM) finds the
fence closed the moment it wakes, before its renewer has even looked at the Lease, so it writes
nothing while a new leader acts; the process then exits and its Deployment restarts it as a
standby. The deadline is shorter than the Lease (10 s against 15 s) so that the old leader's
fence closes before any standby can measure the Lease as expired.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException

log = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Seconds on a clock that never goes back and keeps counting while the process is stopped."""


def elapsed_clock() -> float:
    """CLOCK_BOOTTIME where there is one (it also counts a suspended machine), else the monotonic clock."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(boottime) if boottime is not None else time.monotonic()


@dataclass(frozen=True)
class LeaseSettings:
    name: str = "bentham-operator"
    namespace: str = "default"
    duration_s: int = 15
    renew_every_s: float = 5.0
    renew_deadline_s: float = 10.0
    """The leader writes only within this long of the start of its last successful renewal (< duration_s)."""
    retry_every_s: float = 2.0
    request_timeout_s: float = 4.0
    """Each Lease request's timeout (connect and read): a renewal that hangs fails well before the Lease runs out."""

    def __post_init__(self) -> None:
        if not 0 < self.renew_every_s < self.renew_deadline_s < self.duration_s:
            raise ValueError(
                "leader election: need 0 < renew_every_s < renew_deadline_s < duration_s, got "
                f"{self.renew_every_s}, {self.renew_deadline_s}, {self.duration_s}"
            )


class LeadershipLost(Exception):
    """A write was refused before it left this replica: it no longer holds (or cannot vouch for) the Lease."""


class WriteFence:
    """Whether this replica may write now: open while its leadership is certain, closed for good once it is not.

    Without leader election the fence never closes (`WriteFence.always_open`).
    """

    def __init__(self, holder: str, clock: Clock = elapsed_clock) -> None:
        self.holder = holder
        self._clock = clock
        self._open_until = float("-inf")
        self._lost = False
        self._lock = threading.Lock()

    @classmethod
    def always_open(cls, holder: str) -> WriteFence:
        fence = cls(holder)
        fence._open_until = float("inf")
        return fence

    def is_open(self) -> bool:
        with self._lock:
            return self._open_now()

    def _open_now(self) -> bool:
        if self._lost:
            return False
        if self._clock() < self._open_until:
            return True
        if self._open_until != float("-inf"):
            self._lost = True  # it lapsed unrenewed: a late renewal must not reopen it
        return False

    def check(self) -> None:
        """Raises LeadershipLost unless the fence is open."""
        if not self.is_open():
            raise LeadershipLost(f"{self.holder} does not hold the leader Lease: write refused")

    def open_until(self, deadline: float) -> None:
        """Leadership is certain until `deadline` (on the fence's clock); no effect once the fence has closed."""
        with self._lock:
            if self._open_now() or self._open_until == float("-inf"):
                self._open_until = max(self._open_until, deadline)

    def close(self) -> None:
        with self._lock:
            self._lost = True


@dataclass(frozen=True)
class LeaseRecord:
    """What a Lease says about its holder; any change of it is a sign of life (or of a new holder)."""

    holder: str | None
    renewed_at: datetime | None
    acquired_at: datetime | None
    transitions: int
    duration_s: int


def lease_record(lease: Any) -> LeaseRecord:
    spec = lease.spec
    return LeaseRecord(
        spec.holder_identity,
        spec.renew_time,
        spec.acquire_time,
        spec.lease_transitions or 0,
        spec.lease_duration_seconds or 0,
    )


class LeaseObserver:
    """When this replica last saw the Lease's record change, on its own clock (client-go's `observedTime`)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._record: LeaseRecord | None = None
        self._changed_at = float("-inf")

    def observe(self, record: LeaseRecord) -> None:
        if record != self._record:
            self._record, self._changed_at = record, self._clock()

    def held_by_other(self, identity: str) -> bool:
        """Someone else holds the Lease and this replica saw its record change within its duration."""
        record = self._record
        if record is None or not record.holder or record.holder == identity:
            return False
        return self._clock() < self._changed_at + record.duration_s


class LeaderElector:
    """Takes and keeps the Lease for `identity`, and keeps `fence` open while it may act."""

    def __init__(
        self,
        api: client.ApiClient,
        identity: str,
        settings: LeaseSettings,
        clock: Clock = elapsed_clock,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._leases = client.CoordinationV1Api(api)
        self.identity = identity
        self.settings = settings
        self._clock = clock
        self._wall_clock = wall_clock  # only for the record others read: nobody's expiry depends on it
        self._observer = LeaseObserver(clock)
        self.fence = WriteFence(identity, clock)
        # A hung Lease call must not outlive the renew deadline it is racing.
        self._timeout = min(settings.request_timeout_s, settings.renew_deadline_s - settings.renew_every_s)

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this replica holds the Lease afterwards (and its fence is open a while longer)."""
        started = self._clock()  # the fence counts from before the request: the Lease is renewed no earlier
        now = self._wall_clock()
        try:
            lease = self._leases.read_namespaced_lease(
                self.settings.name, self.settings.namespace, _request_timeout=self._timeout
            )
        except ApiException as error:
            if error.status != 404:
                raise
            return self._won(started) if self._create(now) else False
        self._observer.observe(lease_record(lease))
        if self._observer.held_by_other(self.identity):
            return False
        taking_over = lease.spec.holder_identity != self.identity
        lease.spec.holder_identity = self.identity
        lease.spec.lease_duration_seconds = self.settings.duration_s
        lease.spec.renew_time = now
        if taking_over:
            lease.spec.acquire_time = now
            lease.spec.lease_transitions = (lease.spec.lease_transitions or 0) + 1
        try:
            written = self._leases.replace_namespaced_lease(
                self.settings.name, self.settings.namespace, lease, _request_timeout=self._timeout
            )
        except ApiException as error:
            if error.status == 409:  # another replica wrote first: it wins this round
                return False
            raise
        self._observer.observe(lease_record(written))
        if taking_over:
            log.info(
                "leader election: %s now holds lease %s/%s", self.identity, self.settings.namespace, self.settings.name
            )
        return self._won(started)

    def _won(self, started: float) -> bool:
        self.fence.open_until(started + self.settings.renew_deadline_s)
        return self.fence.is_open()

    def _create(self, now: datetime) -> bool:
        lease = client.V1Lease(
            metadata=client.V1ObjectMeta(name=self.settings.name, namespace=self.settings.namespace),
            spec=client.V1LeaseSpec(
                holder_identity=self.identity,
                lease_duration_seconds=self.settings.duration_s,
                acquire_time=now,
                renew_time=now,
                lease_transitions=0,
            ),
        )
        try:
            self._leases.create_namespaced_lease(self.settings.namespace, lease, _request_timeout=self._timeout)
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def release(self) -> None:
        """Hands the Lease back on a clean shutdown, so a standby need not wait for it to expire."""
        self.fence.close()  # nothing more goes out once the Lease may be someone else's
        try:
            lease = self._leases.read_namespaced_lease(
                self.settings.name, self.settings.namespace, _request_timeout=self._timeout
            )
            if lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.renew_time = None
                self._leases.replace_namespaced_lease(
                    self.settings.name, self.settings.namespace, lease, _request_timeout=self._timeout
                )
        except (ApiException, urllib3.exceptions.HTTPError) as error:  # a timeout too: we are leaving anyway
            log.warning("leader election: could not release the lease: %s", error)

    def wait_for_leadership(self, stop: threading.Event) -> bool:
        """Blocks until this replica leads (True) or `stop` is set (False)."""
        while not stop.is_set():
            try:
                if self.try_acquire_or_renew():
                    return True
            except Exception as error:  # the API may be down: keep trying
                log.warning("leader election: %s", error)
            stop.wait(self.settings.retry_every_s)
        return False

    def keep_renewing(self, stop: threading.Event, on_lost: Callable[[], None]) -> None:
        """Renews until `stop`; closes the fence and calls `on_lost` once the Lease can no longer be trusted to be ours.

        A failed renewal is retried every `retry_every_s` while the fence is still open; the fence
        itself closes by the clock at the renew deadline, whatever this thread is doing.
        """
        wait = self.settings.renew_every_s
        while not stop.wait(wait):
            try:
                if self.try_acquire_or_renew():
                    wait = self.settings.renew_every_s
                    continue
                why = "another replica holds the lease" if self.fence.is_open() else "renewed too late"
            except Exception as error:
                if self.fence.is_open():
                    log.warning("leader election: renewal failed, retrying: %s", error)
                    wait = self.settings.retry_every_s
                    continue
                why = f"not renewed within the renew deadline ({error})"
            self.fence.close()
            log.error("leader election: %s lost the lease: %s", self.identity, why)
            on_lost()
            return
