"""A server process's garbage collector settings (`farebox.server.collector`)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from farebox.server.collector import OLDER, YOUNG, tune_collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_a_server_collects_less_often_and_leaves_its_start_up_objects_out() -> None:
    before: list[object] = []  # tracked by the collector, as containers are
    tune_collector()
    assert gc.get_threshold() == (YOUNG, OLDER, OLDER)
    assert gc.get_freeze_count() > 0
    assert not any(item is before for item in gc.get_objects())  # frozen: not scanned


@pytest.mark.usefixtures("restored_collector")
def test_cycles_are_still_collected() -> None:
    tune_collector()

    class Node:
        partner: object

    first, second = Node(), Node()
    first.partner, second.partner = second, first
    alive = len(gc.get_objects())
    del first, second
    assert gc.collect() >= 2
    assert len(gc.get_objects()) < alive
