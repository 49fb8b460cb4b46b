"""Cross-field rules, written once and enforced twice: as CEL in the CRD, and in the model.

The API server runs the CEL (`x-kubernetes-validations`) so `kubectl apply` rejects a bad study
before it is stored; the pydantic model runs the Python predicate so the operator, the tests
and any offline tool reach the same verdict with the same message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic_core import PydanticCustomError

Model = TypeVar("Model")

RULE_ERROR_TYPE = "cross_field_rule"
"""The pydantic error type of broken rules; its context lists each as `(field, message)`."""


@dataclass(frozen=True)
class Rule(Generic[Model]):
    """One cross-field rule of an object."""

    field: str
    """Where the error points, relative to the object (`.completionCriteria.requiredSurfaces`)."""
    message: str
    """What is wrong, naming the field and the rule."""
    cel: str
    """The rule as a CEL expression over `self`, for the API server."""
    holds: Callable[[Model], bool] | None
    """The same rule in Python, for the model; None for a transition rule (it needs `oldSelf`)."""

    @property
    def text(self) -> str:
        """The message without its leading `label: `, for an error whose path already names the field."""
        label, separator, text = self.message.partition(": ")
        return text if separator and " " not in label else self.message

    def as_validation(self) -> dict[str, Any]:
        """The rule as an `x-kubernetes-validations` entry."""
        return {"rule": self.cel, "message": self.message, "fieldPath": self.field}


def enforce(model: Model, rules: Iterable[Rule[Model]]) -> None:
    """Raises one pydantic error listing every rule `model` breaks, so each can point at its field."""
    broken = [rule for rule in rules if rule.holds is not None and not rule.holds(model)]
    if broken:
        raise PydanticCustomError(
            RULE_ERROR_TYPE,
            "{summary}",
            {
                "summary": "; ".join(rule.message for rule in broken),
                "broken": [(rule.field, rule.text) for rule in broken],
            },
        )


def duplicates(values: Iterable[object]) -> list[object]:
    """Values that occur more than once, each reported once, in first-seen order."""
    seen: set[object] = set()
    repeated: list[object] = []
    for value in values:
        if value in seen and value not in repeated:
            repeated.append(value)
        seen.add(value)
    return repeated
