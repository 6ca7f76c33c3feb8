"""JSON from users (template files, the metadata field, API bodies), parsed with bounds.

Python's parser recurses once per level of nesting and fails with RecursionError, not a
JSONDecodeError, near a thousand levels; whatever walks the value later (saving, copying,
rendering) recurses as well. So the nesting is measured on the text, without recursion, before
anything is parsed, and a value deeper than MAX_DEPTH is refused. A number too long for int()
(over 4,300 digits) is refused too, since the parser then raises a plain ValueError."""

from __future__ import annotations

import json
import operator
import re
from itertools import accumulate, count
from typing import Any

MAX_DEPTH = 100
# A string runs to its closing quote, or to the end of the text when it has none: a string that
# failed to match would be tried again from every later quote (quadratic in `\"\"\"…`).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STRING_BYTES = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.S)
_NOT_BRACKET_BYTES = re.compile(rb"[^\[\]{}]+")
# An opening bracket steps 2 and a closing one 0; less one per bracket, that is +1 / -1.
_STEPS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


class UnreadableJson(ValueError):
    """Well-formed JSON the studio will not read; `reason` completes "The file …"."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def nesting_depth(text: str | bytes) -> int:
    """How deep arrays and objects nest in `text` (brackets inside strings do not count).
    UTF-8 bytes are read as they are: no byte of a multi-byte character is a quote or bracket."""
    if isinstance(text, str):
        brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).encode()
    else:
        brackets = _NOT_BRACKET_BYTES.sub(b"", _STRING_BYTES.sub(b"", text))
    return max(map(operator.sub, accumulate(brackets.translate(_STEPS)), count(1)), default=0)


def parse_json_limited(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads(text), or UnreadableJson for what it cannot safely read; malformed text
    raises json.JSONDecodeError as json.loads does."""
    if nesting_depth(text) > max_depth:
        raise UnreadableJson(f"nests JSON deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise
    except ValueError:  # int() refused a number's digits
        raise UnreadableJson("holds a number too long to read (more than 4,300 digits)") from None
