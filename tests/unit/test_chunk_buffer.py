from hypothesis import given
from hypothesis import strategies as st

from pywebtransport.quic.buffer import ChunkBuffer


@given(st.lists(st.binary(max_size=50), max_size=20), st.lists(st.integers(-1, 60), max_size=30))
def test_takes_return_the_appended_bytes_in_order(chunks: list[bytes], takes: list[int]) -> None:
    buf = ChunkBuffer()
    for chunk in chunks:
        buf.append(chunk)
    expected = b"".join(chunks)
    out = b""
    for n in takes:
        before = buf.size
        got = buf.take(n)
        assert len(got) == (before if n < 0 else min(n, before))
        out += got
        assert buf.size == before - len(got)
    out += buf.take()
    assert out == expected and buf.size == 0 and not buf


def test_find_reports_the_end_of_the_separator() -> None:
    buf = ChunkBuffer()
    for part in (b"ab", b"c\nd", b"e\n"):
        buf.append(part)
    assert buf.find(b"\n") == 4
    assert buf.take(4) == b"abc\n"
    assert buf.find(b"\n") == 3
    assert buf.find(b"zz") == -1


@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=8), st.lists(st.integers(1, 90), max_size=40), st.binary(max_size=4))
def test_find_and_take_agree_after_partial_reads(chunks: list[bytes], takes: list[int], sep: bytes) -> None:
    buf = ChunkBuffer()
    for chunk in chunks:
        buf.append(chunk)
    rest = b"".join(chunks)
    for n in takes[: len(takes) // 2]:
        got = buf.take(n)
        assert got == rest[:n]
        rest = rest[len(got) :]
    if sep:
        idx = rest.find(sep)
        assert buf.find(sep) == (-1 if idx < 0 else idx + len(sep))
    for n in takes[len(takes) // 2 :]:
        got = buf.take(n)
        assert got == rest[:n]
        rest = rest[len(got) :]
    assert buf.take() == rest and buf.size == 0


def test_a_large_chunk_read_in_small_pieces_is_copied_once() -> None:
    """The unread part of a chunk is not copied again on every read (was O(n^2) for big chunks)."""
    chunk = bytes(range(256)) * 4096  # 1 MiB
    buf = ChunkBuffer()
    buf.append(chunk)
    out = [buf.take(65536) for _ in range(16)]
    assert b"".join(out) == chunk and buf.size == 0
    assert not buf._chunks and buf._head == 0  # emptied: nothing left, no deque kept
    buf.append(b"abc")
    buf.append(b"def")
    assert buf.take(2) == b"ab" and buf._head == 2 and buf._chunks[0] is not None
    assert buf.take(3) == b"cde"  # spans chunks: only the returned bytes are copied
    assert buf.take() == b"f"


def test_an_emptied_buffer_keeps_no_deque() -> None:
    """Idle streams must not pay for a deque once their bytes were read (memory per session)."""
    buf = ChunkBuffer()
    buf.append(b"settings")
    assert buf.take() == b"settings" and buf._chunks is None
    buf.append(b"abcdef")
    assert buf.take(3) == b"abc" and buf._chunks is not None
    assert buf.take(3) == b"def" and buf._chunks is None and buf.size == 0
    buf.append(b"x\r\ny")
    assert buf.find(b"\r\n") == 3 and buf.take() == b"x\r\ny"
