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
