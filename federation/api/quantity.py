"""Kubernetes resource quantities ("500m", "4Gi", "1e3") as integers.

Cluster capacity arrives as quantity strings (MemberCluster status, clusters files); the
placement engine scores with integers: CPU in millicores, memory in bytes, pods as a count.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIX = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def parse_quantity(text: str | int | float) -> Decimal:
    """The quantity's value; raises ValueError naming the text when it is not a quantity."""
    if isinstance(text, int | float):
        return Decimal(str(text))
    m = _QUANTITY.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (like 500m, 2, 4Gi)")
    number, suffix = m.group(1), m.group(2) or ""
    if suffix and "e" in number.lower():
        raise ValueError(f"{text!r} is not a Kubernetes quantity (exponent and suffix together)")
    try:
        return Decimal(number) * _SUFFIX[suffix]
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (like 500m, 2, 4Gi)") from None


def millicores(text: str | int | float) -> int:
    return int((parse_quantity(text) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def whole(text: str | int | float) -> int:
    """Bytes or counts: rounded up, as Kubernetes rounds a fractional quantity of bytes."""
    return int(parse_quantity(text).to_integral_value(rounding="ROUND_CEILING"))
