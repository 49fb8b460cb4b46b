"""The committed CRD is the one the models generate, and its schema says what the models say.

The agreement test reads the models through `model_fields` (annotations, constraints, defaults),
not through pydantic's JSON Schema that the generator starts from, so a generator bug shows up
as a disagreement here instead of being copied into both sides.
"""

from __future__ import annotations

import copy
import inspect
import types
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from bentham.api.crd import render, study_crd
from bentham.api.manifest import MANIFEST_RULES, Manifest
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

REPO = Path(__file__).resolve().parents[2]
COMMITTED_CRD = REPO / "crds" / "bentham.io_studies.yaml"
REGENERATE = "python -m bentham.api.crd > crds/bentham.io_studies.yaml"

RULES: dict[type[BaseModel], tuple[Rule[Any], ...]] = {
    Manifest: MANIFEST_RULES,
    Notifications: NOTIFICATIONS_RULES,
    Executor: EXECUTOR_RULES,
    ExecutorVolume: VOLUME_RULES,
    StudySpec: SPEC_RULES,
}
# Keys the walk compares through recursion rather than as plain facts.
STRUCTURAL_KEYS = {"properties", "required", "items", "additionalProperties", "x-kubernetes-validations"}
SCALAR_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number"}


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_committed_crd_is_the_generated_one() -> None:
    committed = COMMITTED_CRD.read_text()
    assert committed == render(), (
        f"crds/bentham.io_studies.yaml is out of date with operator/bentham/api; regenerate it with\n    {REGENERATE}"
    )


def test_crd_is_a_valid_custom_resource_definition_for_kubernetes_1_37() -> None:
    committed = yaml.safe_load(COMMITTED_CRD.read_text())
    assert kubernetes_validate.validate(committed, "1.37", strict=True) == "1.37"


def test_a_misspelt_crd_field_fails_kubernetes_validate() -> None:
    # Shows the check above can fail: strict mode rejects a field the CRD type lacks.
    crd = study_crd()
    crd["spec"]["versions"][0]["selectableField"] = crd["spec"]["versions"][0].pop("selectableFields")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(crd, "1.37", strict=True)


def test_tenant_id_is_a_selectable_field() -> None:
    version = study_crd()["spec"]["versions"][0]
    assert {"jsonPath": ".spec.tenantId"} in version["selectableFields"]


class Walk:
    """Compares models with schema nodes, collecting every disagreement as `path: what`."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def model(self, model: type[BaseModel], node: dict[str, Any], path: str, *, in_spec: bool) -> None:
        if node.get("type") != "object":
            self.problems.append(f"{path}: type {node.get('type')!r}, but {model.__name__} is an object")
        properties: dict[str, Any] = node.get("properties", {})
        for name in properties.keys() - model.model_fields.keys():
            self.problems.append(f"{path}.{name}: in the schema but not in {model.__name__}")
        for name in model.model_fields.keys() - properties.keys():
            self.problems.append(f"{path}.{name}: in {model.__name__} but not in the schema")
        required = {name for name, field in model.model_fields.items() if field.is_required()}
        if set(node.get("required", [])) != required:
            listed = sorted(node.get("required", []))
            self.problems.append(f"{path}: required {listed} in the schema, {sorted(required)} in the model")
        expected_rules = [
            {"rule": rule.cel, "message": rule.message, "fieldPath": rule.field} for rule in RULES.get(model, ())
        ]
        if node.get("x-kubernetes-validations", []) != expected_rules:
            self.problems.append(f"{path}: x-kubernetes-validations differ from {model.__name__}'s rules")
        for name, field in model.model_fields.items():
            if field.alias not in (None, name):
                self.problems.append(f"{path}.{name}: has alias {field.alias!r}; the schema uses field names")
            if name in properties:
                self.field(field.annotation, [field], properties[name], f"{path}.{name}", in_spec=in_spec)

    # One branch per kind of annotation the models use: splitting it would scatter the mapping.
    def field(  # noqa: C901
        self,
        annotation: Any,
        infos: list[FieldInfo],
        node: dict[str, Any],
        path: str,
        *,
        in_spec: bool,
    ) -> None:
        """One value's schema: `infos` are the FieldInfos that apply (the field's own first)."""
        own = infos[0] if infos else None
        annotation, infos = unwrap(annotation, list(infos))
        extra: dict[str, Any] = {}
        for info in infos:
            if isinstance(info.json_schema_extra, dict):
                extra.update(info.json_schema_extra)
        description = next((i.description for i in reversed(infos) if i.description), None)
        origin = get_origin(annotation)
        expected: dict[str, Any] = {}

        if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
            expected["type"] = "object"
            description = description or docstring(annotation)
            # A model that keeps unknown keys (extra="allow") says so in its own schema extra.
            model_extra = annotation.model_config.get("json_schema_extra")
            if isinstance(model_extra, dict) and annotation.model_config.get("extra") == "allow":
                expected |= {k: v for k, v in model_extra.items() if k.startswith("x-kubernetes-")}
            self.model(annotation, node, path, in_spec=in_spec)
        elif inspect.isclass(annotation) and issubclass(annotation, Enum):
            values = [member.value for member in annotation]
            expected |= {"type": "string", "enum": values, "maxLength": max(map(len, values))}
            description = description or docstring(annotation)
        elif origin is Literal:
            values = list(get_args(annotation))
            expected |= {"type": "string", "enum": values, "maxLength": max(map(len, values))}
        elif annotation is datetime:
            expected |= {"type": "string", "format": "date-time"}
        elif annotation in SCALAR_TYPES:
            expected["type"] = SCALAR_TYPES[annotation]
        elif origin is list:
            expected["type"] = "array"
            (item,) = get_args(annotation)
            if "items" not in node:
                self.problems.append(f"{path}: an array without items")
            else:
                self.field(item, [], node["items"], f"{path}[]", in_spec=in_spec)
        elif origin is dict:
            expected["type"] = "object"
            key, value = get_args(annotation)
            if key is not str:
                self.problems.append(f"{path}: dict keys must be strings, not {key}")
            if value is Any:
                if not extra.get("x-kubernetes-preserve-unknown-fields"):
                    self.problems.append(f"{path}: a dict of Any the API server would prune to {{}}")
            elif "additionalProperties" not in node:
                self.problems.append(f"{path}: a map without additionalProperties")
            else:
                self.field(value, [], node["additionalProperties"], f"{path}{{}}", in_spec=in_spec)
        else:
            self.problems.append(f"{path}: no schema mapping for {annotation!r}")
            return

        for info in infos:
            expected |= self.constraints(info, expected["type"], path)
        if description:
            expected["description"] = description
        expected |= self.default(own, annotation, extra, path, in_spec=in_spec)
        expected |= {k: v for k, v in extra.items() if k != "default"}

        actual = {k: v for k, v in node.items() if k not in STRUCTURAL_KEYS}
        for key in sorted(actual.keys() | expected.keys()):
            if actual.get(key, "<absent>") != expected.get(key, "<absent>"):
                self.problems.append(
                    f"{path}: {key} is {actual.get(key, '<absent>')!r} in the schema, "
                    f"{expected.get(key, '<absent>')!r} in the model"
                )

    def constraints(self, info: FieldInfo, json_type: str, path: str) -> dict[str, Any]:
        lengths = {
            "string": ("minLength", "maxLength"),
            "array": ("minItems", "maxItems"),
            "object": ("minProperties", "maxProperties"),
        }
        found: dict[str, Any] = {}
        for constraint in info.metadata:
            kind = type(constraint).__name__
            if kind in ("MinLen", "MaxLen") and json_type in lengths:
                low, high = lengths[json_type]
                if kind == "MinLen":
                    found[low] = constraint.min_length
                else:
                    found[high] = constraint.max_length
            elif kind == "Ge":
                found["minimum"] = constraint.ge
            elif kind == "Le":
                found["maximum"] = constraint.le
            elif kind == "_PydanticGeneralMetadata" and set(vars(constraint)) == {"pattern"}:
                found["pattern"] = constraint.pattern
            else:
                self.problems.append(f"{path}: constraint {constraint!r} has no schema counterpart here")
        return found

    def default(
        self,
        own: FieldInfo | None,
        annotation: Any,
        extra: dict[str, Any],
        path: str,
        *,
        in_spec: bool,
    ) -> dict[str, Any]:
        """The schema default the field's model default calls for."""
        if own is None:
            return {}
        if own.default_factory is not None:
            if "default" not in extra:
                if in_spec:  # the API server must fill in what the model fills in, or the two disagree
                    self.problems.append(f"{path}: the model has a default factory, the schema no default")
                return {}
            made = own.get_default(call_default_factory=True, validated_data={})
            if TypeAdapter(annotation).validate_python(extra["default"]) != made:
                self.problems.append(f"{path}: the schema default {extra['default']!r} is not the model's {made!r}")
            return {"default": extra["default"]}
        if own.default is PydanticUndefined or own.default is None:
            return {}
        value = own.default.value if isinstance(own.default, Enum) else own.default
        return {"default": value}


def unwrap(annotation: Any, infos: list[FieldInfo]) -> tuple[Any, list[FieldInfo]]:
    """Strips `X | None` (an absent field) and `Annotated[X, Field(...)]` (collecting its FieldInfo)."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation, *metadata = get_args(annotation)
            infos += [m for m in metadata if isinstance(m, FieldInfo)]
        elif origin in (Union, types.UnionType):
            options = [a for a in get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                raise AssertionError(f"a union a structural schema cannot express: {annotation}")
            annotation = options[0]
        else:
            return annotation, infos


def docstring(cls: type) -> str | None:
    doc = vars(cls).get("__doc__")
    return inspect.cleandoc(doc) if doc else None


def disagreements(crd: dict[str, Any]) -> list[str]:
    schema = schema_of(crd)
    walk = Walk()
    if set(schema["properties"]) != {"apiVersion", "kind", "metadata", "spec", "status"}:
        walk.problems.append(f"top-level properties {sorted(schema['properties'])}")
    if schema.get("required") != ["spec"]:
        walk.problems.append(f"top-level required {schema.get('required')}")
    walk.model(StudySpec, schema["properties"]["spec"], "spec", in_spec=True)
    walk.model(StudyStatus, schema["properties"]["status"], "status", in_spec=False)
    return walk.problems


def test_crd_schema_agrees_with_the_models_field_by_field() -> None:
    problems = disagreements(yaml.safe_load(COMMITTED_CRD.read_text()))
    assert not problems, "the CRD and the models disagree:\n" + "\n".join(problems)


def at(crd: dict[str, Any], path: str) -> dict[str, Any]:
    """The schema node at a dotted path; `[]` steps into an array's items."""
    node = schema_of(crd)
    for part in path.split("."):
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


CRITERIA = "spec.manifest.completionCriteria"
# (what to break, where, how, what the agreement check must then report)
BREAKAGES: list[tuple[str, str, Callable[[dict[str, Any]], object], str]] = [
    (
        "a limit",
        f"{CRITERIA}.maxRetriesPerCell",
        lambda n: n.update(maximum=11),
        f"{CRITERIA}.maxRetriesPerCell: maximum",
    ),
    ("a missing property", "spec.manifest", lambda n: n["properties"].pop("name"), "spec.manifest.name"),
    (
        "an extra property",
        "spec.executor",
        lambda n: n["properties"].update(gpu={"type": "integer"}),
        "spec.executor.gpu",
    ),
    (
        "a default",
        f"{CRITERIA}.requiredSurfaces.coverageThreshold",
        lambda n: n.update(default=0.9),
        "coverageThreshold: default",
    ),
    (
        "a missing default",
        "spec.manifest.evidenceLevel",
        lambda n: n.pop("default"),
        "spec.manifest.evidenceLevel: default",
    ),
    (
        "a missing factory default",
        f"{CRITERIA}.optionalSurfaces.surfaceIds",
        lambda n: n.pop("default"),
        "optionalSurfaces.surfaceIds: default",
    ),
    ("required-ness", "spec", lambda n: n["required"].remove("tenantId"), "spec: required"),
    ("an enum value", "spec.manifest.surfaces.[].id", lambda n: n["enum"].pop(), "spec.manifest.surfaces[].id: enum"),
    ("a pattern", "spec.tenantId", lambda n: n.update(pattern="^[a-z]+$"), "spec.tenantId: pattern"),
    (
        "an item limit",
        "spec.manifest.queries.[].tags.[]",
        lambda n: n.pop("maxLength"),
        "spec.manifest.queries[].tags[]: maxLength",
    ),
    ("a type", "spec.manifest.retentionDays", lambda n: n.update(type="number"), "spec.manifest.retentionDays: type"),
    (
        "a list type",
        f"{CRITERIA}.requiredSurfaces.surfaceIds",
        lambda n: n.pop("x-kubernetes-list-type"),
        "surfaceIds: x-kubernetes-list-type",
    ),
    ("a rule", "spec", lambda n: n["x-kubernetes-validations"].pop(), "spec: x-kubernetes-validations"),
    (
        "a description",
        f"{CRITERIA}.maxRetriesPerCell",
        lambda n: n.update(description="Retries."),
        "maxRetriesPerCell: description",
    ),
    ("a status field", "status", lambda n: n["properties"].pop("progress"), "status.progress"),
]


@pytest.mark.parametrize(("path", "break_it", "reported"), [b[1:] for b in BREAKAGES], ids=[b[0] for b in BREAKAGES])
def test_agreement_check_catches_a_broken_schema(
    path: str,
    break_it: Callable[[dict[str, Any]], object],
    reported: str,
) -> None:
    crd = copy.deepcopy(study_crd())
    break_it(at(crd, path))
    problems = disagreements(crd)
    assert any(reported in problem for problem in problems), problems
