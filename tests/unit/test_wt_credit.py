"""The WebTransport receive-credit policy (pure functions of state, now and rtt)."""

from __future__ import annotations

from pywebtransport.h3.wt_credit import (
    DEFAULT_MAX_SCALE,
    ReceiveCredit,
    data_consumed,
    new_receive_credit,
    peer_stream_finished,
)

WINDOW = 1000


def fresh(now: float = 0.0) -> ReceiveCredit:
    return new_receive_credit(WINDOW, 10, 4, WINDOW, now)


def test_no_grant_while_half_the_window_is_unused() -> None:
    credit, grant = data_consumed(fresh(), 500, 1.0, 0.01, base_window=WINDOW)
    assert grant is None and credit.consumed == 500 and credit.max_data == WINDOW


def test_grant_when_more_than_half_is_used_slowly_keeps_the_window() -> None:
    credit, grant = data_consumed(fresh(), 600, now=10.0, rtt=0.01, base_window=WINDOW)
    assert grant == 600 + WINDOW
    assert credit.max_data == grant and credit.window == WINDOW and credit.granted_at == 10.0


def test_window_doubles_when_used_up_within_a_few_round_trips() -> None:
    credit, grant = data_consumed(fresh(), 600, now=0.02, rtt=0.01, base_window=WINDOW)
    assert credit.window == 2 * WINDOW and grant == 600 + 2 * WINDOW


def test_window_growth_is_capped_and_can_be_disabled() -> None:
    credit = fresh()
    now = 0.0
    for _ in range(20):
        now += 0.001
        credit, _grant = data_consumed(credit, credit.max_data - credit.consumed, now, 0.01, base_window=WINDOW)
    assert credit.window == WINDOW * DEFAULT_MAX_SCALE
    still, grant = data_consumed(fresh(), 600, now=0.001, rtt=0.01, base_window=WINDOW, auto_scale=False)
    assert still.window == WINDOW and grant == 600 + WINDOW


def test_nothing_consumed_changes_nothing() -> None:
    credit = fresh()
    assert data_consumed(credit, 0, 5.0, 0.01, base_window=WINDOW) == (credit, None)


def test_stream_credit_is_raised_in_steps() -> None:
    credit = fresh()
    grants = []
    for _ in range(10):
        credit, target = peer_stream_finished(credit, True, initial=10, increment=4)
        grants.append(target)
    # min(increment, initial // 2) = 4 streams per step.
    assert grants == [None, None, None, 14, None, None, None, 18, None, None]
    assert credit.closed_bidi == 10 and credit.max_streams_bidi == 18 and credit.closed_uni == 0


def test_stream_credit_for_small_limits_moves_one_at_a_time() -> None:
    credit = new_receive_credit(WINDOW, 1, 1, WINDOW, 0.0)
    credit, target = peer_stream_finished(credit, False, initial=1, increment=16)
    assert target == 2 and credit.max_streams_uni == 2 and credit.max_streams_bidi == 1
