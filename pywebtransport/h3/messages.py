"""HTTP/3 message (field section) rules of RFC 9114 §4.2-4.3 and RFC 9220."""

from __future__ import annotations

import functools
import re
from typing import Sequence

from .errors import MessageError

__all__ = [
    "REQUEST_PSEUDO_HEADERS",
    "RESPONSE_PSEUDO_HEADERS",
    "WEBTRANSPORT_PROTOCOLS",
    "header_value",
    "parse_status",
    "validate_fields",
    "validate_request",
]

FieldList = Sequence[tuple[bytes, bytes]]

REQUEST_PSEUDO_HEADERS = frozenset((b":method", b":scheme", b":authority", b":path", b":protocol"))
RESPONSE_PSEUDO_HEADERS = frozenset((b":status",))
#: ``:protocol`` values of WebTransport's extended CONNECT (draft-02 and draft-13+).
WEBTRANSPORT_PROTOCOLS = frozenset((b"webtransport", b"webtransport-h3"))
# RFC 9110 §5.1 token characters, lowercase only (RFC 9114 §4.2).
_FIELD_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+\Z")
# RFC 9114 §4.2 / §10.3: NUL, LF and CR are never allowed in a field value.
_BAD_VALUE_CHAR = re.compile(rb"[\x00\n\r]")
_CONNECTION_SPECIFIC = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"))


def header_value(headers: FieldList, name: bytes) -> bytes | None:
    """The first value of ``name``, or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


# Field lines repeat (every request of a client, every response of a server carries the
# same short fields): their per-field checks are cached.  Only fields that passed are
# remembered, and only short ones, so the cache is bounded in entries and bytes.
_CACHED_FIELD = 256


def _check_field_uncached(name: bytes, value: bytes) -> None:
    if not name:
        raise MessageError("empty field name")
    if name.lower() != name:
        raise MessageError(f"uppercase field name {name!r}")
    if _FIELD_NAME.match(name, 1 if name[0] == 0x3A else 0) is None:
        raise MessageError(f"invalid character in field name {name!r}")
    if _BAD_VALUE_CHAR.search(value) is not None:
        raise MessageError(f"CR, LF or NUL in the value of {name!r}")


_check_field_cached = functools.lru_cache(maxsize=512)(_check_field_uncached)


def validate_fields(headers: FieldList, allowed_pseudo: frozenset[bytes]) -> None:
    """Checks shared by requests, responses and trailers (empty ``allowed_pseudo``)."""
    seen_regular = False
    seen_pseudo: set[bytes] = set()
    for name, value in headers:
        if len(name) + len(value) <= _CACHED_FIELD and type(name) is bytes and type(value) is bytes:
            _check_field_cached(name, value)
        else:
            _check_field_uncached(name, value)
        if name[0] == 0x3A:  # ':'
            if seen_regular:
                raise MessageError("pseudo-header after regular field")
            if name not in allowed_pseudo:
                raise MessageError(f"pseudo-header {name!r} not allowed here")
            if name in seen_pseudo:
                raise MessageError(f"duplicate pseudo-header {name!r}")
            seen_pseudo.add(name)
        else:
            seen_regular = True
            if name in _CONNECTION_SPECIFIC or (name == b"te" and value != b"trailers"):
                raise MessageError(f"connection-specific field {name!r}")


def validate_request(headers: FieldList) -> tuple[bytes, bytes | None]:
    """Validate a request header section; return ``(method, protocol)``.

    Malformed requests (RFC 9114 §4.1.2, §4.3.1; RFC 9220 §3;
    draft-ietf-webtrans-http3 §3.1) raise :class:`MessageError`.
    """
    validate_fields(headers, REQUEST_PSEUDO_HEADERS)
    method = header_value(headers, b":method")
    protocol = header_value(headers, b":protocol")
    scheme = header_value(headers, b":scheme")
    path = header_value(headers, b":path")
    authority = header_value(headers, b":authority")
    if not method:
        raise MessageError("request without :method")
    if method == b"CONNECT" and protocol is None:
        # Plain CONNECT (RFC 9114 §4.4): only :method and :authority.
        if not authority or scheme is not None or path is not None:
            raise MessageError("malformed CONNECT request")
        return method, protocol
    if method == b"CONNECT":
        # Extended CONNECT (RFC 9220).
        if scheme is None or path is None or authority is None:
            raise MessageError("extended CONNECT lacks :scheme, :path or :authority")
        if not protocol:
            raise MessageError("empty :protocol")
        if protocol in WEBTRANSPORT_PROTOCOLS and scheme != b"https":
            raise MessageError("WebTransport needs :scheme https")
    else:
        if protocol is not None:
            raise MessageError(":protocol outside CONNECT")
        if scheme is None or path is None:
            raise MessageError("request lacks :scheme or :path")
    if not scheme:
        raise MessageError("empty :scheme")
    if scheme in (b"http", b"https"):
        # RFC 9114 §4.3.1: non-empty; origin-form, or "*" for OPTIONS.
        if not path.startswith(b"/") and not (path == b"*" and method == b"OPTIONS"):
            raise MessageError(f"invalid :path {path!r}")
        if authority is None:
            if not header_value(headers, b"host"):
                raise MessageError("request lacks :authority and Host")
        elif not authority:
            raise MessageError("empty :authority")
    elif not path:
        raise MessageError("empty :path")
    return method, protocol


def parse_status(headers: FieldList) -> int:
    """Validate a response header section; return its status code."""
    validate_fields(headers, RESPONSE_PSEUDO_HEADERS)
    raw = header_value(headers, b":status")
    if raw is None or len(raw) != 3 or not raw.isdigit():
        raise MessageError("response without a valid :status")
    status = int(raw)
    if not 100 <= status <= 599:
        raise MessageError(f":status {status} is out of range")
    if status == 101:
        # RFC 9114 §4.5: Switching Protocols has no place in HTTP/3.
        raise MessageError("101 (Switching Protocols) is not allowed in HTTP/3")
    return status
