"""The in-memory stoplist: a delta merged in O(delta) gives exactly the list built afresh."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from farebox.agent.store.stoplist import StoplistIndex
from farebox.protocol.stoplist import StoplistChange, StoplistChecksum

tokens = st.frozensets(st.text(st.characters(codec="utf-8"), min_size=1, max_size=12), max_size=60)


def full(held: frozenset[str]) -> StoplistIndex:
    return StoplistIndex().applied(StoplistChange(full=True, added=held, removed=frozenset()), 1, 0)


@given(held=tokens, added=tokens, removed=tokens)
def test_a_delta_gives_the_list_a_snapshot_would(
    held: frozenset[str], added: frozenset[str], removed: frozenset[str]
) -> None:
    added = added - removed  # a change never adds and removes one token
    index = full(held).applied(StoplistChange(full=False, added=added, removed=removed), 2, 5)
    expected = (held | added) - removed
    assert list(index.keys) == list(full(expected).keys)
    assert index.checksum == StoplistChecksum.of(expected)
    assert all(token in index for token in expected)
    assert not any(token in index for token in removed)
    assert (index.version, index.confirmed_ms) == (2, 5)


@given(held=tokens)
def test_the_key_array_survives_storage(held: frozenset[str]) -> None:
    index = full(held)
    again = StoplistIndex.from_bytes(1, index.to_bytes(), index.checksum.digest(), 0)
    assert list(again.keys) == list(index.keys)
    assert again.checksum == index.checksum
