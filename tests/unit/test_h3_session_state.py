"""Every (state, input) pair of the WebTransport session transition table."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pywebtransport.h3.errors import H3Error, SessionStateError
from pywebtransport.h3.session_state import TRANSITIONS, SessionInput, SessionState, SessionStateMachine

S, I = SessionState, SessionInput

EXPECTED = {
    (S.IDLE, I.REQUEST_SENT): S.CONNECTING,
    (S.IDLE, I.REQUEST_RECEIVED): S.CONNECTING,
    (S.IDLE, I.CONNECTION_LOST): S.CLOSED,
    (S.CONNECTING, I.RESPONSE_2XX): S.OPEN,
    (S.CONNECTING, I.RESPONSE_REJECTED): S.CLOSED,
    (S.CONNECTING, I.CLOSE_SENT): S.CLOSED,
    (S.CONNECTING, I.CLOSE_RECEIVED): S.CLOSED,
    (S.CONNECTING, I.FIN_RECEIVED): S.CLOSED,
    (S.CONNECTING, I.RESET): S.CLOSED,
    (S.CONNECTING, I.CONNECTION_LOST): S.CLOSED,
    (S.OPEN, I.DRAIN_SENT): S.DRAINING,
    (S.OPEN, I.DRAIN_RECEIVED): S.DRAINING,
    (S.OPEN, I.CLOSE_SENT): S.CLOSED,
    (S.OPEN, I.CLOSE_RECEIVED): S.CLOSED,
    (S.OPEN, I.FIN_RECEIVED): S.CLOSED,
    (S.OPEN, I.RESET): S.CLOSED,
    (S.OPEN, I.CONNECTION_LOST): S.CLOSED,
    (S.DRAINING, I.DRAIN_SENT): S.DRAINING,
    (S.DRAINING, I.DRAIN_RECEIVED): S.DRAINING,
    (S.DRAINING, I.CLOSE_SENT): S.CLOSED,
    (S.DRAINING, I.CLOSE_RECEIVED): S.CLOSED,
    (S.DRAINING, I.FIN_RECEIVED): S.CLOSED,
    (S.DRAINING, I.RESET): S.CLOSED,
    (S.DRAINING, I.CONNECTION_LOST): S.CLOSED,
    (S.CLOSED, I.DRAIN_RECEIVED): S.CLOSED,
    (S.CLOSED, I.CLOSE_RECEIVED): S.CLOSED,
    (S.CLOSED, I.FIN_RECEIVED): S.CLOSED,
    (S.CLOSED, I.RESET): S.CLOSED,
    (S.CLOSED, I.CONNECTION_LOST): S.CLOSED,
}


def test_table_is_what_we_document() -> None:
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize(("state", "event"), list(itertools.product(SessionState, SessionInput)))
def test_every_pair(state: SessionState, event: SessionInput) -> None:
    machine = SessionStateMachine(state)
    assert machine.can_process(event) == ((state, event) in EXPECTED)
    if (state, event) in EXPECTED:
        assert machine.process(event) is EXPECTED[(state, event)]
        assert machine.state is EXPECTED[(state, event)]
    else:
        with pytest.raises(SessionStateError) as info:
            machine.process(event)
        assert isinstance(info.value, H3Error)
        assert machine.state is state  # unchanged


@given(st.lists(st.sampled_from(SessionInput), max_size=20))
def test_random_walks_stay_in_table(events: list[SessionInput]) -> None:
    machine = SessionStateMachine()
    for event in events:
        before = machine.state
        try:
            machine.process(event)
        except SessionStateError:
            assert (before, event) not in TRANSITIONS
            assert machine.state is before
        else:
            assert machine.state is TRANSITIONS[(before, event)]


def test_closed_is_terminal() -> None:
    targets = {dst for (src, _), dst in TRANSITIONS.items() if src is S.CLOSED}
    assert targets == {S.CLOSED}
