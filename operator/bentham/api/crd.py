"""The Study CRD, generated from the pydantic models so the two can never disagree.

    python -m bentham.api.crd > crds/bentham.io_studies.yaml

pydantic's JSON Schema is close to, but not, a Kubernetes structural schema: it uses `$ref`,
`anyOf` for optional fields, `const`, titles and `additionalProperties: false`. `structural()`
rewrites it into the subset the API server accepts, and attaches each model's CEL rules.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml
from pydantic import BaseModel

from bentham.api.manifest import MANIFEST_RULES, Manifest
from bentham.api.names import GROUP, KIND, PLURAL, VERSION
from bentham.api.rules import Rule
from bentham.api.spec import (
    EXECUTOR_RULES,
    NOTIFICATIONS_RULES,
    SPEC_RULES,
    VOLUME_RULES,
    Executor,
    ExecutorVolume,
    Notifications,
    StudySpec,
)
from bentham.api.status import StudyStatus

SINGULAR = "study"
SHORT_NAMES = ["std"]

# Cross-field rules by the model (JSON Schema title) they apply to.
RULES_BY_MODEL: dict[str, tuple[Rule[Any], ...]] = {
    Manifest.__name__: MANIFEST_RULES,
    Notifications.__name__: NOTIFICATIONS_RULES,
    Executor.__name__: EXECUTOR_RULES,
    ExecutorVolume.__name__: VOLUME_RULES,
    StudySpec.__name__: SPEC_RULES,
}

# JSON Schema keywords a structural schema keeps as they are.
KEPT_KEYWORDS = {
    "type",
    "description",
    "default",
    "enum",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
}

PRINTER_COLUMNS = [
    {"name": "State", "type": "string", "jsonPath": ".status.state", "description": "Lifecycle state."},
    {
        "name": "Progress",
        "type": "string",
        "jsonPath": ".status.progress.summary",
        "description": "Completed cells / total cells.",
    },
    {
        "name": "Percent",
        "type": "string",
        "jsonPath": ".status.progress.percent",
        "description": "Completed share of all cells.",
    },
    {
        "name": "Skipped",
        "type": "integer",
        "jsonPath": ".status.progress.skippedCells",
        "description": "Cells never run: the deadline passed with every threshold met.",
    },
    {
        "name": "At-Risk",
        "type": "boolean",
        "jsonPath": ".status.deadline.atRisk",
        "description": "Projected to miss the deadline.",
    },
    # A string, not a date: kubectl prints future dates as <invalid>.
    {"name": "Deadline", "type": "string", "jsonPath": ".spec.manifest.deadline", "description": "The deadline."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Tenant",
        "type": "string",
        "jsonPath": ".spec.tenantId",
        "priority": 1,
        "description": "The tenant that owns the study.",
    },
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
]

# Fields `kubectl get --field-selector` may filter on (Kubernetes 1.31+): a tenant's studies in one
# command, `kubectl get studies -A --field-selector spec.tenantId=acme`.
SELECTABLE_FIELDS = [{"jsonPath": ".spec.tenantId"}]


def structural(model: type[BaseModel]) -> dict[str, Any]:
    """The model's schema, rewritten as a Kubernetes structural schema."""
    schema = model.model_json_schema(mode="validation")
    return _convert(schema, schema.get("$defs", {}))


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:  # noqa: C901 (one branch per JSON Schema keyword)
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _convert(merged, defs)
    if "anyOf" in node:
        # Optional[X] is `anyOf: [X, {type: null}]`: an absent field, not a null one.
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {node}")
        merged = {**options[0], **{k: v for k, v in node.items() if k != "anyOf"}}
        return _convert(merged, defs)

    out: dict[str, Any] = {k: v for k, v in node.items() if k in KEPT_KEYWORDS}
    if "const" in node:
        out["enum"] = [node["const"]]
        out.setdefault("type", "string")
    if out.get("default", ...) is None:
        del out["default"]  # `None` means "absent", which needs no default
    if "enum" in out and out.get("type") == "string":
        # A bound on every string lets the API server price CEL rules that compare them.
        out.setdefault("maxLength", max(len(v) for v in out["enum"]))
    for key in ("x-kubernetes-list-type", "x-kubernetes-preserve-unknown-fields"):
        if key in node:
            out[key] = node[key]

    if node.get("type") == "object":
        if "properties" in node:
            out["properties"] = {name: _convert(prop, defs) for name, prop in node["properties"].items()}
            if node.get("required"):
                out["required"] = list(node["required"])
        additional = node.get("additionalProperties")
        if isinstance(additional, dict):
            out["additionalProperties"] = _convert(additional, defs)
        rules = RULES_BY_MODEL.get(node.get("title", ""))
        if rules and "properties" in node:
            out["x-kubernetes-validations"] = [rule.as_validation() for rule in rules]
    if node.get("type") == "array":
        out["items"] = _convert(node["items"], defs)
    return out


def study_crd() -> dict[str, Any]:
    """The Study CustomResourceDefinition."""
    spec = structural(StudySpec)
    spec["description"] = "The user's intent: the tenant's manifest and how to run it. The operator never writes it."
    status = structural(StudyStatus)
    status["description"] = "What the operator observed and decided. Only the operator writes it."
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": ["bentham"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "selectableFields": SELECTABLE_FIELDS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": (
                                "A Bentham study: every query asked of every surface from every location, each "
                                "query x surface x location cell run as a Kubernetes Job."
                            ),
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {
                                    "type": "string",
                                    "description": "The API version: bentham.io/v1alpha1.",
                                },
                                "kind": {"type": "string", "description": "Study."},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


class _NoAliasDumper(yaml.SafeDumper):
    """Writes a repeated value out in full: `&id001` anchors only puzzle a reader of the CRD."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render() -> str:
    """The CRD as the YAML committed in crds/bentham.io_studies.yaml."""
    header = "# Generated by `python -m bentham.api.crd` from operator/bentham/api; do not edit.\n"
    return header + yaml.dump(study_crd(), Dumper=_NoAliasDumper, sort_keys=False, width=120)


if __name__ == "__main__":
    sys.stdout.write(render())
