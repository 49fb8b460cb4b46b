"""Kubernetes resource quantities (`100m`, `1.5Gi`, `2e3`) as exact numbers, to compare resources with a cap."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))((?:[eE][+-]?[0-9]+)|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


class NotAQuantity(ValueError):
    """A string that is not a Kubernetes quantity."""


def parse_quantity(text: str) -> Decimal:
    """The exact value of a Kubernetes quantity: `100m` is 0.1, `1Ki` is 1024, `1e3` is 1000."""
    match = _QUANTITY.fullmatch(text.strip()) if len(text) <= 64 else None
    if match is None:
        raise NotAQuantity(f"{text!r} is not a Kubernetes quantity (e.g. 500m, 2, 256Mi, 1G)")
    number, suffix = match.groups()
    try:
        value = Decimal(number)
        if not suffix:
            return value
        if suffix in _BINARY:
            return value * (Decimal(1024) ** _BINARY[suffix])
        if suffix in _DECIMAL:
            return value.scaleb(_DECIMAL[suffix])
        return value.scaleb(int(suffix[1:]))
    except (InvalidOperation, ValueError, OverflowError) as error:  # an exponent too large to mean anything
        raise NotAQuantity(f"{text!r} is not a Kubernetes quantity: {error}") from error
