"""ZRLE tile decoding (RFC 6143 section 7.7.6) for 3-byte compact pixels (B, G, R).

The zlib stream itself is owned by :class:`gymlab.rfb.RFBClient`; this module turns the
decompressed bytes of one rectangle into RGB pixels written straight into a framebuffer view.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from gymlab.rfb.pixels import copy_bgr, fill

TILE = 64
_CPIXEL = 3
_MAX_PALETTE = 127


# For 1, 2 and 4 bits per index: byte value -> its 8/bits indices, most significant first.
_UNPACK = {
    bits: (
        (np.arange(256, dtype=np.uint8)[:, None] >> np.arange(8 - bits, -1, -bits, dtype=np.uint8))
        & ((1 << bits) - 1)
    )
    for bits in (1, 2, 4)
}


class ZRLEError(ValueError):
    """The decompressed ZRLE data of a rectangle is malformed."""


def max_decompressed_size(width: int, height: int) -> int:
    """Upper bound of the decompressed bytes a valid encoder can produce for a rectangle.

    Per tile: one sub-encoding byte plus the larger of a full palette and the worst case of
    a run-length tile (every run one pixel long: a pixel/index plus a length byte, <= 4 bytes).
    """
    tiles = -(-width // TILE) * -(-height // TILE)
    return tiles * (1 + _MAX_PALETTE * _CPIXEL) + 4 * width * height


def _bgr_to_rgb(flat: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(flat.reshape(-1, 3)[:, ::-1])


def _run_length(data: bytes | bytearray, off: int, end: int) -> tuple[int, int]:
    """Read a ZRLE run length (1 + sum of bytes, 255 means 'more follow')."""
    length = 1
    while True:
        if off >= end:
            raise ZRLEError("truncated run length")
        b = data[off]
        off += 1
        length += b
        if b != 255:
            return length, off


def decode_rect(data: bytes | bytearray, target: np.ndarray) -> None:
    """Decode one rectangle's decompressed ZRLE bytes into ``target`` (shape (h, w, 3) RGB).

    Raises :class:`ZRLEError` if the data ends early, has bytes left over, uses a reserved
    sub-encoding, a palette index out of range, or runs that overflow a tile.
    """
    for _ in iter_decode(data, target):
        pass


def iter_decode(data: bytes | bytearray, target: np.ndarray) -> Iterator[int]:
    """:func:`decode_rect` one tile per step, yielding the offset reached after each tile.

    Lets a caller pause between tiles: a tile costs at most about a millisecond (a
    run-length tile of 4096 one-pixel runs), a whole rectangle can cost far more.
    """
    height, width = target.shape[:2]
    buf = np.frombuffer(data, dtype=np.uint8)
    end = len(data)
    off = 0
    for ty in range(0, height, TILE):
        th = min(TILE, height - ty)
        for tx in range(0, width, TILE):
            tw = min(TILE, width - tx)
            if off >= end:
                raise ZRLEError("truncated tile header")
            sub = data[off]
            off += 1
            tile = target[ty : ty + th, tx : tx + tw]
            npix = tw * th
            if sub == 0:  # raw
                n = npix * _CPIXEL
                if off + n > end:
                    raise ZRLEError("truncated raw tile")
                copy_bgr(tile, buf[off : off + n].reshape(th, tw, 3))
                off += n
            elif sub == 1:  # solid
                if off + _CPIXEL > end:
                    raise ZRLEError("truncated solid tile")
                fill(tile, buf[off : off + 3][::-1])
                off += 3
            elif 2 <= sub <= 16:  # packed palette
                off = _packed_palette(data, buf, off, end, sub, tile)
            elif sub == 128:  # plain RLE
                off = _plain_rle(data, buf, off, end, tile)
            elif sub >= 130:  # palette RLE
                off = _palette_rle(data, buf, off, end, sub - 128, tile)
            else:
                raise ZRLEError(f"reserved ZRLE sub-encoding {sub}")
            yield off
    if off != end:
        raise ZRLEError(f"{end - off} bytes left over after the last tile")


def _read_palette(buf: np.ndarray, off: int, end: int, size: int) -> tuple[np.ndarray, int]:
    n = size * _CPIXEL
    if off + n > end:
        raise ZRLEError("truncated palette")
    return _bgr_to_rgb(buf[off : off + n]), off + n


def _packed_palette(
    data: bytes | bytearray, buf: np.ndarray, off: int, end: int, size: int, tile: np.ndarray
) -> int:
    th, tw = tile.shape[:2]
    palette, off = _read_palette(buf, off, end, size)
    bits = 1 if size == 2 else 2 if size <= 4 else 4
    row_bytes = (tw * bits + 7) // 8
    n = row_bytes * th
    if off + n > end:
        raise ZRLEError("truncated packed-palette tile")
    packed = buf[off : off + n].reshape(th, row_bytes)
    # rows are padded to whole bytes: drop the indices past the tile width
    idx = np.take(_UNPACK[bits], packed, axis=0).reshape(th, -1)[:, :tw]
    if size < (1 << bits) and int(idx.max()) >= size:
        raise ZRLEError("palette index out of range")
    # np.take is several times faster than fancy indexing here
    tile[...] = np.take(palette, idx, axis=0)
    return off + n


def _fill_runs(
    tile: np.ndarray, colours: np.ndarray, lengths: list[int], filled: int, npix: int
) -> None:
    if filled != npix:
        raise ZRLEError("runs overflow the tile")
    th, tw = tile.shape[:2]
    tile[...] = np.repeat(colours, lengths, axis=0).reshape(th, tw, 3)


def _plain_rle(
    data: bytes | bytearray, buf: np.ndarray, off: int, end: int, tile: np.ndarray
) -> int:
    npix = tile.shape[0] * tile.shape[1]
    starts: list[int] = []
    lengths: list[int] = []
    filled = 0
    while filled < npix:
        if off + _CPIXEL > end:
            raise ZRLEError("truncated RLE run")
        starts.append(off)
        length, off = _run_length(data, off + _CPIXEL, end)
        lengths.append(length)
        filled += length
    pos = np.asarray(starts, dtype=np.intp)[:, None] + np.array([2, 1, 0], dtype=np.intp)
    _fill_runs(tile, buf[pos], lengths, filled, npix)
    return off


def _palette_rle(
    data: bytes | bytearray, buf: np.ndarray, off: int, end: int, size: int, tile: np.ndarray
) -> int:
    npix = tile.shape[0] * tile.shape[1]
    palette, off = _read_palette(buf, off, end, size)
    indices: list[int] = []
    lengths: list[int] = []
    filled = 0
    while filled < npix:
        if off >= end:
            raise ZRLEError("truncated palette RLE run")
        b = data[off]
        off += 1
        index = b & 0x7F
        if index >= size:
            raise ZRLEError("palette index out of range")
        if b & 0x80:
            length, off = _run_length(data, off, end)
        else:
            length = 1
        indices.append(index)
        lengths.append(length)
        filled += length
    _fill_runs(tile, np.take(palette, indices, axis=0), lengths, filled, npix)
    return off
