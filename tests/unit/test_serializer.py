"""Serializers: typed round trips, errors, and the optional extras."""

from __future__ import annotations

import datetime
import enum
import sys
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from pywebtransport.exceptions import SerializationError
from pywebtransport.serializer import JSONSerializer, MsgPackSerializer, ProtobufSerializer, from_plain


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Point:
    x: int
    y: float = 0.0


@dataclass
class Shape:
    name: str
    points: list[Point]
    color: Color
    tags: dict[str, int] = field(default_factory=dict)
    parent: Point | None = None
    blob: bytes = b""
    ident: uuid.UUID = field(default_factory=lambda: uuid.UUID(int=7))
    when: datetime.datetime = datetime.datetime(2026, 1, 2, 3, 4, 5)
    pair: tuple[int, str] = (1, "a")
    price: Decimal = Decimal("1.25")


SHAPE = Shape(
    name="tri",
    points=[Point(1, 2.5), Point(3)],
    color=Color.BLUE,
    tags={"a": 1},
    parent=Point(9, 9.0),
    blob=b"\x00\xffbinary",
)


@pytest.mark.parametrize("serializer", [JSONSerializer(), MsgPackSerializer()], ids=["json", "msgpack"])
def test_dataclass_round_trip(serializer: JSONSerializer | MsgPackSerializer) -> None:
    data = serializer.serialize(SHAPE)
    assert isinstance(data, bytes)
    assert serializer.deserialize(data, Shape) == SHAPE
    # Without a type the plain form comes back.
    plain = serializer.deserialize(data)
    assert plain["points"][0] == {"x": 1, "y": 2.5}


@pytest.mark.parametrize("serializer", [JSONSerializer(), MsgPackSerializer()], ids=["json", "msgpack"])
def test_wrong_shapes_raise(serializer: JSONSerializer | MsgPackSerializer) -> None:
    with pytest.raises(SerializationError, match="missing field 'x'"):
        serializer.deserialize(serializer.serialize({"y": 1.0}), Point)
    with pytest.raises(SerializationError, match="expected int"):
        serializer.deserialize(serializer.serialize({"x": "1"}), Point)
    with pytest.raises(SerializationError, match="unknown fields"):
        serializer.deserialize(serializer.serialize({"x": 1, "z": 2}), Point)
    with pytest.raises(SerializationError):
        serializer.deserialize(b"\xc1\xff{not valid", Point)
    with pytest.raises(SerializationError, match="cannot serialize"):
        serializer.serialize(object())


def test_json_bytes_are_base64_and_output_is_compact() -> None:
    s = JSONSerializer(sort_keys=True)
    assert s.serialize({"b": b"\x01\x02", "a": [1, 2]}) == b'{"a":[1,2],"b":"AQI="}'
    assert from_plain("AQI=", bytes) == b"\x01\x02"
    with pytest.raises(SerializationError, match="base64"):
        from_plain("***", bytes)


def test_unions_literals_and_containers() -> None:
    assert from_plain([1, "x"], list[int | str]) == [1, "x"]
    assert from_plain(None, int | None) is None
    assert from_plain({"1": [1, 2]}, dict[str, set[int]]) == {"1": {1, 2}}
    with pytest.raises(SerializationError, match="fits none"):
        from_plain(1.5, int | str)
    assert from_plain(True, bool) is True
    with pytest.raises(SerializationError):
        from_plain(True, int)  # bool is not accepted for int


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "msgpack", None)
    with pytest.raises(ImportError, match=r'pywebtransport\[msgpack\]'):
        MsgPackSerializer()
    monkeypatch.setitem(sys.modules, "google.protobuf.message", None)
    with pytest.raises(ImportError, match=r'pywebtransport\[protobuf\]'):
        ProtobufSerializer()


def _protobuf_class() -> type:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name="pwt_test.proto", package="pwt", syntax="proto3")
    msg = fdp.message_type.add(name="Chat")
    msg.field.add(name="user", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    msg.field.add(name="seq", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("pwt.Chat"))


def test_protobuf_round_trip() -> None:
    chat = _protobuf_class()
    s = ProtobufSerializer(chat)
    data = s.serialize(chat(user="ann", seq=42))
    back = s.deserialize(data)
    assert (back.user, back.seq) == ("ann", 42)
    assert s.deserialize(data, chat).seq == 42
    with pytest.raises(SerializationError, match="protobuf messages"):
        s.serialize(Point(1))
    with pytest.raises(SerializationError, match="invalid Chat"):
        s.deserialize(b"\xff\xff\xff", chat)
    with pytest.raises(SerializationError, match="message class"):
        ProtobufSerializer().deserialize(data)
