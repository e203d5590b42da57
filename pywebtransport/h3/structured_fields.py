"""A tiny subset of Structured Field Values (RFC 9651) for WT subprotocols.

``wt-available-protocols`` is an sf-List of sf-Strings and ``wt-protocol`` an
sf-String (drafts 10-12 used Tokens; both are accepted).  Parameters are
parsed and ignored.  Malformed input yields ``None``: the field is ignored.
"""

from __future__ import annotations

import string

__all__ = ["parse_string_list", "parse_string_item", "serialize_string", "serialize_string_list"]

_TOKEN_FIRST = frozenset(string.ascii_letters + "*")
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~:/")
_KEY_FIRST = frozenset(string.ascii_lowercase + "*")
_KEY_CHARS = frozenset(string.ascii_lowercase + string.digits + "_-.*")


class _Invalid(Exception):
    pass


class _Reader:
    __slots__ = ("text", "pos")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip(self, chars: str) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1

    def bare_item(self) -> str:
        ch = self.peek()
        if ch == '"':
            return self.string()
        if ch in _TOKEN_FIRST and ch:
            start = self.pos
            self.pos += 1
            while self.peek() and self.peek() in _TOKEN_CHARS:
                self.pos += 1
            return self.text[start : self.pos]
        raise _Invalid

    def string(self) -> str:
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            self.pos += 1
            if ch == "\\":
                nxt = self.peek()
                if nxt not in ('"', "\\") or not nxt:
                    raise _Invalid
                out.append(nxt)
                self.pos += 1
            elif ch == '"':
                return "".join(out)
            elif not " " <= ch <= "~":
                raise _Invalid
            else:
                out.append(ch)
        raise _Invalid

    def parameters(self) -> None:
        while self.peek() == ";":
            self.pos += 1
            self.skip(" ")
            if not self.peek() or self.peek() not in _KEY_FIRST:
                raise _Invalid
            while self.peek() and self.peek() in _KEY_CHARS:
                self.pos += 1
            if self.peek() == "=":
                self.pos += 1
                self.bare_parameter_value()

    def bare_parameter_value(self) -> None:
        ch = self.peek()
        if ch == "?":
            self.pos += 1
            if self.peek() not in ("0", "1") or not self.peek():
                raise _Invalid
            self.pos += 1
            return
        if ch and (ch.isdigit() or ch == "-"):
            self.pos += 1
            while self.peek() and (self.peek().isdigit() or self.peek() == "."):
                self.pos += 1
            return
        self.bare_item()


def _decode(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii")
    return value


def parse_string_item(value: bytes | str) -> str | None:
    """Parse an sf-Item holding a String (or Token)."""
    try:
        reader = _Reader(_decode(value).strip(" \t"))
        item = reader.bare_item()
        reader.parameters()
        if reader.pos != len(reader.text):
            return None
        return item
    except (_Invalid, UnicodeDecodeError):
        return None


def parse_string_list(value: bytes | str) -> list[str] | None:
    """Parse an sf-List whose members are Strings (or Tokens)."""
    try:
        reader = _Reader(_decode(value).strip(" \t"))
        items: list[str] = []
        while reader.pos < len(reader.text):
            items.append(reader.bare_item())
            reader.parameters()
            reader.skip(" \t")
            if reader.pos == len(reader.text):
                break
            if reader.peek() != ",":
                return None
            reader.pos += 1
            reader.skip(" \t")
            if reader.pos == len(reader.text):
                return None
        return items
    except (_Invalid, UnicodeDecodeError):
        return None


def serialize_string(value: str) -> bytes:
    """Serialize ``value`` as an sf-String (printable ASCII only)."""
    if any(not " " <= ch <= "~" for ch in value):
        raise ValueError(f"not serializable as sf-String: {value!r}")
    return ('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"').encode("ascii")


def serialize_string_list(values: list[str] | tuple[str, ...]) -> bytes:
    return b", ".join(serialize_string(v) for v in values)
