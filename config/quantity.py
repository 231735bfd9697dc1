"""Kubernetes quantities as the policy writes them (`4`, `500m`, `24Gi`), checked and scaled.

One parser for both ends: the policy schema checks `per_unit.cpu` / `.memory` with it when the
file is loaded, and the bundle renderer (provisioners.bundle.render) scales them with it, so a
policy that loads always renders. Imports nothing else of gpulease.
"""

from __future__ import annotations

import re
from fractions import Fraction

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
# From each suffix to the next smaller one and the factor between them, used when a scaled
# value is not a whole number in its own suffix (0.5 CPU → 500m, 2.5Gi → 2560Mi).
_SMALLER = {
    "Ei": ("Pi", 1024), "Pi": ("Ti", 1024), "Ti": ("Gi", 1024), "Gi": ("Mi", 1024),
    "Mi": ("Ki", 1024), "Ki": ("", 1024),
    "E": ("P", 1000), "P": ("T", 1000), "T": ("G", 1000), "G": ("M", 1000),
    "M": ("k", 1000), "k": ("", 1000), "": ("m", 1000),
}


def parse_quantity(quantity: str) -> tuple[Fraction, str]:
    """Split a quantity into its number and suffix ("24Gi" → (24, "Gi")); ValueError if it is not one."""
    match = _QUANTITY.match(quantity.strip())
    if not match:
        raise ValueError(f"unsupported quantity {quantity!r} (use forms like 4, 500m, 24Gi)")
    return Fraction(match.group(1)), match.group(2) or ""


def check_quantity(quantity: str) -> str:
    """Return the quantity unchanged if it is one the renderer can scale (ValueError otherwise)."""
    parse_quantity(quantity)
    return quantity


def scale_quantity(quantity: str, factor: int | Fraction) -> str:
    """Multiply a Kubernetes quantity (e.g. "24Gi", "4", "500m") by a factor, exactly."""
    number, suffix = parse_quantity(quantity)
    value = number * Fraction(factor)
    while value.denominator != 1 and suffix in _SMALLER:
        suffix, step = _SMALLER[suffix]
        value *= step
    if value.denominator != 1:
        # Below a millicore or a byte: round up, never hand out less than was asked for.
        value = Fraction(-(-value.numerator // value.denominator))
    return f"{value.numerator}{suffix}"
