"""Fast pixel moves into the RGB framebuffer.

numpy is slow at broadcasting along a length-3 last axis and at negative strides (both run
an inner loop of 3), so these copy one colour channel at a time instead: 4-5x faster for a
1024x768 frame.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def copy_bgr(target: np.ndarray, src: np.ndarray) -> None:
    """Copy ``src`` (h, w, >=3) with channels B, G, R[, X] into ``target`` (h, w, 3) RGB."""
    target[:, :, 0] = src[:, :, 2]
    target[:, :, 1] = src[:, :, 1]
    target[:, :, 2] = src[:, :, 0]


def fill(target: np.ndarray, rgb: np.ndarray) -> None:
    """Fill ``target`` (h, w, 3) with one RGB colour."""
    row = np.empty((target.shape[1], 3), dtype=np.uint8)
    row[:] = rgb
    target[:] = row


#: Upper bound of the bytes one CopyRect band moves (and of numpy's temporary for it).
COPY_BAND_BYTES = 1 << 20


def copy_rect_bands(
    fb: np.ndarray,
    src_x: int,
    src_y: int,
    dst_x: int,
    dst_y: int,
    width: int,
    height: int,
    band_bytes: int = COPY_BAND_BYTES,
) -> Iterator[int]:
    """Copy a ``width`` x ``height`` block of ``fb`` (h, w, 3) in row bands; yields per band.

    The copy is done when the iterator is exhausted; each step moves at most ``band_bytes``
    (one row at least) and yields the bytes it moved, so a caller can pause between bands.
    The result equals a copy through a full temporary even when source and destination
    overlap: bands go bottom-up when moving down, top-down otherwise, so no band reads rows
    an earlier band wrote. Within a band numpy buffers the source if the two views may share
    memory, so the temporary never exceeds one band (a plain ``fb[dst] = fb[src]`` of the
    whole block would copy all of it).
    """
    if width <= 0 or height <= 0 or (src_x, src_y) == (dst_x, dst_y):
        return
    rows = max(1, band_bytes // (width * fb.shape[2]))
    starts = range(0, height, rows)
    for top in reversed(starts) if dst_y > src_y else starts:
        n = min(rows, height - top)
        fb[dst_y + top : dst_y + top + n, dst_x : dst_x + width] = fb[
            src_y + top : src_y + top + n, src_x : src_x + width
        ]
        yield n * width * fb.shape[2]
