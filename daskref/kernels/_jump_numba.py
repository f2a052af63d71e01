"""Compiled two-point difference search (numba): :func:`daskref.kernels.jump.two_point_difference`.

The numpy version sorts the differences of every still-active pixel again on each
round and divides every difference by the noise; at a few hundred nanoseconds per
pixel and integration it was the costliest step of a dark's prep. Here, per run of
``width`` pixels of one integration, bit for bit the same
(``tests/kernels/test_jump_numba.py`` compares bytes):

* the differences are formed in float64 and sorted column-wise by a sorting
  network (:func:`._sort_numba.sort_columns`), missing ones as ``+inf``;
* the reference level is read off the sorted column; the largest ratio is the
  largest absolute deviation over the noise (division by a positive number keeps
  the order, rounding included), so the per-difference ratios are only formed,
  to find the first difference with that ratio, when it is a jump;
* a flagged difference leaves the sorted column by a shift: no new sort.
"""

from __future__ import annotations

import numba
import numpy as np

from .. import dq
from ._sort_numba import sort_columns

_JIT = dict(cache=True, nogil=True, error_model="numpy")
JUMP_DET = np.uint16(dq.JUMP_DET)
#: As :data:`daskref.kernels.jump._NEIGHBOR_BIT`.
NEIGHBOR_BIT = np.uint16(1 << 8)
_UNUSABLE = np.uint16(dq.SATURATED | dq.DO_NOT_USE)


@numba.njit(**_JIT)
def _threshold(n, rejection_threshold, threshold_two, threshold_three):
    """The threshold (sigma) for ``n`` usable differences."""
    if n >= 4:
        return rejection_threshold
    if n == 3:
        return threshold_three
    return threshold_two


@numba.njit(**_JIT)
def jump_block(data, bad, usable_pixel, rn2, gain, rejection_threshold, threshold_two,
               threshold_three, pairs, width, jump, ratio_out, packed_mode, packed,
               flag_neighbors, min_neighbor, max_neighbor):
    """Iterative two-point difference search of (integration, group, pixel) data.

    Parameters
    ----------
    data : ndarray, (integration, group, pixel), DN, any strides
    bad : ndarray of bool, same shape
        Samples that enter no difference.
    usable_pixel : ndarray of bool, (pixel,)
    rn2, gain : ndarray of float64, (pixel,)
        Read-noise variance of a difference (DN^2) and gain (e-/DN).
    rejection_threshold, threshold_two, threshold_three : float
        Thresholds (sigma) with >= 4, 2 and 3 usable differences.
    pairs : ndarray of intp, (ncomparators, 2)
        Sorting network of ``group - 1`` values.
    width : int
        Pixels sorted together.
    jump : ndarray of bool, (integration, group, pixel), False on entry
    ratio_out : ndarray of float32, (integration, group, pixel), 0 on entry
    packed_mode : bool
        Instead of ``jump``/``ratio_out``, mark the jumps in ``packed``: the output
        of :func:`daskref.kernels.jump.detect_jumps_packed`.
    packed : ndarray of uint16, (integration, group, pixel)
        The group DQ on entry; ``JUMP_DET`` added at each jump, and the neighbour
        bit where ``flag_neighbors`` and the ratio (as float32) lies strictly
        between ``min_neighbor`` and ``max_neighbor``.
    """
    min32 = np.float32(min_neighbor)
    max32 = np.float32(max_neighbor)
    nint, ngroup, npix = data.shape
    ndiff = ngroup - 1
    srt = np.empty((ndiff, width))
    diffs = np.empty((ndiff, width))
    tmp = np.empty(width)
    count = np.empty(width, np.intp)
    low = np.empty(width)
    high = np.empty(width)
    cand = np.empty(width, np.intp)
    for i in range(nint):
        for p0 in range(0, npix, width):
            bw = min(width, npix - p0)
            for j in range(bw):
                count[j] = 0
                low[j] = np.inf
                high[j] = -np.inf
            # selects, not branches: the loop runs in vector instructions
            for k in range(ndiff):
                for j in range(bw):
                    p = p0 + j
                    ok = usable_pixel[p] & (not (bad[i, k, p] | bad[i, k + 1, p]))
                    d = np.float64(data[i, k + 1, p]) - np.float64(data[i, k, p])
                    d = d if ok else np.nan
                    diffs[k, j] = d
                    count[j] += d == d
                    low[j] = d if d < low[j] else low[j]
                    high[j] = d if d > high[j] else high[j]
            # Every deviation from the reference level (which lies within the
            # differences' range) is at most the range, and the noise is at least
            # the read noise, both after rounding too: a pixel whose range is within
            # the threshold of its read noise has no jump, and is not searched.
            ncand = 0
            for j in range(bw):
                n = count[j]
                if n < 2:
                    continue
                threshold = _threshold(n, rejection_threshold, threshold_two, threshold_three)
                if (high[j] - low[j]) / np.sqrt(rn2[p0 + j]) > threshold:
                    cand[ncand] = j
                    ncand += 1
            if ncand == 0:
                continue
            for k in range(ndiff):
                for c in range(ncand):
                    d = diffs[k, cand[c]]
                    srt[k, c] = np.inf if np.isnan(d) else d
            sort_columns(srt, pairs, ncand, tmp)
            for c in range(ncand):
                j = cand[c]
                p = p0 + j
                n = count[j]
                while n >= 2:
                    used = n - 1 if n >= 4 else n  # the largest left out from 4 on
                    lo = 0 if n == 2 else (used - 1) // 2
                    hi = 0 if n == 2 else used // 2
                    ref = 0.5 * (srt[lo, c] + srt[hi, c])
                    sigma = np.sqrt(np.abs(ref) / gain[p] + rn2[p])
                    largest = -1.0
                    for k in range(ndiff):
                        dev = np.abs(diffs[k, j] - ref)
                        if dev > largest:  # NaN (missing) never is
                            largest = dev
                    if largest < 0:
                        break
                    best = largest / sigma
                    threshold = _threshold(n, rejection_threshold, threshold_two,
                                           threshold_three)
                    if not best > threshold:
                        break
                    hit = 0
                    for k in range(ndiff):
                        if np.abs(diffs[k, j] - ref) / sigma == best:
                            hit = k
                            break
                    value = diffs[hit, j]
                    diffs[hit, j] = np.nan
                    # out of the sorted column: shift the rest down
                    pos = 0
                    while srt[pos, c] != value:
                        pos += 1
                    for q in range(pos, n - 1):
                        srt[q, c] = srt[q + 1, c]
                    srt[n - 1, c] = np.inf
                    n -= 1
                    r32 = np.float32(best)
                    if packed_mode:
                        v = packed[i, hit + 1, p] | JUMP_DET
                        if flag_neighbors and r32 > min32 and r32 < max32:
                            v |= NEIGHBOR_BIT
                        packed[i, hit + 1, p] = v
                    else:
                        jump[i, hit + 1, p] = True
                        ratio_out[i, hit + 1, p] = r32


@numba.njit(**_JIT)
def unpack_block(packed, out):
    """Stage 2 of the jump search: the group DQ, the neighbours of marked jumps flagged.

    Parameters
    ----------
    packed : ndarray of uint16, (integration, group, y, x), any strides
        Stage 1's output (with its one-pixel halo when run on a chunk).
    out : ndarray of uint8, same shape
        The low byte of ``packed``, plus ``JUMP_DET`` on every sample that is or
        side-neighbours a marked jump, unless ``SATURATED`` or ``DO_NOT_USE``.
    """
    nint, ngroup, ny, nx = packed.shape
    for i in range(nint):
        for g in range(ngroup):
            for yy in range(ny):
                for xx in range(nx):
                    v = packed[i, g, yy, xx]
                    f = np.uint8(v & 0xFF)
                    if (v & _UNUSABLE) == 0 and (f & dq.JUMP_DET) == 0:
                        grow = (v & NEIGHBOR_BIT) != 0
                        if yy > 0 and (packed[i, g, yy - 1, xx] & NEIGHBOR_BIT) != 0:
                            grow = True
                        if yy + 1 < ny and (packed[i, g, yy + 1, xx] & NEIGHBOR_BIT) != 0:
                            grow = True
                        if xx > 0 and (packed[i, g, yy, xx - 1] & NEIGHBOR_BIT) != 0:
                            grow = True
                        if xx + 1 < nx and (packed[i, g, yy, xx + 1] & NEIGHBOR_BIT) != 0:
                            grow = True
                        if grow:
                            f |= np.uint8(dq.JUMP_DET)
                    out[i, g, yy, xx] = f
