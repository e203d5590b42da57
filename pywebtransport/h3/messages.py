"""HTTP/3 message (field section) rules of RFC 9114 §4.2-4.3 and RFC 9220."""

from __future__ import annotations

from typing import Sequence

from .errors import MessageError

__all__ = [
    "REQUEST_PSEUDO_HEADERS",
    "RESPONSE_PSEUDO_HEADERS",
    "header_value",
    "parse_status",
    "validate_fields",
    "validate_request",
]

FieldList = Sequence[tuple[bytes, bytes]]

REQUEST_PSEUDO_HEADERS = frozenset((b":method", b":scheme", b":authority", b":path", b":protocol"))
RESPONSE_PSEUDO_HEADERS = frozenset((b":status",))
_CONNECTION_SPECIFIC = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"))


def header_value(headers: FieldList, name: bytes) -> bytes | None:
    """The first value of ``name``, or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


def validate_fields(headers: FieldList, allowed_pseudo: frozenset[bytes]) -> None:
    """Checks shared by requests, responses and trailers (empty ``allowed_pseudo``)."""
    seen_regular = False
    seen_pseudo: set[bytes] = set()
    for name, value in headers:
        if not name:
            raise MessageError("empty field name")
        if name.lower() != name:
            raise MessageError(f"uppercase field name {name!r}")
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
    """Validate a request header section; return ``(method, protocol)``."""
    validate_fields(headers, REQUEST_PSEUDO_HEADERS)
    method = header_value(headers, b":method")
    protocol = header_value(headers, b":protocol")
    scheme = header_value(headers, b":scheme")
    path = header_value(headers, b":path")
    authority = header_value(headers, b":authority")
    if method is None:
        raise MessageError("request without :method")
    if method == b"CONNECT" and protocol is None:
        # Plain CONNECT (RFC 9114 §4.4): only :method and :authority.
        if authority is None or scheme is not None or path is not None:
            raise MessageError("malformed CONNECT request")
    elif method == b"CONNECT":
        # Extended CONNECT (RFC 9220).
        if scheme is None or path is None or authority is None:
            raise MessageError("extended CONNECT lacks :scheme, :path or :authority")
    else:
        if protocol is not None:
            raise MessageError(":protocol outside CONNECT")
        if scheme is None or path is None:
            raise MessageError("request lacks :scheme or :path")
    return method, protocol


def parse_status(headers: FieldList) -> int:
    """Validate a response header section; return its status code."""
    validate_fields(headers, RESPONSE_PSEUDO_HEADERS)
    raw = header_value(headers, b":status")
    if raw is None or len(raw) != 3 or not raw.isdigit():
        raise MessageError("response without a valid :status")
    return int(raw)
