"""Fast pixel moves into the RGB framebuffer.

numpy is slow at broadcasting along a length-3 last axis and at negative strides (both run
an inner loop of 3), so these copy one colour channel at a time instead: 4-5x faster for a
1024x768 frame.
"""

from __future__ import annotations

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
