"""`bentham-operator`: run the operator (`python -m bentham` does the same)."""

from __future__ import annotations

import argparse
import os

import kopf


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bentham-operator", description="Run the Bentham study operator.")
    parser.add_argument(
        "-n", "--namespace", action="append", default=[],
        help="Watch this namespace (repeatable). Default: $BENTHAM_NAMESPACES (comma-separated), else all.",
    )
    parser.add_argument("--liveness", default=os.environ.get("BENTHAM_LIVENESS", ""),
                        help="Serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz.")
    parser.add_argument("-v", "--verbose", action="store_true", help="Log at DEBUG level.")
    args = parser.parse_args(argv)

    namespaces = args.namespace or [n for n in os.environ.get("BENTHAM_NAMESPACES", "").split(",") if n]
    kopf.configure(verbose=args.verbose)  # kopf's log format, for ours and its own
    import bentham.controller.handlers  # noqa: F401  (registers the handlers)

    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=True,
        liveness_endpoint=args.liveness or None,
    )


if __name__ == "__main__":
    main()
