"""WebTransport session lifecycle as an explicit transition table.

    IDLE --request_sent/request_received--> CONNECTING
    CONNECTING --response_2xx--> OPEN
    OPEN --drain_sent/drain_received--> DRAINING
    any live state --close/fin/reset/connection_lost--> CLOSED

Rules:
1. Every allowed (state, input) pair is listed in ``TRANSITIONS``; anything
   else raises :class:`SessionStateError` and leaves the state unchanged.
2. CLOSED absorbs the peer's late reaction to our close (its FIN, its own
   CLOSE capsule sent concurrently, a reset, a DRAIN in flight) but not local
   actions: sending after close is a bug.
3. "close_sent" ends the session at once: the CONNECT stream is FINed right
   after the capsule and the session's streams are reset.
"""

from __future__ import annotations

from enum import Enum

from .errors import SessionStateError

__all__ = ["SessionInput", "SessionState", "SessionStateMachine", "TRANSITIONS"]


class SessionState(Enum):
    #: Not yet requested.
    IDLE = "idle"
    #: Extended CONNECT sent or received, no final response yet.
    CONNECTING = "connecting"
    #: A 2xx response was sent or received.
    OPEN = "open"
    #: DRAIN_WEBTRANSPORT_SESSION sent or received; still usable.
    DRAINING = "draining"
    #: Finished; nothing more may be sent.
    CLOSED = "closed"


class SessionInput(Enum):
    REQUEST_SENT = "request_sent"
    REQUEST_RECEIVED = "request_received"
    RESPONSE_2XX = "response_2xx"
    RESPONSE_REJECTED = "response_rejected"
    DRAIN_SENT = "drain_sent"
    DRAIN_RECEIVED = "drain_received"
    CLOSE_SENT = "close_sent"
    CLOSE_RECEIVED = "close_received"
    FIN_RECEIVED = "fin_received"
    RESET = "reset"
    CONNECTION_LOST = "connection_lost"


_S = SessionState
_I = SessionInput

TRANSITIONS: dict[tuple[SessionState, SessionInput], SessionState] = {
    (_S.IDLE, _I.REQUEST_SENT): _S.CONNECTING,
    (_S.IDLE, _I.REQUEST_RECEIVED): _S.CONNECTING,
    (_S.IDLE, _I.CONNECTION_LOST): _S.CLOSED,
    (_S.CONNECTING, _I.RESPONSE_2XX): _S.OPEN,
    (_S.CONNECTING, _I.RESPONSE_REJECTED): _S.CLOSED,
    # The client may give up before the response arrives.
    (_S.CONNECTING, _I.CLOSE_SENT): _S.CLOSED,
    (_S.CONNECTING, _I.CLOSE_RECEIVED): _S.CLOSED,
    (_S.CONNECTING, _I.FIN_RECEIVED): _S.CLOSED,
    (_S.CONNECTING, _I.RESET): _S.CLOSED,
    (_S.CONNECTING, _I.CONNECTION_LOST): _S.CLOSED,
    (_S.OPEN, _I.DRAIN_SENT): _S.DRAINING,
    (_S.OPEN, _I.DRAIN_RECEIVED): _S.DRAINING,
    (_S.OPEN, _I.CLOSE_SENT): _S.CLOSED,
    (_S.OPEN, _I.CLOSE_RECEIVED): _S.CLOSED,
    (_S.OPEN, _I.FIN_RECEIVED): _S.CLOSED,
    (_S.OPEN, _I.RESET): _S.CLOSED,
    (_S.OPEN, _I.CONNECTION_LOST): _S.CLOSED,
    (_S.DRAINING, _I.DRAIN_SENT): _S.DRAINING,
    (_S.DRAINING, _I.DRAIN_RECEIVED): _S.DRAINING,
    (_S.DRAINING, _I.CLOSE_SENT): _S.CLOSED,
    (_S.DRAINING, _I.CLOSE_RECEIVED): _S.CLOSED,
    (_S.DRAINING, _I.FIN_RECEIVED): _S.CLOSED,
    (_S.DRAINING, _I.RESET): _S.CLOSED,
    (_S.DRAINING, _I.CONNECTION_LOST): _S.CLOSED,
    (_S.CLOSED, _I.DRAIN_RECEIVED): _S.CLOSED,
    (_S.CLOSED, _I.CLOSE_RECEIVED): _S.CLOSED,
    (_S.CLOSED, _I.FIN_RECEIVED): _S.CLOSED,
    (_S.CLOSED, _I.RESET): _S.CLOSED,
    (_S.CLOSED, _I.CONNECTION_LOST): _S.CLOSED,
}


class SessionStateMachine:
    """Tracks one session's state; :meth:`process` applies one input."""

    __slots__ = ("state",)

    def __init__(self, state: SessionState = SessionState.IDLE) -> None:
        self.state = state

    def can_process(self, event: SessionInput) -> bool:
        return (self.state, event) in TRANSITIONS

    def process(self, event: SessionInput) -> SessionState:
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise SessionStateError(
                f"invalid session input {event.value!r} in state {self.state.value!r}"
            ) from None
        return self.state
