"""A tenant's webhook reaches only what the admin allows, follows no redirect, is cut at its deadline, leaks no secret.

Each test runs its own operator (at DEBUG level, so that every log line is there to search) on a
namespace the session's operator ignores, with real HTTP servers on 127.0.0.1 as the webhooks.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes import client

from bench.operator_process import OperatorProcess, start_operator
from tests.support import (
    LOOPBACK_WEBHOOKS,
    Cluster,
    DrippingWebhook,
    Studies,
    WebhookReceiver,
    eventually,
    study,
)

REPO = Path(__file__).resolve().parents[2]
TOKEN_PREFIX = "s3cret-"


@contextmanager
def operator_for(cluster: Cluster, namespace: str, env: dict[str, str]) -> Iterator[OperatorProcess]:
    log = REPO / ".cluster" / "logs" / f"operator-{namespace}.log"
    operator = start_operator(cluster.kubeconfig, log, "--namespace", namespace, "--verbose", env=env)
    try:
        yield operator
    finally:
        operator.stop()


def webhook_secret(cluster: Cluster, namespace: str, url: str) -> str:
    """A Secret `hook` holding `url` and a fresh bearer token; returns the token."""
    token = TOKEN_PREFIX + uuid.uuid4().hex
    client.CoreV1Api(cluster.api).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="hook"),
            data={
                "url": base64.b64encode(url.encode()).decode(),
                "authorization": base64.b64encode(f"Bearer {token}".encode()).decode(),
            },
        ),
    )
    return token


def notifying(name: str, notifications: dict[str, Any]) -> dict[str, Any]:
    body = study(name, queries=2, locations=("us-nyc",), parallelism=2)
    body["spec"]["notifications"] = notifications
    return body


def test_a_loopback_webhook_is_refused_by_default_naming_the_secret_and_the_rule(
    study_crd: Cluster, unwatched_namespace: str
) -> None:
    cluster, namespace = study_crd, unwatched_namespace
    studies = Studies(cluster, namespace)
    receiver = WebhookReceiver()
    try:
        token = webhook_secret(cluster, namespace, receiver.url)
        with operator_for(cluster, namespace, {"BENTHAM_WEBHOOK_ALLOWED_CIDRS": ""}) as operator:
            studies.create(notifying("refused", {"secretRef": {"name": "hook"}}))
            status = studies.wait_for_state("refused", "complete", "failed", timeout_s=90)
            eventually(
                lambda: "refused, not sent" in operator.log.read_text(), timeout_s=20, what="the refusal's log line"
            )
    finally:
        receiver.close()

    log = operator.log.read_text()
    assert status["state"] == "complete", "a refused webhook does not touch the study"
    assert receiver.received == []
    assert (
        f"refused, not sent: Secret {namespace}/hook key url: 127.0.0.1 is a loopback address; webhooks may reach "
        "only public addresses unless the operator's BENTHAM_WEBHOOK_ALLOWED_CIDRS" in log
    )
    assert token not in log and TOKEN_PREFIX not in log


def test_with_loopback_allowed_a_redirect_is_not_followed_a_drip_is_cut_and_no_secret_is_logged(
    study_crd: Cluster, unwatched_namespace: str
) -> None:
    cluster, namespace = study_crd, unwatched_namespace
    studies = Studies(cluster, namespace)
    elsewhere = WebhookReceiver()
    redirecting = WebhookReceiver(redirect_to=elsewhere.url)
    plain = WebhookReceiver()
    dripping = DrippingWebhook(byte_every_s=1.0)  # the whole answer would take two minutes
    try:
        token = webhook_secret(cluster, namespace, redirecting.url)
        with operator_for(cluster, namespace, LOOPBACK_WEBHOOKS) as operator:
            studies.create(notifying("via-secret", {"secretRef": {"name": "hook"}}))
            studies.create(notifying("plain", {"webhookUrl": plain.url}))
            studies.create(notifying("dripped", {"webhookUrl": dripping.url}))
            for name in ("via-secret", "plain", "dripped"):
                assert studies.wait_for_state(name, "complete", "failed", timeout_s=90)["state"] == "complete"
            eventually(lambda: plain.events("study.completed"), timeout_s=20, what="the plain webhook's completion")
            retried = eventually(
                lambda: [body for body in redirecting.received if body["event"] == "study.created"][1:],
                timeout_s=20,
                what="the redirected notification to be tried again",
            )
            lifetimes = eventually(dripping.lifetimes, timeout_s=20, what="a dripping answer to be cut")
    finally:
        for receiver in (elsewhere, redirecting, plain):
            receiver.close()
        dripping.close()

    log = operator.log.read_text()
    assert retried, "a redirect is a failed try, retried on the usual schedule"
    assert {headers["Authorization"] for headers in redirecting.headers} == {f"Bearer {token}"}
    assert elsewhere.received == [], "the redirect was not followed: the POST and its Authorization stayed put"
    assert "HTTP 302: a redirect, not followed" in log
    assert all(lifetime < 5 + 2 for lifetime in lifetimes), f"cut at the 5 s deadline of a try: {lifetimes}"
    assert "within the 5s deadline of a try" in log
    assert token not in log and TOKEN_PREFIX not in log
