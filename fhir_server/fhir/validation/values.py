"""Fixed and pattern values (elementdefinition-definitions.html#ElementDefinition.fixed_x_, #pattern_x_)."""

from __future__ import annotations


def matches_pattern(value: object, pattern: object) -> bool:
    """A pattern is met when every property it has is present with a matching value: an object may carry
    more, and each item of a pattern's array must match some item of the value's array."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and matches_pattern(value[k], v) for k, v in pattern.items())
    if isinstance(pattern, list):
        items = value if isinstance(value, list) else [value]
        return all(any(matches_pattern(item, p) for item in items) for p in pattern)
    if isinstance(pattern, bool) or isinstance(value, bool):
        return value is pattern  # true is not 1
    return value == pattern
