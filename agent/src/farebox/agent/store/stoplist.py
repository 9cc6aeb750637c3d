"""The stoplist held in memory: a sorted array of 64-bit token keys, 8 bytes a token.

A million tokens take 8 MB (a Python set of the strings would take over 100 MB, past a
validator's memory budget). A key is the top 64 bits of the token's SHA-256, the same
hash the package checksum sums, so a false match needs a 64-bit collision among a few
million tokens (odds about 1 in 10^7 per million lists: accepted). The array is never
changed in place: applying a change builds a new index, so a reader of the old one (a tap
being decided) never sees half a delta. The validator also never stores a raw stoplisted
token, only its key.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from dataclasses import dataclass, field

from farebox.protocol.stoplist import StoplistChange, StoplistChecksum, token_weight

_KEY_SHIFT = 256 - 64
_SIGNED_OFFSET = 2**63


def token_key(token: str) -> int:
    """The signed 64-bit key of `token`: the top 64 bits of its checksum weight, shifted
    into the signed range so that the array's order is the weights' order."""
    return (token_weight(token) >> _KEY_SHIFT) - _SIGNED_OFFSET


@dataclass(frozen=True, slots=True)
class StoplistIndex:
    """A stoplist version: its sorted keys, checksum, and when the server last confirmed
    it current (it was applied then, or the server answered it had nothing newer)."""

    version: int = 0
    keys: array[int] = field(default_factory=lambda: array("q"))
    checksum: StoplistChecksum = field(default_factory=StoplistChecksum)
    confirmed_ms: int | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, token: str) -> bool:
        key = token_key(token)
        at = bisect_left(self.keys, key)
        return at < len(self.keys) and self.keys[at] == key

    def applied(self, change: StoplistChange, version: int, now_ms: int) -> StoplistIndex:
        """The index after `change`: built afresh if full, else merged in O(delta log n)."""
        if change.full:
            # Tokens are unique in a change; two sharing a key (a 64-bit collision) would
            # only repeat it in the array, which lookups do not mind.
            keys = array("q", sorted(map(token_key, change.added)))
            return StoplistIndex(version, keys, StoplistChecksum.of(change.added), now_ms)
        # A set's checksum counts a token once: adding one already held, or removing one
        # not held, changes nothing, exactly as applying it to the server's set would.
        added = [t for t in change.added if t not in self]
        removed = [t for t in change.removed if t in self]
        checksum = self.checksum.add(added).remove(removed)
        return StoplistIndex(version, self._merged(added, removed), checksum, now_ms)

    def _merged(self, added: list[str], removed: list[str]) -> array[int]:
        edits = sorted(
            [(token_key(t), True) for t in added] + [(token_key(t), False) for t in removed]
        )
        keys, out, taken = self.keys, array("q"), 0
        for key, adding in edits:
            at = bisect_left(keys, key, taken)
            out.extend(keys[taken:at])
            if adding:
                out.append(key)
                taken = at
            else:
                taken = at + 1
        out.extend(keys[taken:])
        return out

    def to_bytes(self) -> bytes:
        return self.keys.tobytes()

    @classmethod
    def from_bytes(
        cls, version: int, data: bytes, checksum: bytes, confirmed_ms: int | None
    ) -> StoplistIndex:
        keys = array("q")
        keys.frombytes(data)
        return cls(version, keys, StoplistChecksum(int.from_bytes(checksum, "big")), confirmed_ms)
