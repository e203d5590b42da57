"""WebTransport receive-credit policy: when to raise WT_MAX_DATA / WT_MAX_STREAMS.

Pure functions of the current state, the time ``now`` and the round-trip
time ``rtt`` (both in seconds, supplied by the caller: this module reads no
clock).  The adapter keeps one :class:`ReceiveCredit` per session, calls
:func:`data_consumed` as the application reads payload and
:func:`peer_stream_finished` as peer-opened streams end, and sends the
capsules for the limits they return.

Auto-scaling: when the window is used up within a few round trips, the
window limits throughput, so it doubles (up to ``max_scale`` times the
configured window).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = [
    "DEFAULT_MAX_SCALE",
    "ReceiveCredit",
    "data_consumed",
    "new_receive_credit",
    "peer_stream_finished",
]

#: Largest auto-scaled window, as a multiple of the configured one.
DEFAULT_MAX_SCALE = 16
#: The window doubles when it was used up within this many round trips.
_FAST_RTTS = 4


@dataclass(frozen=True, slots=True)
class ReceiveCredit:
    """Receive-side credit one session granted the peer."""

    #: Payload bytes the application consumed so far.
    consumed: int
    #: The WT_MAX_DATA we announced last.
    max_data: int
    #: Current window (bytes granted beyond what was consumed).
    window: int
    #: When ``max_data`` was last raised (the caller's clock).
    granted_at: float
    #: Peer-opened streams that finished: bidirectional, unidirectional.
    closed_bidi: int = 0
    closed_uni: int = 0
    #: The WT_MAX_STREAMS we announced last: bidirectional, unidirectional.
    max_streams_bidi: int = 0
    max_streams_uni: int = 0


def new_receive_credit(
    initial_max_data: int, initial_max_streams_bidi: int, initial_max_streams_uni: int, window: int, now: float
) -> ReceiveCredit:
    """Credit state right after SETTINGS announced the initial limits."""
    return ReceiveCredit(
        consumed=0,
        max_data=initial_max_data,
        window=window,
        granted_at=now,
        max_streams_bidi=initial_max_streams_bidi,
        max_streams_uni=initial_max_streams_uni,
    )


def data_consumed(
    credit: ReceiveCredit,
    n: int,
    now: float,
    rtt: float,
    *,
    base_window: int,
    auto_scale: bool = True,
    max_scale: int = DEFAULT_MAX_SCALE,
) -> tuple[ReceiveCredit, int | None]:
    """Account ``n`` consumed payload bytes.

    Returns the new state and the WT_MAX_DATA to announce, or ``None`` while
    more than half of the window is still unused.
    """
    if n <= 0:
        return credit, None
    consumed = credit.consumed + n
    if credit.max_data - consumed >= credit.window // 2:
        return replace(credit, consumed=consumed), None
    window = credit.window
    if auto_scale and now - credit.granted_at < _FAST_RTTS * rtt:
        window = min(window * 2, base_window * max_scale)
    max_data = consumed + window
    return replace(credit, consumed=consumed, window=window, granted_at=now, max_data=max_data), max_data


def peer_stream_finished(
    credit: ReceiveCredit, bidi: bool, initial: int, increment: int
) -> tuple[ReceiveCredit, int | None]:
    """Account one finished peer-opened stream.

    Returns the new state and the WT_MAX_STREAMS (of that direction) to
    announce once at least ``min(increment, initial // 2)`` (and at least
    one) streams can be added, else ``None``.
    """
    closed = (credit.closed_bidi if bidi else credit.closed_uni) + 1
    announced = credit.max_streams_bidi if bidi else credit.max_streams_uni
    target = closed + initial
    step = max(1, min(increment, initial // 2))
    if target - announced < step:
        new = replace(credit, closed_bidi=closed) if bidi else replace(credit, closed_uni=closed)
        return new, None
    if bidi:
        return replace(credit, closed_bidi=closed, max_streams_bidi=target), target
    return replace(credit, closed_uni=closed, max_streams_uni=target), target
