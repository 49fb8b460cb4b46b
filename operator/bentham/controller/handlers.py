"""kopf's side of the operator: watches, indexes, and the hand-off to each study's worker.

No handler here decides anything about a study. Handlers only keep the indexes current and
wake the worker of the study concerned (see `workers`). Only `on.event` handlers and indexes
are used, never on.create/on.update/daemons/timers on Studies for reconciling, so kopf puts no
finalizer on a Study and deleting one never waits for the operator.

Studies and Jobs are watched; pods are not. A pod changes about seven times in its short life
and the operator needs one thing from it, the executor's termination message once it has
ended, so a worker lists its study's ended pods when it finds finished Jobs (see `workers`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from kubernetes.client import CoreV1Api

from bentham.api.names import GROUP, PLURAL, VERSION
from bentham.controller.config import OperatorConfig
from bentham.controller.kube import CONNECT_TIMEOUT_S, KubeClient, api_executor, load_api_client
from bentham.controller.liveness import Liveness
from bentham.controller.metrics import Metrics
from bentham.controller.observe import job_sighting
from bentham.controller.storage import keep_nothing
from bentham.controller.webhook_sender import WebhookSender
from bentham.controller.workers import StudyKey, Workers
from bentham.core.decision import ObservedJob
from bentham.core.jobs import LABEL_STUDY_UID

log = logging.getLogger(__name__)


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = OperatorConfig.from_environment()
    settings.posting.level = logging.WARNING  # our own Events tell the story; kopf's would repeat it
    settings.watching.server_timeout = config.watch_timeout_s
    settings.watching.client_timeout = config.watch_timeout_s + 30
    # kopf's own requests (the lists before its watches) are bounded too; a silent watch is
    # dropped after kopf's inactivity timeout (70 s: the API server sends a bookmark every minute).
    settings.networking.connect_timeout = CONNECT_TIMEOUT_S
    settings.networking.request_timeout = 4 * config.api_timeout_s
    keep_nothing(settings)  # no change handlers here: kopf need not copy every event to diff it
    asyncio.get_running_loop().set_default_executor(api_executor())
    metrics = Metrics()
    fence = memo.get("fence")  # set by bentham-operator: closes for good once this replica stops leading
    api = load_api_client(config.api_timeout_s, fence)
    webhooks = WebhookSender(
        CoreV1Api(api),
        allowed_networks=config.webhook_allowed_networks(),
        on_give_up=metrics.notification_failures.inc,
        may_send=fence.is_open if fence is not None else lambda: True,
    )
    webhooks.start()
    memo.config = config
    memo.webhooks = webhooks
    kube = KubeClient(api, metrics)
    memo.workers = Workers(
        kube,
        webhooks,
        metrics,
        batch_window_s=config.batch_window_s,
        status_interval_s=config.status_interval_s,
        pricing=memo.get("pricing"),  # read by bentham-operator before kopf starts; None: the built-in table
        executor_policy=memo.get("executor_policy"),  # likewise; None: nothing beyond the defaults
    )
    metrics.watch_studies(memo.workers.gauges)
    memo.liveness = Liveness(kube.api_version, memo.workers.longest_pass, stall_after_s=config.stall_after_s)
    memo.liveness.start()
    if config.metrics_port:
        metrics.serve(config.metrics_port)
    log.info("bentham operator started: %s", config)


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    await memo.liveness.stop()
    await memo.workers.stop_all()
    await memo.webhooks.stop()


@kopf.on.probe(id="progress")
async def progress(memo: kopf.Memo, **_: Any) -> str:
    """The liveness verdict (controller/liveness.py): a stalled operator fails `/healthz` with the reason."""
    problem = memo.liveness.problem()
    if problem is not None:
        log.error("liveness: %s", problem)
        raise kopf.PermanentError(problem)  # permanent: kopf would otherwise retry the probe before answering
    return "making progress"


@kopf.index("batch", "v1", "jobs", labels={LABEL_STUDY_UID: kopf.PRESENT})
async def study_jobs(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> dict[StudyKey, ObservedJob] | None:
    """Each study's Jobs, as small sightings, by the study's uid; a sighting that changed wakes the study's worker.

    Keyed by the uid label, not the name: the Jobs of a deleted study (orphaned, or not yet
    collected) never count for a new study of the same name. A Job without the uid label is
    not indexed at all.

    The wake-up lives here, not in an on.event handler of its own, so that kopf runs one
    handler per Job event, not two (a study's worker reads the index only after its batch window).
    """
    key = (namespace or "", labels[LABEL_STUDY_UID])
    sighting = job_sighting(body)
    if sighting is None:
        return None
    memo.workers.saw_job(key, sighting)
    return {key: sighting}


@kopf.on.event(GROUP, VERSION, PLURAL)
async def study_event(type: str, body: kopf.Body, namespace: str | None, memo: kopf.Memo, **indexes: Any) -> None:
    workers: Workers = memo.workers
    if workers.jobs is None:
        study_jobs: kopf.Index[StudyKey, ObservedJob] = indexes["study_jobs"]
        # kopf's indexes are live mappings: hand it to the workers once, read it forever.
        workers.jobs = lambda key: study_jobs.get(key, ())
    # Keyed by uid, as the Job index is, so a Job event finds its study's worker. kopf handles each
    # uid's events in a stream of its own, so an old uid's DELETED may come after a new uid's
    # first event under the same name: it stops the old uid's worker only.
    key = (namespace or "", body.metadata.uid)
    if type == "DELETED":
        await workers.forget(key)
    else:
        workers.see(key, body)
