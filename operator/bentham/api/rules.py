"""Cross-field rules, written once and enforced twice: as CEL in the CRD, and in the model.

The API server runs the CEL (`x-kubernetes-validations`) so `kubectl apply` rejects a bad study
before it is stored; the pydantic model runs the Python predicate so the operator, the tests
and any offline tool reach the same verdict with the same message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

Model = TypeVar("Model")


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

    def as_validation(self) -> dict[str, Any]:
        """The rule as an `x-kubernetes-validations` entry."""
        return {"rule": self.cel, "message": self.message, "fieldPath": self.field}


def broken_rules(model: Model, rules: Iterable[Rule[Model]]) -> list[str]:
    """The messages of every rule that `model` breaks, in the rules' order."""
    return [rule.message for rule in rules if rule.holds is not None and not rule.holds(model)]


def duplicates(values: Iterable[object]) -> list[object]:
    """Values that occur more than once, each reported once, in first-seen order."""
    seen: set[object] = set()
    repeated: list[object] = []
    for value in values:
        if value in seen and value not in repeated:
            repeated.append(value)
        seen.add(value)
    return repeated
