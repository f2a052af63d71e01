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

from ._sort_numba import sort_columns

_JIT = dict(cache=True, nogil=True, error_model="numpy")


@numba.njit(**_JIT)
def jump_block(data, bad, usable_pixel, rn2, gain, rejection_threshold, threshold_two,
               threshold_three, pairs, width, jump, ratio_out):
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
    """
    nint, ngroup, npix = data.shape
    ndiff = ngroup - 1
    srt = np.empty((ndiff, width))
    diffs = np.empty((ndiff, width))
    tmp = np.empty(width)
    count = np.empty(width, np.intp)
    for i in range(nint):
        for p0 in range(0, npix, width):
            bw = min(width, npix - p0)
            for j in range(bw):
                count[j] = 0
            for k in range(ndiff):
                for j in range(bw):
                    p = p0 + j
                    d = np.nan
                    if usable_pixel[p] and not (bad[i, k, p] or bad[i, k + 1, p]):
                        d = np.float64(data[i, k + 1, p]) - np.float64(data[i, k, p])
                    diffs[k, j] = d
                    if np.isnan(d):
                        srt[k, j] = np.inf
                    else:
                        srt[k, j] = d
                        count[j] += 1
            sort_columns(srt, pairs, bw, tmp)
            for j in range(bw):
                p = p0 + j
                n = count[j]
                while n >= 2:
                    used = n - 1 if n >= 4 else n  # the largest left out from 4 on
                    lo = 0 if n == 2 else (used - 1) // 2
                    hi = 0 if n == 2 else used // 2
                    ref = 0.5 * (srt[lo, j] + srt[hi, j])
                    sigma = np.sqrt(np.abs(ref) / gain[p] + rn2[p])
                    largest = -1.0
                    for k in range(ndiff):
                        dev = np.abs(diffs[k, j] - ref)
                        if dev > largest:  # NaN (missing) never is
                            largest = dev
                    if largest < 0:
                        break
                    best = largest / sigma
                    if n >= 4:
                        threshold = rejection_threshold
                    elif n == 3:
                        threshold = threshold_three
                    else:
                        threshold = threshold_two
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
                    while srt[pos, j] != value:
                        pos += 1
                    for q in range(pos, n - 1):
                        srt[q, j] = srt[q + 1, j]
                    srt[n - 1, j] = np.inf
                    n -= 1
                    jump[i, hit + 1, p] = True
                    ratio_out[i, hit + 1, p] = np.float32(best)
