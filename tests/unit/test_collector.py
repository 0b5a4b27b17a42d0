"""The garbage collector pause that scoring holds over a batch."""

import gc

import pytest

from kizashi.runtime.collector import collection_paused


@pytest.fixture(autouse=True)
def _collector_enabled_afterwards():
    yield
    gc.enable()


def test_paused_inside_and_resumed_after_even_on_error() -> None:
    gc.enable()
    with collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collection_paused():
        raise RuntimeError("the batch failed")
    assert gc.isenabled()


def test_overlapping_pauses_leave_it_enabled_in_either_order() -> None:
    gc.enable()
    first, second = collection_paused(), collection_paused()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the consumer's batch ends while the sweep runs
    assert gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled() -> None:
    gc.disable()
    with collection_paused():
        pass
    assert not gc.isenabled()
