"""Whole numbers typed by people or found in names. str.isdigit() is true for "²" and for 5,000
digits, which int() then refuses (or no database column holds): read them here or with a form
field, never with isdigit() and int()."""

from __future__ import annotations

MAX_ID = 2**63 - 1  # the largest primary key every database holds


def whole_number_in(value: object, low: int = 0, high: int = MAX_ID) -> int | None:
    """`value` written as a decimal whole number (ASCII digits) within [low, high], else None."""
    text = value.strip() if isinstance(value, str) else ""
    if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > len(str(high)):
        return None
    number = int(text)
    return number if low <= number <= high else None
