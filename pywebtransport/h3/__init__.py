"""Sans-IO HTTP/3, QPACK and WebTransport-over-HTTP/3 protocol core.

Pure state machines: bytes and events in, events and bytes out.  Nothing here
imports asyncio or the native QUIC layer; the asyncio adapter drives
:class:`H3Connection` and owns every stream and datagram.

Wire coverage: RFC 9114 framing and stream rules, RFC 9204 QPACK with the
static table only (we advertise a zero-capacity dynamic table), RFC 9297
capsules and datagrams, and WebTransport draft-02 (Chromium, aioquic,
wtransport) plus drafts 13-16 (webtransport-go) with one SETTINGS set.
"""

from __future__ import annotations

from .connection import H3Config, H3Connection
from .errors import ErrorCode, H3Error, H3StreamError, H3UsageError
from .events import *  # noqa: F403
from .events import __all__ as _events_all
from .session_state import SessionInput, SessionState

__all__ = [
    "ErrorCode",
    "H3Config",
    "H3Connection",
    "H3Error",
    "H3StreamError",
    "H3UsageError",
    "SessionInput",
    "SessionState",
    *_events_all,
]
