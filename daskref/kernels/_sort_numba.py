"""Column-wise sorting of (sample, pixel) buffers by a sorting network (numba).

Many short sorts (a pixel's samples of one group, its group differences) cost more
in call overhead and branch misses than in comparisons when done one by one. A
sorting network applies the same compare-exchange steps to every column, so one
pass sorts a few hundred pixels at once in vector instructions.
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np


@lru_cache(maxsize=64)
def sorting_network(n: int) -> np.ndarray:
    """Comparators ``(lower, upper)`` of Batcher's odd-even merge sort of ``n`` values.

    Built for the next power of two and pruned to the first ``n`` wires: the
    padding would hold ``+inf``, which no comparator ever moves.

    Returns
    -------
    ndarray of intp, (ncomparators, 2)
    """
    size = 1
    while size < n:
        size *= 2
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p) and i + j + k < n:
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return np.array(pairs, dtype=np.intp).reshape(-1, 2)


# Only min and max here, on values without NaN: "no NaN" and "no signed zeros" let
# the compiler use the vector min/max instructions (a -0.0/+0.0 tie may come out in
# either order, as from any sort).
@numba.njit(cache=True, nogil=True, fastmath={"nnan", "nsz"})
def sort_columns(buf, pairs, width, tmp):
    """Sort the columns of ``buf[:, :width]`` (no NaN) in place with the comparators."""
    for k in range(pairs.shape[0]):
        a = buf[pairs[k, 0]]
        b = buf[pairs[k, 1]]
        for j in range(width):
            tmp[j] = a[j]
        for j in range(width):
            u = tmp[j]
            v = b[j]
            a[j] = min(u, v)
            b[j] = max(u, v)
