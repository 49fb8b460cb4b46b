"""Leader election on a coordination.k8s.io Lease: of several replicas, exactly one acts.

kopf's own peering freezes replicas of *equal* priority against each other and needs its own
CRD; a Lease is what every Kubernetes controller uses, needs no CRD, and shows the leader in
`kubectl get lease`. The protocol is the usual one: a replica takes the Lease when it is free or
its holder has not renewed it within `leaseDurationSeconds`, then renews it every
`renew_every_s`. A leader that cannot renew in time stops acting (the process exits, and its
Deployment restarts it as a standby), so two replicas never act at once. The API server's
optimistic concurrency (`resourceVersion`) decides every race for the Lease.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseSettings:
    name: str = "bentham-operator"
    namespace: str = "default"
    duration_s: int = 15
    renew_every_s: float = 5.0
    retry_every_s: float = 2.0
    request_timeout_s: float = 4.0
    """Each Lease request's timeout (connect and read): a renewal that hangs fails well before the Lease runs out."""


@dataclass(frozen=True)
class LeaseRecord:
    holder: str | None
    renewed_at: datetime | None
    duration_s: int

    def held_by_other(self, identity: str, now: datetime) -> bool:
        """Someone else holds it and renewed it recently enough to still count."""
        if not self.holder or self.holder == identity or self.renewed_at is None:
            return False
        return now < self.renewed_at + timedelta(seconds=self.duration_s)


def lease_record(lease: Any) -> LeaseRecord:
    spec = lease.spec
    return LeaseRecord(spec.holder_identity, spec.renew_time, spec.lease_duration_seconds or 0)


class LeaderElector:
    """Takes and keeps the Lease for `identity`."""

    def __init__(
        self,
        api: client.ApiClient,
        identity: str,
        settings: LeaseSettings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._leases = client.CoordinationV1Api(api)
        self.identity = identity
        self.settings = settings
        self._clock = clock
        timeout = settings.request_timeout_s
        self._bounded = {"_request_timeout": (timeout, timeout)}

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this replica holds the Lease afterwards."""
        now = self._clock()
        try:
            lease = self._leases.read_namespaced_lease(self.settings.name, self.settings.namespace, **self._bounded)
        except ApiException as error:
            if error.status != 404:
                raise
            return self._create(now)
        record = lease_record(lease)
        if record.held_by_other(self.identity, now):
            return False
        taking_over = record.holder != self.identity
        lease.spec.holder_identity = self.identity
        lease.spec.lease_duration_seconds = self.settings.duration_s
        lease.spec.renew_time = now
        if taking_over:
            lease.spec.acquire_time = now
            lease.spec.lease_transitions = (lease.spec.lease_transitions or 0) + 1
        try:
            self._leases.replace_namespaced_lease(self.settings.name, self.settings.namespace, lease, **self._bounded)
        except ApiException as error:
            if error.status == 409:  # another replica wrote first: it wins this round
                return False
            raise
        if taking_over:
            log.info(
                "leader election: %s now holds lease %s/%s", self.identity, self.settings.namespace, self.settings.name
            )
        return True

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
            self._leases.create_namespaced_lease(self.settings.namespace, lease, **self._bounded)
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def release(self) -> None:
        """Hands the Lease back on a clean shutdown, so a standby need not wait for it to expire."""
        try:
            lease = self._leases.read_namespaced_lease(self.settings.name, self.settings.namespace, **self._bounded)
            if lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.renew_time = None
                self._leases.replace_namespaced_lease(
                    self.settings.name, self.settings.namespace, lease, **self._bounded
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
        """Renews until `stop`; calls `on_lost` once the Lease can no longer be trusted to be ours."""
        last_renewed = time.monotonic()
        while not stop.wait(self.settings.renew_every_s):
            try:
                if self.try_acquire_or_renew():
                    last_renewed = time.monotonic()
                    continue
                log.error("leader election: another replica took the lease")
            except Exception as error:
                log.warning("leader election: renewal failed: %s", error)
                # Keep acting only while the last renewal still covers us, with a margin.
                if time.monotonic() - last_renewed < self.settings.duration_s - self.settings.renew_every_s:
                    continue
            on_lost()
            return
