"""Serializers: turn Python objects into bytes and back, with typed round trips of dataclasses.

Three serializers share one interface (`Serializer`):

* `JSONSerializer` - stdlib only; bytes travel as base64 strings.
* `MsgPackSerializer` - needs the ``msgpack`` package (``pip install "pywebtransport[msgpack]"``).
* `ProtobufSerializer` - needs ``protobuf`` (``pip install "pywebtransport[protobuf]"``); objects are
  protobuf messages, which carry their own schema.

``deserialize(data, obj_type)`` rebuilds typed values from the plain wire form: dataclasses
(nested, with defaults), ``list``/``tuple``/``set``/``dict`` of typed items, ``X | None`` and other
unions, ``Enum``, ``UUID``, ``datetime``/``date``, ``bytes`` and ``Decimal``. A value that does not
fit the requested type raises `SerializationError` instead of producing a half-typed object.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import importlib
import json
import types
import typing
import uuid
from abc import ABC, abstractmethod
from typing import Any

from .exceptions import SerializationError

__all__ = [
    "JSONSerializer",
    "MsgPackSerializer",
    "ProtobufSerializer",
    "Serializer",
    "from_plain",
    "to_plain",
]


def _require(module: str, extra: str, user: str) -> Any:
    """Import an optional dependency, or fail with the pip command that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{user} needs the optional dependency {module!r}: "
            f'install it with pip install "pywebtransport[{extra}]"',
            name=module,
        ) from exc


# -- plain <-> typed conversion -------------------------------------------------------------


def to_plain(obj: Any, *, bytes_as_base64: bool = False) -> Any:
    """Convert ``obj`` into JSON/MsgPack-friendly values (dicts, lists, str, numbers, None).

    Dataclasses become dicts of their fields; enums their value; UUID, datetime, date and
    Decimal their string form; tuples and sets lists. Bytes stay bytes unless
    ``bytes_as_base64`` (JSON has no bytes type).
    """
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, enum.Enum):
        return to_plain(obj.value, bytes_as_base64=bytes_as_base64)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        raw = bytes(obj)
        return base64.b64encode(raw).decode("ascii") if bytes_as_base64 else raw
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_plain(getattr(obj, f.name), bytes_as_base64=bytes_as_base64)
            for f in dataclasses.fields(obj)
        }
    if isinstance(obj, dict):
        return {
            _plain_key(k): to_plain(v, bytes_as_base64=bytes_as_base64) for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_plain(v, bytes_as_base64=bytes_as_base64) for v in obj]
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, (datetime.datetime, datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, decimal.Decimal):
        return str(obj)
    raise SerializationError(f"cannot serialize an object of type {type(obj).__name__}")


def _plain_key(key: Any) -> Any:
    if isinstance(key, enum.Enum):
        return key.value
    if isinstance(key, uuid.UUID):
        return str(key)
    return key


_NONE_TYPE = type(None)


def from_plain(value: Any, obj_type: Any) -> Any:
    """Rebuild a value of ``obj_type`` from its plain form (the inverse of `to_plain`).

    ``obj_type`` may be ``None`` or ``Any`` (the value is returned unchanged). Raises
    `SerializationError` when the value does not fit the type.
    """
    try:
        return _convert(value, obj_type, "$")
    except SerializationError:
        raise
    except (TypeError, ValueError, KeyError, decimal.InvalidOperation) as exc:
        raise SerializationError(f"cannot convert to {_type_name(obj_type)}: {exc}") from exc


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or repr(tp)


def _mismatch(value: Any, tp: Any, path: str) -> SerializationError:
    return SerializationError(
        f"{path}: expected {_type_name(tp)}, got {type(value).__name__} {value!r:.60}"
    )


def _convert(value: Any, tp: Any, path: str) -> Any:
    if tp is None or tp is Any or tp is object:
        return value
    if tp is _NONE_TYPE:
        if value is not None:
            raise _mismatch(value, tp, path)
        return None
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _convert(value, typing.get_args(tp)[0], path)
    if origin is typing.Union or origin is types.UnionType:
        options = typing.get_args(tp)
        if value is None and _NONE_TYPE in options:
            return None
        errors = []
        for option in options:
            if option is _NONE_TYPE:
                continue
            try:
                return _convert(value, option, path)
            except (SerializationError, TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise SerializationError(f"{path}: {value!r:.60} fits none of {tp}: {'; '.join(errors)}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise _mismatch(value, tp, path)
        return value
    if origin in (list, tuple, set, frozenset, dict) or origin is not None:
        return _convert_generic(value, tp, origin, path)
    if isinstance(tp, type):
        return _convert_class(value, tp, path)
    if isinstance(tp, typing.TypeVar) or isinstance(tp, str):
        return value
    raise SerializationError(f"{path}: unsupported type annotation {tp!r}")


def _convert_generic(value: Any, tp: Any, origin: Any, path: str) -> Any:
    args = typing.get_args(tp)
    if origin in (list, set, frozenset):
        if not isinstance(value, (list, tuple, set, frozenset)):
            raise _mismatch(value, tp, path)
        item = args[0] if args else Any
        items = [_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        return origin(items) if origin is not list else items
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _mismatch(value, tp, path)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise SerializationError(f"{path}: expected {len(args)} items, got {len(value)}")
        if not args:
            return tuple(value)
        return tuple(_convert(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, dict):
            raise _mismatch(value, tp, path)
        key_t, val_t = args if args else (Any, Any)
        return {
            _convert(k, key_t, f"{path}.<key>"): _convert(v, val_t, f"{path}[{k!r}]")
            for k, v in value.items()
        }
    import collections.abc as cabc

    if origin in (cabc.Sequence, cabc.MutableSequence, cabc.Iterable, cabc.Collection):
        return _convert_generic(value, tp, list, path)
    if origin in (cabc.Mapping, cabc.MutableMapping):
        return _convert_generic(value, tp, dict, path)
    raise SerializationError(f"{path}: unsupported generic type {tp!r}")


def _convert_class(value: Any, tp: type, path: str) -> Any:
    if tp is bool:
        if not isinstance(value, bool):
            raise _mismatch(value, tp, path)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _mismatch(value, tp, path)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _mismatch(value, tp, path)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _mismatch(value, tp, path)
        return value
    if tp is bytes or tp is bytearray:
        if isinstance(value, str):
            try:
                raw = base64.b64decode(value.encode("ascii"), validate=True)
            except (ValueError, UnicodeEncodeError) as exc:
                raise SerializationError(f"{path}: invalid base64 for bytes: {exc}") from exc
        elif isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
        else:
            raise _mismatch(value, tp, path)
        return tp(raw)
    if issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError as exc:
            raise SerializationError(f"{path}: {value!r} is not a valid {tp.__name__}") from exc
    if tp is uuid.UUID:
        if not isinstance(value, str):
            raise _mismatch(value, tp, path)
        return uuid.UUID(value)
    if tp is datetime.datetime:
        if not isinstance(value, str):
            raise _mismatch(value, tp, path)
        return datetime.datetime.fromisoformat(value)
    if tp is datetime.date:
        if not isinstance(value, str):
            raise _mismatch(value, tp, path)
        return datetime.date.fromisoformat(value)
    if tp is decimal.Decimal:
        if not isinstance(value, (str, int)):
            raise _mismatch(value, tp, path)
        return decimal.Decimal(value)
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(value, tp, path)
    if tp in (list, tuple, set, frozenset, dict):
        return _convert_generic(value, tp, tp, path)
    if isinstance(value, tp):
        return value
    raise _mismatch(value, tp, path)


def _convert_dataclass(value: Any, tp: type, path: str) -> Any:
    if not isinstance(value, dict):
        raise _mismatch(value, tp, path)
    try:
        hints = typing.get_type_hints(tp)
    except Exception as exc:  # unresolvable forward references
        raise SerializationError(f"{path}: cannot resolve the field types of {tp.__name__}: {exc}") from exc
    init_kwargs: dict[str, Any] = {}
    later: dict[str, Any] = {}
    known = set()
    for field in dataclasses.fields(tp):
        known.add(field.name)
        if field.name not in value:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                if field.init:
                    raise SerializationError(f"{path}: missing field {field.name!r} of {tp.__name__}")
            continue
        converted = _convert(value[field.name], hints.get(field.name, Any), f"{path}.{field.name}")
        (init_kwargs if field.init else later)[field.name] = converted
    unknown = set(value) - known
    if unknown:
        raise SerializationError(f"{path}: unknown fields for {tp.__name__}: {sorted(map(str, unknown))}")
    obj = tp(**init_kwargs)
    for name, converted in later.items():
        object.__setattr__(obj, name, converted)
    return obj


# -- serializers ------------------------------------------------------------------------------


class Serializer(ABC):
    """Turns objects into bytes and back.

    Implementations raise `SerializationError` for objects they cannot encode and for bytes
    they cannot decode.
    """

    @abstractmethod
    def serialize(self, obj: Any) -> bytes:
        """Encode ``obj``."""

    @abstractmethod
    def deserialize(self, data: bytes, obj_type: Any = None) -> Any:
        """Decode ``data``; with ``obj_type`` the result is converted to that type."""


class JSONSerializer(Serializer):
    """JSON (UTF-8, compact). Dataclasses, enums, UUIDs, dates and bytes (as base64) are supported.

    Args:
        ensure_ascii: Escape non-ASCII characters (off: UTF-8 is smaller).
        sort_keys: Sort dictionary keys, for byte-stable output.
    """

    def __init__(self, ensure_ascii: bool = False, sort_keys: bool = False) -> None:
        self._encoder = json.JSONEncoder(
            ensure_ascii=ensure_ascii, sort_keys=sort_keys, separators=(",", ":"), allow_nan=False
        )

    def serialize(self, obj: Any) -> bytes:
        """Encode ``obj`` as UTF-8 JSON."""
        try:
            return self._encoder.encode(to_plain(obj, bytes_as_base64=True)).encode("utf-8")
        except SerializationError:
            raise
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"cannot encode as JSON: {exc}") from exc

    def deserialize(self, data: bytes, obj_type: Any = None) -> Any:
        """Decode UTF-8 JSON, converted to ``obj_type`` when given."""
        try:
            value = json.loads(bytes(data).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise SerializationError(f"invalid JSON: {exc}") from exc
        return from_plain(value, obj_type)


class MsgPackSerializer(Serializer):
    """MessagePack via the ``msgpack`` package (extra ``pywebtransport[msgpack]``).

    Bytes stay binary on the wire. Raises ImportError naming the extra when ``msgpack`` is
    not installed.
    """

    def __init__(self) -> None:
        self._msgpack = _require("msgpack", "msgpack", "MsgPackSerializer")

    def serialize(self, obj: Any) -> bytes:
        """Encode ``obj`` as MessagePack."""
        try:
            return bytes(self._msgpack.packb(to_plain(obj), use_bin_type=True))
        except SerializationError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(f"cannot encode as MessagePack: {exc}") from exc

    def deserialize(self, data: bytes, obj_type: Any = None) -> Any:
        """Decode MessagePack, converted to ``obj_type`` when given."""
        try:
            value = self._msgpack.unpackb(bytes(data), raw=False, strict_map_key=False)
        except Exception as exc:  # msgpack raises several unrelated exception types
            raise SerializationError(f"invalid MessagePack: {exc}") from exc
        return from_plain(value, obj_type)


class ProtobufSerializer(Serializer):
    """Protocol Buffers via the ``protobuf`` package (extra ``pywebtransport[protobuf]``).

    Args:
        message_class: The message type `deserialize` builds when no ``obj_type`` is given.

    Raises ImportError naming the extra when ``protobuf`` is not installed.
    """

    def __init__(self, message_class: type[Any] | None = None) -> None:
        self._message_module = _require("google.protobuf.message", "protobuf", "ProtobufSerializer")
        self._message_class = message_class

    def serialize(self, obj: Any) -> bytes:
        """Encode a protobuf message."""
        if not isinstance(obj, self._message_module.Message):
            raise SerializationError(
                f"ProtobufSerializer serializes protobuf messages, not {type(obj).__name__}"
            )
        try:
            return bytes(obj.SerializeToString())
        except self._message_module.EncodeError as exc:
            raise SerializationError(f"cannot encode {type(obj).__name__}: {exc}") from exc

    def deserialize(self, data: bytes, obj_type: Any = None) -> Any:
        """Decode a message of ``obj_type`` (or the serializer's ``message_class``)."""
        cls = obj_type if obj_type is not None else self._message_class
        if cls is None or not (isinstance(cls, type) and issubclass(cls, self._message_module.Message)):
            raise SerializationError("ProtobufSerializer.deserialize needs a protobuf message class")
        message = cls()
        try:
            message.ParseFromString(bytes(data))
        except self._message_module.DecodeError as exc:
            raise SerializationError(f"invalid {cls.__name__} message: {exc}") from exc
        return message
