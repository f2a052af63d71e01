"""Running OR / count along the ``group`` axis of (integration, group, ...) arrays.

``np.logical_or.accumulate`` and ``np.cumsum`` along a non-last axis are very slow in
numpy (strided inner loop, some 50x slower here); a loop over groups, each step a
contiguous operation on a whole group plane, gives the same values.
"""

from __future__ import annotations

import numpy as np


def running_or(mask: np.ndarray) -> np.ndarray:
    """``np.logical_or.accumulate(mask, axis=1)`` of a bool (integration, group, ...) array."""
    out = np.array(mask, dtype=bool, copy=True)
    for g in range(1, out.shape[1]):
        np.logical_or(out[:, g - 1], out[:, g], out=out[:, g])
    return out


def running_count(mask: np.ndarray) -> np.ndarray:
    """``np.cumsum(mask, axis=1)`` of a bool (integration, group, ...) array, int32."""
    out = np.asarray(mask).astype(np.int32)
    for g in range(1, out.shape[1]):
        np.add(out[:, g - 1], out[:, g], out=out[:, g])
    return out
