"""kopf's side of the operator: the Study watch, the start and stop of our own Job watch, and the hand-off to workers.

No handler here decides anything about a study. Handlers only hand each Study to the worker of
its uid (see `workers`). Only an `on.event` handler is used, never on.create/on.update/daemons/
timers on Studies for reconciling, so kopf puts no finalizer on a Study and deleting one never
waits for the operator.

kopf watches Studies. Jobs are watched by the operator's own stream (`job_watch`), selected on
the API server by the uid label and kept as small sightings in a `JobIndex`, which wakes a
study's worker when one of its Jobs changes: kopf's watch decoded every Job event in full and ran
it through its per-event machinery. No study is handed to a worker before every Job stream's
first list is in: a worker deciding from an empty Job list would ask again for the Job of every
attempt it has marked running (each a 409 and a list of the Job holding the name: thousands of
calls at scale), and see no Job finish. Pods are not watched: a pod changes about seven times in its short life
and the operator needs one thing from it, the executor's termination message once it has ended,
so a worker lists its study's ended pods when it finds finished Jobs (see `workers`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from kubernetes.client import CoreV1Api

from bentham.api.names import GROUP, PLURAL, VERSION
from bentham.controller.config import OperatorConfig
from bentham.controller.job_index import JobIndex
from bentham.controller.job_watch import JobWatch
from bentham.controller.kube import CONNECT_TIMEOUT_S, KubeClient, api_executor, load_api_client
from bentham.controller.liveness import Liveness
from bentham.controller.metrics import Metrics
from bentham.controller.storage import keep_nothing
from bentham.controller.webhook_sender import WebhookSender
from bentham.controller.workers import Workers

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
    kube = memo.kube = KubeClient(api, metrics)
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
    index = JobIndex(memo.workers.saw_job)
    memo.workers.jobs = index.jobs
    # A client of its own: the watch's long reads never hold a connection of the studies' pool.
    memo.job_watch = JobWatch(
        load_api_client(config.api_timeout_s, fence),
        index,
        memo.get("namespaces") or (),  # as given to kopf by bentham-operator; none: every namespace
        timeout_s=config.watch_timeout_s,
        metrics=metrics,
    )
    memo.job_watch.start()
    memo.jobs_listed = memo.job_watch.listed
    memo.liveness = Liveness(kube.api_version, memo.workers.longest_pass, stall_after_s=config.stall_after_s)
    memo.liveness.start()
    if config.metrics_port:
        metrics.serve(config.metrics_port)
    log.info("bentham operator started: %s", config)


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    await memo.liveness.stop()
    await memo.job_watch.stop()
    await memo.workers.stop_all()
    await memo.kube.close()
    await memo.webhooks.stop()


@kopf.on.probe(id="progress")
async def progress(memo: kopf.Memo, **_: Any) -> str:
    """The liveness verdict (controller/liveness.py): a stalled operator fails `/healthz` with the reason."""
    problem = memo.liveness.problem()
    if problem is not None:
        log.error("liveness: %s", problem)
        raise kopf.PermanentError(problem)  # permanent: kopf would otherwise retry the probe before answering
    return "making progress"


@kopf.on.event(GROUP, VERSION, PLURAL)
async def study_event(type: str, body: kopf.Body, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    workers: Workers = memo.workers
    await memo.jobs_listed.wait()  # a worker decides from the Jobs that exist, never from a Job list not yet made
    # Keyed by uid, as the Job index is, so a Job event finds its study's worker. kopf handles each
    # uid's events in a stream of its own, so an old uid's DELETED may come after a new uid's
    # first event under the same name: it stops the old uid's worker only.
    key = (namespace or "", body.metadata.uid)
    if type == "DELETED":
        await workers.forget(key)
    else:
        workers.see(key, body)
