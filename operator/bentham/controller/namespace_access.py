"""Which of the namespaces the operator is told to watch it may watch, asked once at start.

kopf ends the whole operator when a watch in one namespace stays refused (after about a minute of
retries), and the Job watch would retry for good, while no study anywhere is served: the handlers
wait for every namespace's first Job list (`job_watch`). With the
chart's namespaced RBAC, a namespace without the operator's Role (not given to the chart, or
deleted and created again) would take every tenant down with it; it is left out instead, loudly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from kubernetes import client

from bentham.api.names import GROUP, PLURAL

log = logging.getLogger(__name__)

WATCHED = ((GROUP, PLURAL), ("batch", "jobs"))
"""What the operator lists and watches in each namespace: Studies (kopf), and Jobs (`job_watch`)."""

REVIEW_TIMEOUT_S = 10


def is_pattern(namespace: str) -> bool:
    """A glob, negation or list (kopf's syntax), which names no namespace to ask about."""
    return any(mark in namespace for mark in "*?[]!,")


def refused_watches(api: client.ApiClient, namespace: str) -> list[str]:
    """What the operator must do in `namespace` and this identity may not, e.g. `list jobs`; empty when it may."""
    reviews = client.AuthorizationV1Api(api)
    refused = []
    for group, resource in WATCHED:
        for verb in ("list", "watch"):
            review = reviews.create_self_subject_access_review(
                client.V1SelfSubjectAccessReview(
                    spec=client.V1SelfSubjectAccessReviewSpec(
                        resource_attributes=client.V1ResourceAttributes(
                            namespace=namespace, group=group, resource=resource, verb=verb
                        )
                    )
                ),
                _request_timeout=REVIEW_TIMEOUT_S,
            )
            if not review.status.allowed:
                refused.append(f"{verb} {resource}.{group}")
    return refused


def watchable_namespaces(api: client.ApiClient, namespaces: Sequence[str]) -> list[str]:
    """`namespaces` without the exact names this identity may not watch (each logged as an error); patterns stay."""
    kept = []
    for namespace in namespaces:
        refused = [] if is_pattern(namespace) else refused_watches(api, namespace)
        if refused:
            log.error(
                "not serving namespace %s: this identity may not %s there (grant the operator's Role in it, "
                "e.g. list it in the chart's watchNamespaces, then restart the operator)",
                namespace,
                ", ".join(refused),
            )
        else:
            kept.append(namespace)
    return kept
