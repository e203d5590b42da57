"""HPACK/QPACK Huffman coding (RFC 7541 §5.2, Appendix B).

Decoding walks a nibble-indexed state table built once at import: a state is
an internal node of the code tree; each of the 16 transitions gives the next
node and at most one emitted symbol (no code is shorter than 5 bits).
"""

from __future__ import annotations

from ._huffman_table import EOS, HUFFMAN_CODES
from .errors import QpackDecompressionError
from .varint import BytesLike

__all__ = ["huffman_decode", "huffman_encode", "huffman_encoded_length"]

_CODES = tuple(code for code, _ in HUFFMAN_CODES[:256])
_LENGTHS = tuple(length for _, length in HUFFMAN_CODES[:256])

# Transition flags packed next to the state in each table entry.
_EMIT = 0x100
_FAIL = 0x200


def _build_decode_table() -> tuple[list[int], list[bool]]:
    # Build the code tree: children[node] = [left, right]; leaves are encoded as ~symbol.
    children: list[list[int]] = [[0, 0]]
    for symbol, (code, length) in enumerate(HUFFMAN_CODES):
        node = 0
        for shift in range(length - 1, -1, -1):
            bit = (code >> shift) & 1
            if shift == 0:
                children[node][bit] = ~symbol
            else:
                nxt = children[node][bit]
                if nxt == 0:
                    children.append([0, 0])
                    nxt = len(children) - 1
                    children[node][bit] = nxt
                node = nxt

    # A state may end the string if it lies on the all-ones path at depth <= 7
    # (the padding is a prefix of EOS, at most 7 bits long).
    accepting = [False] * len(children)
    node, depth = 0, 0
    while node >= 0 and depth <= 7:
        accepting[node] = True
        node = children[node][1]
        depth += 1

    table = [0] * (len(children) * 16)
    for state in range(len(children)):
        for nibble in range(16):
            node = state
            entry = 0
            for shift in (3, 2, 1, 0):
                nxt = children[node][(nibble >> shift) & 1]
                if nxt < 0:
                    symbol = ~nxt
                    if symbol == EOS:
                        entry = _FAIL
                        break
                    entry = _EMIT | (symbol << 16)
                    node = 0
                else:
                    node = nxt
            if not entry & _FAIL:
                entry |= node << 24
            table[state * 16 + nibble] = entry
    return table, accepting


_DECODE_TABLE, _ACCEPTING = _build_decode_table()


def huffman_encoded_length(data: BytesLike) -> int:
    """Length in bytes of the Huffman encoding of ``data``."""
    lengths = _LENGTHS
    return (sum(lengths[b] for b in data) + 7) >> 3


def huffman_encode(data: BytesLike) -> bytes:
    """Huffman-encode ``data``, padding the last byte with EOS bits."""
    acc = 0
    bits = 0
    codes, lengths = _CODES, _LENGTHS
    for b in data:
        acc = (acc << lengths[b]) | codes[b]
        bits += lengths[b]
    pad = -bits & 7
    acc = (acc << pad) | ((1 << pad) - 1)
    return acc.to_bytes((bits + pad) >> 3, "big")


def huffman_decode(data: BytesLike) -> bytes:
    """Decode a Huffman string; malformed input raises QPACK_DECOMPRESSION_FAILED."""
    table = _DECODE_TABLE
    out = bytearray()
    state = 0
    for byte in data:
        entry = table[(state << 4) | (byte >> 4)]
        if entry & _FAIL:
            raise QpackDecompressionError("EOS symbol in Huffman string")
        if entry & _EMIT:
            out.append((entry >> 16) & 0xFF)
        state = entry >> 24
        entry2 = table[(state << 4) | (byte & 0x0F)]
        if entry2 & _FAIL:
            raise QpackDecompressionError("EOS symbol in Huffman string")
        if entry2 & _EMIT:
            out.append((entry2 >> 16) & 0xFF)
        state = entry2 >> 24
    # The state's depth is the number of bits since the last symbol, so this
    # rejects both padding longer than 7 bits and padding that is not all ones.
    if not _ACCEPTING[state]:
        raise QpackDecompressionError("invalid Huffman padding")
    return bytes(out)
