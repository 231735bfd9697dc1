"""Resource quantities ("500m", "64Gi", "1e3") parsed, added and printed the way
apimachinery's `resource.Quantity` does, canonical form included ("1000m" -> "1",
"1024Mi" -> "1Gi"), so stored objects read back as from a real server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, localcontext

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"

_PATTERN = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {v: k for k, v in _DECIMAL.items()}
_BINARY_SUFFIX = {v: k for k, v in _BINARY.items()}

ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"


class QuantityError(ValueError):
    """The text is not a valid quantity."""


@dataclass(frozen=True)
class Quantity:
    """An exact decimal amount and the format it prints in."""

    value: Decimal
    format: str = DECIMAL_SI

    def __add__(self, other: Quantity) -> Quantity:
        # Like Quantity.Add: a zero amount takes the format of what is added to it.
        fmt = other.format if self.value == 0 else self.format
        return Quantity(self.value + other.value, fmt)

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity(self.value - other.value, self.format)

    def __str__(self) -> str:
        return canonical(self)


ZERO = Quantity(Decimal(0))


def parse(text: str | int | float) -> Quantity:
    """Parse a quantity; numbers in JSON count as plain decimal amounts."""
    if isinstance(text, bool):
        raise QuantityError(ERROR)
    if isinstance(text, int | float):
        return Quantity(_round(Decimal(str(text))), DECIMAL_SI)
    match = _PATTERN.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise QuantityError(ERROR)
    number, suffix = match.groups()
    amount = Decimal(number)
    if suffix in _BINARY:
        return Quantity(_round(amount * (Decimal(1024) ** _BINARY[suffix])), BINARY_SI)
    if suffix in _DECIMAL:
        return Quantity(_round(amount.scaleb(_DECIMAL[suffix])), DECIMAL_SI)
    exp = re.fullmatch(r"[eE]([+-]?[0-9]+)", suffix)
    if exp:
        return Quantity(_round(amount.scaleb(int(exp.group(1)))), DECIMAL_EXPONENT)
    raise QuantityError(ERROR)


def _round(value: Decimal) -> Decimal:
    # Quantities keep nano precision at most, rounding up like apimachinery.
    with localcontext() as ctx:
        ctx.prec = 60
        return value.quantize(Decimal("1e-9"), rounding=ROUND_CEILING).normalize()


def canonical(q: Quantity) -> str:
    """Return the canonical text of a quantity, as the API server serialises it."""
    value = q.value
    if value == 0:
        return "0"
    fmt = q.format
    if fmt == BINARY_SI:
        if -1024 < value < 1024 or value != value.to_integral_value():
            fmt = DECIMAL_SI
        else:
            mantissa, exp = int(value), 0
            while mantissa % 1024 == 0 and exp < 6:
                mantissa //= 1024
                exp += 1
            return f"{mantissa}{_BINARY_SUFFIX.get(exp, '')}"
    mantissa, exp = _base10(value)
    if fmt == DECIMAL_EXPONENT:
        return f"{mantissa}e{exp}" if exp else str(mantissa)
    return f"{mantissa}{_DECIMAL_SUFFIX[exp]}"


def _base10(value: Decimal) -> tuple[int, int]:
    # Smallest integer mantissa with an exponent that is a multiple of 3, within n..E.
    exp = -9
    mantissa = int(value.scaleb(9))
    while exp < 18 and mantissa % 1000 == 0:
        mantissa //= 1000
        exp += 3
    return mantissa, exp


def canonicalize(text: str | int | float) -> str:
    """Parse and print back in canonical form (raises QuantityError)."""
    return canonical(parse(text))


def total(values: list[Quantity]) -> Quantity:
    """Sum quantities the way quota usage is summed."""
    result = ZERO
    for v in values:
        result = result + v
    return result
