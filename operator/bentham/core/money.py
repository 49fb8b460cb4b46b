"""Money as integer micro-dollars: the unit reported costs are carried and summed in.

An executor reports `costUsd` as a JSON number (docs/executor.md). The operator turns it into
whole micro-dollars once, where it reads the result, and adds integers from then on, so a sum of
any number of costs is exact; USD floats are made from those integers only for people to read.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

MICRO_USD = Decimal("0.000001")
MICROS_PER_USD = 1_000_000


def micro_usd(amount: Decimal | float, *, rounding: str = ROUND_HALF_UP) -> int:
    """An amount in USD as whole micro-dollars; a float counts as the decimal it was written as."""
    exact = amount if isinstance(amount, Decimal) else Decimal(repr(amount))
    return int(exact.quantize(MICRO_USD, rounding=rounding).scaleb(6))


def usd(micros: int) -> float:
    """Micro-dollars as USD, for display: the float nearest the exact amount."""
    return micros / MICROS_PER_USD
