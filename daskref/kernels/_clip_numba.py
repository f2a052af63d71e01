"""Compiled row loop of :func:`daskref.kernels.stats.sigma_clip_stats` (numba).

The numpy version sorts every pixel's samples, then runs each clipping pass over
the whole chunk with fancy indexing (``take_along_axis``) and full-size temporaries:
most of the DARK's and the MASK's time went there. This loop does the same
arithmetic, pixel by pixel, in the same order and precision, so the results are
bit-identical (``tests/kernels/test_stats.py`` checks it against the numpy version):

* the samples are sorted (NaN dropped: they sort last and no comparison counts
  them), shifted by the same reference element in the samples' precision;
* prefix sums of values and squares accumulate sequentially in that precision
  (what ``np.cumsum`` does); moments, medians and thresholds are float64;
* a pixel stops when its window no longer changes or after ``maxiters`` passes.
  The numpy version stops when no pixel of the chunk changes, but a pass over an
  unchanged window changes nothing, so the extra passes it runs are no-ops.

``error_model='numpy'``: 0/0 is NaN as in numpy, not an exception; no fastmath,
so nothing is reassociated or contracted into fused multiply-adds.
"""

from __future__ import annotations

import numba
import numpy as np

_SMALL = 48  # insertion sort up to this many samples (a pixel's dozens), else quicksort


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _moments(p1, p2, lo, hi):
    n = hi - lo
    s1 = np.float64(p1[hi]) - np.float64(p1[lo])
    s2 = np.float64(p2[hi]) - np.float64(p2[lo])
    mean = s1 / n
    m2 = s2 - s1 * mean
    if m2 < 0.0:  # as np.maximum(m2, 0): a NaN stays NaN
        m2 = 0.0
    return n, mean, m2


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _median_at(c, lo, hi, last):
    i_lo = min(max((lo + hi - 1) // 2, 0), last)
    i_hi = min(max((lo + hi) // 2, 0), last)
    return 0.5 * (np.float64(c[i_lo]) + np.float64(c[i_hi]))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def clip_rows(x, sigma, maxiters, clip, ddof, mean, var, n_out, bound, median):
    """Sigma-clip each row of ``x`` (npix, nsample); write the per-row results.

    Parameters
    ----------
    x : ndarray, (npix, nsample), float32 or float64, C-contiguous
        Samples (NaN: missing).
    sigma : float
        Threshold, standard deviations about the median.
    maxiters : int
        Maximum passes; -1 for no limit.
    clip : bool
        False: no clipping pass at all (``sigma`` infinite or ``maxiters`` 0).
    ddof : float
    mean, var, bound, median : ndarray of float64, (npix,)
        Outputs, as :class:`~daskref.kernels.stats.ClippedStats`.
    n_out : ndarray of intp, (npix,)
        Output: survivors.
    """
    npix, ns = x.shape
    c = np.empty(ns, x.dtype)
    p1 = np.zeros(ns + 1, x.dtype)
    p2 = np.zeros(ns + 1, x.dtype)
    last = ns - 1
    for i in range(npix):
        m = 0
        for j in range(ns):
            v = x[i, j]
            if not np.isnan(v):
                c[m] = v
                m += 1
        if m <= _SMALL:
            for j in range(1, m):
                v = c[j]
                k = j - 1
                while k >= 0 and c[k] > v:
                    c[k + 1] = c[k]
                    k -= 1
                c[k + 1] = v
        else:
            c[:m].sort()
        ref = c[max((m - 1) // 2, 0)] if m > 0 else x.dtype.type(0)
        s1 = x.dtype.type(0)
        s2 = x.dtype.type(0)
        for j in range(m):
            v = c[j] - ref
            c[j] = v
            s1 += v
            p1[j + 1] = s1
            s2 += v * v
            p2[j + 1] = s2
        lo = 0
        hi = m
        b = np.inf
        iteration = 0
        while clip:
            n, mu, m2 = _moments(p1, p2, lo, hi)
            std = np.sqrt(m2 / n)
            med = _median_at(c, lo, hi, last)
            t = sigma * std
            if n > 0:
                below = med - t
                above = med + t
                below_lo = 0
                upto_hi = 0
                for j in range(m):
                    v = np.float64(c[j])
                    if v < below:
                        below_lo += 1
                    if v <= above:
                        upto_hi += 1
                new_lo = max(lo, below_lo)
                new_hi = min(hi, upto_hi)
                b = t
            else:
                new_lo = lo
                new_hi = hi
            new_hi = max(new_hi, new_lo)
            iteration += 1
            changed = new_lo != lo or new_hi != hi
            lo = new_lo
            hi = new_hi
            if not changed or (maxiters >= 0 and iteration >= maxiters):
                break
        n, mu, m2 = _moments(p1, p2, lo, hi)
        n_out[i] = n
        mean[i] = mu + np.float64(ref)
        var[i] = m2 / (n - ddof) if n > ddof else np.nan
        bound[i] = b
        median[i] = _median_at(c, lo, hi, last) + np.float64(ref) if n > 0 else np.nan


@numba.njit(cache=True, nogil=True, error_model="numpy")
def nanmedian_rows(x, out):
    """``np.nanmedian(x, axis=-1)`` of a 2-D float array, bit for bit, into ``out``.

    The median of the non-NaN values of each row: the middle one, or the mean of
    the two middle ones (``(a + b) / 2``, as numpy's ``mean`` of the pair); NaN for
    a row without any. numpy's version goes through masked arrays row by row for
    short rows, which made refpix's running median a tenth of a DARK's time.
    """
    npix, ns = x.shape
    c = np.empty(ns, x.dtype)
    for i in range(npix):
        m = 0
        for j in range(ns):
            v = x[i, j]
            if not np.isnan(v):
                c[m] = v
                m += 1
        if m == 0:
            out[i] = np.nan
            continue
        c[:m].sort()
        h = m // 2
        if m % 2 == 1:
            out[i] = c[h]
        else:
            out[i] = (np.float64(c[h - 1]) + np.float64(c[h])) / 2.0
