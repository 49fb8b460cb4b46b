"""`bentham-operator`: run the operator (`python -m bentham` does the same)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.server
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from urllib.parse import urlparse

import kopf

from bentham import __version__
from bentham.controller.config import OperatorConfig
from bentham.core.executor_policy import ExecutorPolicyInvalid
from bentham.core.pricing import PricingInvalid
from bentham.core.webhook_policy import AllowedCidrsInvalid

log = logging.getLogger("bentham")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bentham-operator", description="Run the Bentham study operator.")
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="Watch this namespace or glob (repeatable). Default: $BENTHAM_NAMESPACES (comma-separated), else all.",
    )
    parser.add_argument(
        "--liveness",
        default=os.environ.get("BENTHAM_LIVENESS", ""),
        help="Serve the liveness probe, e.g. http://0.0.0.0:8080/healthz.",
    )
    parser.add_argument(
        "--leader-elect",
        action="store_true",
        default=os.environ.get("BENTHAM_LEADER_ELECT", "").lower() in ("1", "true", "yes"),
        help="Act only while holding the leader Lease (for more than one replica).",
    )
    parser.add_argument(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE", "default"),
        help="Namespace of the leader Lease. Default: $POD_NAMESPACE, else default.",
    )
    parser.add_argument("--lease-name", default="bentham-operator", help="Name of the leader Lease.")
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="Serve Prometheus metrics on this port (same as $BENTHAM_METRICS_PORT; 0: off).",
    )
    parser.add_argument(
        "--event-loop",
        default=os.environ.get("BENTHAM_EVENT_LOOP", "uvloop"),
        help="The event loop: uvloop (libuv's; the default) or asyncio (the standard library's). "
        "Default: $BENTHAM_EVENT_LOOP, else uvloop.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="Log at DEBUG level.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    args = parser.parse_args(argv)
    if args.event_loop not in EVENT_LOOPS:
        parser.exit(2, f"bentham-operator: --event-loop (BENTHAM_EVENT_LOOP): {args.event_loop!r} is not one of "
                       f"{', '.join(EVENT_LOOPS)}\n")  # fmt: skip

    if args.metrics_port is not None:
        os.environ["BENTHAM_METRICS_PORT"] = str(args.metrics_port)  # read with the rest in OperatorConfig
    namespaces = args.namespace or [n for n in os.environ.get("BENTHAM_NAMESPACES", "").split(",") if n]
    try:
        settings = OperatorConfig.from_environment()
        # Once, at start: a bad file or a bad CIDR stops us here.
        pricing, executor_policy = settings.pricing(), settings.executor_policy()
        settings.webhook_allowed_networks()
    except (PricingInvalid, ExecutorPolicyInvalid, AllowedCidrsInvalid) as error:
        parser.exit(2, f"bentham-operator: {error}\n")
    kopf.configure(verbose=args.verbose)  # kopf's log format, for ours and its own
    import bentham.controller.handlers  # noqa: F401  (registers the handlers)
    from bentham.controller.leadership import WriteFence

    stop = threading.Event()  # for our own threads (the Lease)
    lost = threading.Event()
    elector = None
    identity = os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    fence = WriteFence.always_open(identity)  # every write of the operator goes through it (kube.FencedApiClient)
    if args.leader_elect:
        from bentham.controller.kube import load_api_client
        from bentham.controller.leadership import LeaderElector, LeaseSettings

        elector = LeaderElector(
            load_api_client(), identity, LeaseSettings(name=args.lease_name, namespace=args.lease_namespace)
        )
        log.info("leader election: %s is standing by for lease %s/%s", identity, args.lease_namespace, args.lease_name)
        with standby_liveness(args.liveness):
            elector.wait_for_leadership(stop)
        fence = elector.fence

        def on_lost() -> None:
            # Stop kopf the way a kubelet would. (kopf's stop_flag is waited on in a thread that
            # nothing releases on a signal, which would hang every SIGTERM until kopf's timeout.)
            lost.set()
            stop.set()
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=elector.keep_renewing, args=(stop, on_lost), name="lease", daemon=True).start()

    try:
        if namespaces:
            namespaces = served_namespaces(namespaces)
        log.info("event loop: %s", use_event_loop(args.event_loop))
        kopf.run(
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=True,  # one replica acts at a time: the Lease, not kopf's peering, decides which
            liveness_endpoint=args.liveness or None,
            # The Job watch (controller/job_watch.py) serves the same namespaces as kopf.
            memo=kopf.Memo(pricing=pricing, executor_policy=executor_policy, fence=fence, namespaces=namespaces),
        )
    finally:
        stop.set()
        if elector is not None and not lost.is_set():
            elector.release()
    if lost.is_set():
        log.error("leader election: lost the lease; exiting so that only the new leader acts")
        sys.exit(1)


EVENT_LOOPS = ("uvloop", "asyncio")


def use_event_loop(name: str) -> str:
    """Makes `name` the event loop that `kopf.run` starts (its `asyncio.run`); returns the one it will be.

    uvloop (libuv's loop, its TLS and its sockets in C) takes ~15 % less of the operator's CPU per
    cell than asyncio's own loop (bench/README.md): most of a cell's CPU is the loop reading and
    writing the API server's TLS connections. asyncio's is there for a platform uvloop lacks.
    """
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.warning("uvloop is not installed here; the operator runs on asyncio's own event loop")
            return "asyncio"
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    else:
        asyncio.set_event_loop_policy(None)  # the standard library's
    return name


def served_namespaces(namespaces: list[str]) -> list[str]:
    """The namespaces given, less those the operator may not watch (docs/install.md, "RBAC"); exits if none is left."""
    from bentham.controller.kube import load_api_client
    from bentham.controller.namespace_access import watchable_namespaces

    with load_api_client() as api:
        served = watchable_namespaces(api, namespaces)
    if not served:
        log.error("none of the namespaces to watch (%s) may be watched; exiting", ", ".join(namespaces))
        sys.exit(2)
    return served


@contextlib.contextmanager
def standby_liveness(endpoint: str) -> Iterator[None]:
    """While a replica waits to lead, it is alive: answer the liveness probe until kopf takes over."""
    if not endpoint:
        yield
        return
    url = urlparse(endpoint)

    class Alive(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == url.path else 404)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((url.hostname or "0.0.0.0", url.port or 80), Alive)
    threading.Thread(target=server.serve_forever, name="standby-liveness", daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
