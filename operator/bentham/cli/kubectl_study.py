"""`kubectl study`: a kubectl plugin that shows a Study's progress and its cells.

    kubectl study status NAME [-n NAMESPACE]      progress by surface and location, deadline, rates
    kubectl study watch NAME [--interval 2]       the same, refreshed until the study ends (or Ctrl-C)
    kubectl study cells NAME [--state S] [--surface S] [--location L]
                                                  the checkpoint decoded: one line per cell
    kubectl study estimate -f study.yaml [--pricing FILE]
                                                  the cost estimate, without creating anything

kubectl runs any `kubectl-study` on PATH as `kubectl study` (the package installs it). It talks
to the cluster of the current kubeconfig context, or --kubeconfig / --context; `estimate` talks
to no cluster at all.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from pydantic import ValidationError

from bentham.api.names import GROUP, PLURAL, VERSION
from bentham.api.spec import StudySpec
from bentham.api.status import StudyStatus
from bentham.api.validation import Invalid, validate_spec
from bentham.cli.render import cell_rows, is_terminal, render_cells, render_estimate, render_status, select_cells
from bentham.core.checkpoint import CellState, CheckpointUnreadable, fresh_records, read_records
from bentham.core.estimate import estimate_cost
from bentham.core.pricing import PricingInvalid, PricingTable, pricing_with_overrides

EXIT_OK, EXIT_ERROR, EXIT_STUDY_NOT_COMPLETE, EXIT_INTERRUPTED = 0, 1, 2, 130
CLEAR_SCREEN = "\x1b[H\x1b[2J"

StudyReader = Callable[[], dict[str, Any]]


class PluginError(Exception):
    """Something the user should read, printed without a traceback."""


def parser() -> argparse.ArgumentParser:
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("-n", "--namespace", help="The study's namespace. Default: the context's, else default.")
    connection.add_argument("--kubeconfig", help="Path to the kubeconfig. Default: $KUBECONFIG, else ~/.kube/config.")
    connection.add_argument("--context", help="The kubeconfig context to use. Default: the current one.")

    root = argparse.ArgumentParser(
        prog="kubectl study",
        description="Show a Bentham Study's progress, its cells, or its cost estimate.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n")[1],
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    status = commands.add_parser("status", parents=[connection], help="Progress by surface and location.")
    status.add_argument("name", metavar="NAME")
    watch = commands.add_parser(
        "watch",
        parents=[connection],
        help="Refresh the status until the study ends.",
        description="Refresh the status until the study is complete, failed or cancelled. Exits 0 when it "
        "completed, 2 when it failed or was cancelled, 130 on Ctrl-C.",
    )
    watch.add_argument("name", metavar="NAME")
    watch.add_argument("--interval", type=float, default=2.0, help="Seconds between refreshes (default 2).")
    cells = commands.add_parser("cells", parents=[connection], help="One line per cell, from the checkpoint.")
    cells.add_argument("name", metavar="NAME")
    cells.add_argument("--state", choices=[state.name.lower() for state in CellState], help="Only cells in this state.")
    cells.add_argument("--surface", help="Only cells of this surface id.")
    cells.add_argument("--location", help="Only cells of this location id.")
    estimate = commands.add_parser(
        "estimate",
        help="The cost estimate of a Study file, creating nothing.",
        description="Validate a Study file as the operator does and print its cost estimate (cells, a USD "
        "range, each surface's share) as the operator will put it in status.estimate. Talks to no cluster.",
    )
    estimate.add_argument("-f", "--filename", required=True, help="The Study's YAML or JSON file; - reads stdin.")
    estimate.add_argument(
        "--pricing",
        metavar="FILE",
        help="A pricing table laid over the built-in one, as the operator's BENTHAM_PRICING_FILE (docs/cost.md).",
    )
    return root


def connect(kubeconfig: str | None, context: str | None, namespace: str | None) -> tuple[client.ApiClient, str]:
    """An API client for the kubeconfig's context, and the namespace to use."""
    try:
        api = config.new_client_from_config(config_file=kubeconfig, context=context)
        contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)
    except (config.ConfigException, OSError) as error:
        raise PluginError(f"cannot load the kubeconfig: {error}") from error
    chosen = next((c for c in contexts if c["name"] == context), None) if context else current
    return api, namespace or (chosen or {}).get("context", {}).get("namespace") or "default"


def study_reader(api: client.ApiClient, namespace: str, name: str) -> StudyReader:
    custom = client.CustomObjectsApi(api)

    def read() -> dict[str, Any]:
        try:
            return dict(custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))
        except ApiException as error:
            if error.status == 404:
                raise PluginError(f"study {name!r} not found in namespace {namespace!r}") from error
            raise PluginError(f"cannot read study {namespace}/{name}: {error.status} {error.reason}") from error

    return read


def cells_view(
    study: Mapping[str, Any], state: str | None, surface: str | None, location: str | None, now: datetime
) -> str:
    """The study's cells, decoded from its checkpoint (all pending when it has none yet)."""
    try:
        manifest = StudySpec.model_validate(study.get("spec") or {}).manifest
    except ValidationError as error:
        raise PluginError(f"the study's spec cannot be read: {error}") from error
    known_surfaces = [s.id.value for s in manifest.surfaces]
    known_locations = [loc.id.value for loc in manifest.locations]
    if surface is not None and surface not in known_surfaces:
        raise PluginError(f"the study has no surface {surface!r}; it has {', '.join(known_surfaces)}")
    if location is not None and location not in known_locations:
        raise PluginError(f"the study has no location {location!r}; it has {', '.join(known_locations)}")
    status = StudyStatus.model_validate(study.get("status") or {})
    try:
        records = read_records(status.checkpoint)
    except CheckpointUnreadable as error:
        raise PluginError(f"the study's checkpoint cannot be decoded: {error}") from error
    if records is None:
        records = fresh_records(manifest.cell_count)  # no checkpoint yet: nothing has started
    rows = cell_rows(manifest, records)
    return render_cells(select_cells(rows, state=state, surface=surface, location=location), len(rows), now)


def estimate_view(text: str, source: str, pricing: PricingTable | None, now: datetime) -> str:
    """The estimate of every Study in `text`, validated as the operator validates it; an invalid one names its field."""
    try:
        documents = [document for document in yaml.safe_load_all(text) if document is not None]
    except yaml.YAMLError as error:
        raise PluginError(f"{source} is not YAML: {error}") from error
    studies = [d for d in documents if isinstance(d, Mapping) and d.get("kind") == "Study"]
    if not studies:
        raise PluginError(f"{source} holds no Study (a document with kind: Study)")
    views = []
    for body in studies:
        name = str((body.get("metadata") or {}).get("name") or "(unnamed)")
        spec = body.get("spec")
        if not isinstance(spec, Mapping):
            raise PluginError(f"study {name}: spec: a Study needs a spec with its manifest")
        validation = validate_spec(dict(spec), created_at=now, now=now)  # as if created now, as applying it would
        if isinstance(validation, Invalid):
            problems = "\n".join(f"  spec.{error}" for error in validation.errors)
            raise PluginError(f"study {name}: the spec is invalid ({validation.reason}):\n{problems}")
        manifest = validation.spec.manifest
        views.append(render_estimate(name, manifest, estimate_cost(manifest, pricing), validation.warnings))
    return "\n".join(views)


def read_pricing(path: str | None) -> PricingTable | None:
    """The table of `--pricing` laid over the built-in one; None without the flag."""
    if path is None:
        return None
    try:
        return pricing_with_overrides(Path(path).read_text(encoding="utf-8"), path)
    except OSError as error:
        raise PluginError(f"cannot read {path}: {error}") from error
    except PricingInvalid as error:
        raise PluginError(str(error)) from error


def read_file(path: str) -> str:
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise PluginError(f"cannot read {path}: {error}") from error


def watch(
    read: StudyReader,
    interval: float,
    out: TextIO,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Redraws the status until the study ends; on a terminal, in place, otherwise each change once."""
    shown = None
    while True:
        study = read()
        frame = render_status(study, clock())
        if out.isatty():
            out.write(CLEAR_SCREEN + frame)
        elif frame != shown:
            out.write(("\n" if shown is not None else "") + frame)
        out.flush()
        shown = frame
        if is_terminal(study):
            return EXIT_OK if (study.get("status") or {}).get("state") == "complete" else EXIT_STUDY_NOT_COMPLETE
        sleep(interval)


def utc_now() -> datetime:
    return datetime.now(UTC)


def run(args: argparse.Namespace, out: TextIO) -> int:
    if args.command == "estimate":
        source = "stdin" if args.filename == "-" else args.filename
        out.write(estimate_view(read_file(args.filename), source, read_pricing(args.pricing), utc_now()))
        return EXIT_OK
    api, namespace = connect(args.kubeconfig, args.context, args.namespace)
    read = study_reader(api, namespace, args.name)
    if args.command == "status":
        out.write(render_status(read(), utc_now()))
        return EXIT_OK
    if args.command == "watch":
        return watch(read, args.interval, out, utc_now)
    out.write(cells_view(read(), args.state, args.surface, args.location, utc_now()))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args, sys.stdout)
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
