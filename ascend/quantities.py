"""Kubernetes resource quantities (``500m``, ``2``, ``512Mi``, ``1.5G``, ``1e9``).

Parsed exactly (``Decimal``) so that validation at decoration time agrees with what the
cluster will accept, and so the local provider can turn ``memory`` into a byte limit.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_QUANTITY = re.compile(
    r"^(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>[a-zA-Z]*|[eE][+-]?[0-9]+)$"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}


def parse_quantity(text: str) -> Decimal:
    """The value of a quantity; ``ValueError`` with the reason when it is not one."""
    if not isinstance(text, str):
        raise ValueError(f"expected a string such as '2' or '512Mi', got {type(text).__name__}")
    match = _QUANTITY.match(text.strip())
    if not match:
        raise ValueError("not a Kubernetes quantity (examples: '500m', '2', '512Mi', '4Gi')")
    try:
        return _value(Decimal(match.group("number")), match.group("suffix"))
    except ArithmeticError:
        raise ValueError("the value is too large") from None


def _value(number: Decimal, suffix: str) -> Decimal:
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    if suffix[:1] in ("e", "E"):
        try:
            return number * (Decimal(10) ** int(suffix[1:]))
        except (ValueError, InvalidOperation):
            pass
    raise ValueError(f"unknown unit {suffix!r} (use m, k, M, G, T, Ki, Mi, Gi, Ti)")


def cpu_cores(text: str) -> Decimal:
    value = parse_quantity(text)
    if value <= 0:
        raise ValueError("must be more than zero")
    if value < Decimal("0.001"):
        raise ValueError("the smallest CPU request is 1m (a thousandth of a core)")
    return value


def memory_bytes(text: str) -> int:
    value = parse_quantity(text)
    if value < 2**20:
        raise ValueError("must be at least 1Mi (did you mean Mi or Gi?)")
    if value != value.to_integral_value():
        raise ValueError("must be a whole number of bytes")
    return int(value)
