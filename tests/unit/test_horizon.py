"""The horizon's bookkeeping (store/horizon.py): a pair (L, writers listed after L) settles
only on a list of running writers read after the pair was made, with none of them in it."""

from __future__ import annotations

from jobfleet.store.horizon import Horizon


def test_a_list_read_before_the_pair_was_made_does_not_settle_it() -> None:
    h = Horizon()
    h._pending = [(10, frozenset({"7"}), 5.0)]
    h._apply(frozenset(), started=4.0)  # another thread's list, read before this pair's
    assert h._safe == 0
    h._apply(frozenset({"7", "9"}), started=6.0)  # writer 7 still runs
    assert h._safe == 0
    h._apply(frozenset({"9"}), started=7.0)  # 7 has ended (9 began after L: not listed)
    assert h._safe == 10
    assert h._pending == []


def test_a_pair_waits_for_every_writer_it_listed() -> None:
    h = Horizon()
    h._pending = [(10, frozenset({"1"}), 1.0), (20, frozenset({"1", "2"}), 2.0)]
    h._apply(frozenset({"2"}), started=3.0)  # 1 ended: 10 settles; 20 waits for 2
    assert h._safe == 10
    assert h.behind()
    h._apply(frozenset({"5"}), started=4.0)
    assert h._safe == 20
    assert not h.behind()
    h._apply(frozenset(), started=5.0)
    assert h._safe == 20  # never goes back
