"""Strict reading of decoded CBOR maps: typed getters whose errors name the field.

Every message decoder in farebox.protocol reads its map through `Fields`, so a missing
key, an unknown key or a wrong type always becomes one DecodeError that says where.
`whole_number` is the same strictness for a number that comes as text.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from farebox.protocol.errors import DecodeError

E = TypeVar("E", bound=StrEnum)
# Every integer farebox exchanges (times, seqs, money, versions) fits a signed 64-bit
# column; refusing larger ones here keeps them out of every store.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
T = TypeVar("T")


def whole_number(text: str, most: int) -> int | None:
    """`text` as a whole number from 0 to `most`, or None unless it is ASCII digits alone,
    no more of them than `most` has.

    For numbers in text (a query parameter, a header, a setting): int() also reads other
    scripts' digits ("٣"), signs, spaces and underscores, and any length.
    """
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(most)):
        return None
    value = int(text)
    return value if value <= most else None


@dataclass(frozen=True, slots=True)
class Fields:
    """A decoded CBOR map and its path in the message, for error messages."""

    values: Mapping[object, object]
    path: str

    @classmethod
    def of(cls, value: object, path: str) -> Fields:
        if not isinstance(value, dict):
            raise DecodeError(f"{path}: expected a map, got {type(value).__name__}")
        return cls(value, path)

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def expect_keys(self, keys: Collection[str]) -> None:
        """Require exactly `keys`: none missing, none unknown."""
        if self.values.keys() == (keys if isinstance(keys, AbstractSet) else set(keys)):
            return
        missing = sorted(set(keys) - set(self.values))
        if missing:
            raise DecodeError(f"{self.path}: missing field(s) {', '.join(missing)}")
        unknown = sorted(str(key) for key in set(self.values) - set(keys))
        if unknown:
            raise DecodeError(f"{self.path}: unknown field(s) {', '.join(unknown)}")

    # The getters below return at once for a value of exactly the expected type (what
    # cbor2 hands back); any other value, good or bad, goes through `_get` and the same
    # checks as before, so a fast return never accepts what `_get` would refuse.

    def _get(self, key: str, kind: type[T], label: str) -> T:
        value = self.values.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            got = "nothing" if key not in self.values else type(value).__name__
            raise DecodeError(f"{self.path}.{key}: expected {label}, got {got}")
        return value

    def integer(self, key: str) -> int:
        value = self.values.get(key)
        if type(value) is int and INT64_MIN <= value <= INT64_MAX:
            return value
        value = self._get(key, int, "an integer")
        if not INT64_MIN <= value <= INT64_MAX:
            raise DecodeError(f"{self.path}.{key}: {value} does not fit in 64 signed bits")
        return value

    def text(self, key: str) -> str:
        value = self.values.get(key)
        if type(value) is str:
            return value
        return self._get(key, str, "a text string")

    def blob(self, key: str) -> bytes:
        value = self.values.get(key)
        if type(value) is bytes:
            return value
        return self._get(key, bytes, "a byte string")

    def boolean(self, key: str) -> bool:
        return self._get(key, bool, "a boolean")

    def optional_text(self, key: str) -> str | None:
        return None if self.values.get(key, ...) is None else self.text(key)

    def optional_integer(self, key: str) -> int | None:
        return None if self.values.get(key, ...) is None else self.integer(key)

    def optional_list(self, key: str) -> list[object] | None:
        return None if self.values.get(key, ...) is None else self._get(key, list, "an array")

    def list_of(self, key: str, kind: type[T]) -> list[T]:
        items: list[object] = self._get(key, list, "an array")
        for index, item in enumerate(items):
            if not isinstance(item, kind) or (kind is int and isinstance(item, bool)):
                raise DecodeError(f"{self.path}.{key}[{index}]: expected {kind.__name__}")
        return items  # type: ignore[return-value]  # every item was checked above

    def mapping(self, key: str) -> dict[object, object]:
        return self._get(key, dict, "a map")

    def nested(self, key: str, keys: Collection[str]) -> Fields:
        inner = Fields(self.mapping(key), f"{self.path}.{key}")
        inner.expect_keys(keys)
        return inner

    def enum(self, key: str, kind: type[E]) -> E:
        value = self.values.get(key)
        if type(value) is str and (found := kind._value2member_map_.get(value)) is not None:
            return found  # type: ignore[return-value]
        value = self.text(key)
        # The value map is the enum's own lookup table, without the call's slow path.
        member = kind._value2member_map_.get(value)
        if member is None:
            raise DecodeError(f"{self.path}.{key}: unknown value {value!r}")
        return member  # type: ignore[return-value]
