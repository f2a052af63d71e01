"""Compiled row loop of :func:`daskref.kernels.stats.sigma_clip_stats` (numba).

The numpy version sorts every pixel's samples, then runs each clipping pass over
the whole chunk with fancy indexing (``take_along_axis``) and full-size temporaries:
most of the DARK's and the MASK's time went there. This loop does the same
arithmetic, pixel by pixel, in the same order and precision, so the results are
bit-identical (``tests/kernels/test_stats.py`` checks it against the numpy version):

* the rows arrive sorted by ``np.sort`` (NaN last; numpy's vectorised sort is
  several times faster than a compiled one), the NaN dropped (no comparison counts
  them) and the values shifted by the same reference element in the samples'
  precision;
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


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _sorted_finite(x, i, c):
    """Row ``i`` of the sorted ``x`` (NaN last) copied into ``c``; its non-NaN count."""
    m = 0
    for j in range(x.shape[1]):
        v = x[i, j]
        if np.isnan(v):
            break
        c[m] = v
        m += 1
    return m


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
def clip_sorted(c, m, p1, p2, sigma, maxiters, clip, last):
    """Sigma-clip the sorted, NaN-free ``c[:m]``; the survivors' statistics.

    ``c`` is shifted in place by its reference element (the lower middle one);
    ``p1``, ``p2`` (length at least ``m + 1``, ``p1[0] = p2[0] = 0``) receive the
    prefix sums of the shifted values and of their squares, in the samples'
    precision; ``last`` clamps the median's indices. See :func:`clip_prefixed`.
    """
    ref = c[max((m - 1) // 2, 0)] if m > 0 else c.dtype.type(0)
    s1 = c.dtype.type(0)
    s2 = c.dtype.type(0)
    for j in range(m):
        v = c[j] - ref
        c[j] = v
        s1 += v
        p1[j + 1] = s1
        s2 += v * v
        p2[j + 1] = s2
    return clip_prefixed(c, m, p1, p2, ref, sigma, maxiters, clip, last)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def clip_prefixed(c, m, p1, p2, ref, sigma, maxiters, clip, last):
    """Sigma-clip sorted values already shifted by ``ref``, with their prefix sums.

    ``c[:m]`` are the sorted samples less ``ref``; ``p1``/``p2`` their prefix sums
    and those of their squares (``p[0] = 0``). Any 1-D views do (a column of a
    (sample, pixel) buffer).

    The survivors of a symmetric clip of sorted values are a run ``c[lo:hi]``, and
    the run only shrinks: each pass walks its ends inwards past the values outside
    the new bounds, which gives the same ends as counting over all the values.

    Returns
    -------
    n : int
        Survivors.
    mean, m2 : float
        Their mean and sum of squared deviations (float64).
    bound : float
        Half-width of the last window (``inf`` without clipping).
    median : float
        Median of the survivors (NaN with none).
    """
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
            new_lo = lo
            while new_lo < m and np.float64(c[new_lo]) < below:
                new_lo += 1
            new_hi = hi
            # "not <=": a NaN bound keeps nothing, as a count of ``v <= above`` would
            while new_hi > 0 and not (np.float64(c[new_hi - 1]) <= above):
                new_hi -= 1
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
    median = _median_at(c, lo, hi, last) + np.float64(ref) if n > 0 else np.nan
    return n, mu + np.float64(ref), m2, b, median


@numba.njit(cache=True, nogil=True, error_model="numpy")
def clip_rows(x, sigma, maxiters, clip, ddof, mean, var, n_out, bound, median):
    """Sigma-clip each row of ``x`` (npix, nsample); write the per-row results.

    Parameters
    ----------
    x : ndarray, (npix, nsample), float32 or float64, C-contiguous
        Samples, each row sorted (NaN, the missing ones, last).
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
    for i in range(npix):
        m = _sorted_finite(x, i, c)
        n, mu, m2, b, med = clip_sorted(c, m, p1, p2, sigma, maxiters, clip, ns - 1)
        n_out[i] = n
        mean[i] = mu
        var[i] = m2 / (n - ddof) if n > ddof else np.nan
        bound[i] = b
        median[i] = med


@numba.njit(cache=True, nogil=True, error_model="numpy")
def nanmedian_rows(x, out):
    """``np.nanmedian(x, axis=-1)`` of a 2-D float array, bit for bit, into ``out``.

    (Rows of ``x`` in any order: refpix's windows are short.)

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




@numba.njit(cache=True, nogil=True, error_model="numpy")
def _shifted_median(s, lo, m):
    """``sigma_clip_stats(..., maxiters=0).median`` of the sorted ``s[lo:lo + m]``.

    Its arithmetic: values shifted by the reference element ``r = s[lo + (m-1)//2]``
    in their own precision, ``0.5 * (lower + upper middle) + r`` in float64.
    """
    if m == 0:
        return np.nan
    return shifted_mid(s[lo + (m - 1) // 2], s[lo + m // 2])


@numba.njit(cache=True, nogil=True, error_model="numpy")
def shifted_mid(lower, upper):
    """The median from its lower and upper middle values, as ``_shifted_median``."""
    ref = lower
    a = np.float64(lower - ref)
    b = np.float64(upper - ref)
    return 0.5 * (a + b) + np.float64(ref)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def median_rows(x, out):
    """``sigma_clip_stats(x, sigma=inf, maxiters=0).median`` of each row, bit for bit.

    Parameters
    ----------
    x : ndarray, (npix, nsample), float32 or float64
        Each row sorted, NaN last.
    out : ndarray of float64, (npix,)
    """
    c = np.empty(x.shape[1], x.dtype)
    for i in range(x.shape[0]):
        m = _sorted_finite(x, i, c)
        out[i] = _shifted_median(c, 0, m)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def robust_std_sorted(s, m, cut, dev, sd):
    """MAD-cut standard deviation (ddof 1) and mean of the sorted, NaN-free ``s[:m]``.

    The arithmetic of ``badpix_dark._robust_std_numpy`` (median; absolute deviations
    from it in float64 and their median; samples within ``cut`` times 1.4826 of
    that kept; their unclipped mean and ddof-1 variance from sums in the samples'
    precision, in sorted order) without sorting again. The deviations of the
    sorted samples fall, then rise (from the first sample not below the median):
    two sorted runs. So their median needs only the two middle values of the
    runs' union, found by bisection, and the kept samples are a run of the sorted
    ones, whose ends are found by bisection too. Where the median is not finite
    (deviations may then be NaN) the runs are merged as they come, with the same
    scans as before.

    Parameters
    ----------
    s : ndarray, (>= m,), float32 or float64
        Sorted samples; only ``s[:m]`` is read (not modified).
    m : int
    cut : float
        In robust sigmas (1.4826 MAD).
    dev, sd : ndarray of float64, (>= m,)
        Scratch.

    Returns
    -------
    std, mean : float
        NaN std with fewer than 2 kept samples; NaN mean with none.
    """
    med = _shifted_median(s, 0, m)
    # the first sample not below the median: the deviations fall before, rise after
    split_lo = 0
    split_hi = m
    while split_lo < split_hi:
        mid = (split_lo + split_hi) // 2
        if np.float64(s[mid]) < med:
            split_lo = mid + 1
        else:
            split_hi = mid
    split = split_lo
    if np.isfinite(med):
        # falling run a_i = dev(split - 1 - i), rising run b_j = dev(split + j), both
        # ascending: the k-th smallest of their union takes i of a and k + 1 - i of b
        lower = upper = 0.0
        for t in range(2):
            k = (m - 1) // 2 + t * (m % 2 == 0)
            lo = max(0, k + 1 - (m - split))
            hi = min(k + 1, split)
            while lo < hi:
                i = (lo + hi) // 2
                # b_{k - i} > a_i: more of a belongs below the k-th
                if (abs(np.float64(s[split + k - i]) - med)
                        > abs(np.float64(s[split - 1 - i]) - med)):
                    lo = i + 1
                else:
                    hi = i
            i = lo
            j = k + 1 - i
            v = -np.inf
            if i > 0:
                v = abs(np.float64(s[split - i]) - med)
            if j > 0:
                v = max(v, abs(np.float64(s[split + j - 1]) - med))
            if t == 0:
                lower = v
            else:
                upper = v
        scale = 1.4826 * shifted_mid(lower, upper)  # m > 0: the median is finite
        limit = cut * scale
        # kept: a tail of the falling run and a head of the rising one
        lo = 0
        hi = split
        while lo < hi:
            mid = (lo + hi) // 2
            if abs(np.float64(s[mid]) - med) <= limit:
                hi = mid
            else:
                lo = mid + 1
        first = lo
        lo = split
        hi = m
        while lo < hi:
            mid = (lo + hi) // 2
            if abs(np.float64(s[mid]) - med) <= limit:
                lo = mid + 1
            else:
                hi = mid
        end = lo
        if first == split and not (split < m and abs(np.float64(s[split]) - med) <= limit):
            first = end = m  # none kept
        lo = first
        hi = end
    else:
        for j in range(m):
            dev[j] = abs(np.float64(s[j]) - med)
        # merge the falling run (read backwards) with the rising one
        a = split - 1
        b = split
        for k in range(m):
            if b >= m or (a >= 0 and dev[a] <= dev[b]):
                sd[k] = dev[a]
                a -= 1
            else:
                sd[k] = dev[b]
                b += 1
        scale = 1.4826 * _shifted_median(sd, 0, m)
        limit = cut * scale
        lo = 0
        while lo < m and not (dev[lo] <= limit):
            lo += 1
        hi = lo
        while hi < m and dev[hi] <= limit:
            hi += 1
    n = hi - lo
    if n == 0:
        return np.nan, np.nan
    ref = s[lo + (n - 1) // 2]
    s1 = s.dtype.type(0)
    s2 = s.dtype.type(0)
    for j in range(lo, hi):
        v = s[j] - ref
        s1 += v
        s2 += v * v
    t1 = np.float64(s1)
    t2 = np.float64(s2)
    mu = t1 / n
    m2 = t2 - t1 * mu
    if m2 < 0.0:
        m2 = 0.0
    return (np.sqrt(m2 / (n - 1)) if n >= 2 else np.nan), mu + np.float64(ref)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def robust_std_rows(x, cut, std_out, mean_out):
    """MAD-cut standard deviation (ddof 1) and mean of each row, bit for bit.

    :func:`robust_std_sorted` of each row: one sort per row (the caller's) instead
    of the numpy version's three.

    Parameters
    ----------
    x : ndarray, (npix, nsample), float32 or float64
        Each row sorted, NaN last.
    cut : float
        In robust sigmas (1.4826 MAD).
    std_out, mean_out : ndarray of float64, (npix,)
        NaN std with fewer than 2 kept samples; NaN mean with none.
    """
    ns = x.shape[1]
    s = np.empty(ns, x.dtype)
    dev = np.empty(ns)
    sd = np.empty(ns)
    for i in range(x.shape[0]):
        m = _sorted_finite(x, i, s)
        std_out[i], mean_out[i] = robust_std_sorted(s, m, cut, dev, sd)


#: Pixels per tile of the transposing copies: a tile's output rows (a few samples
#: of 64 pixels each) stay in cache while its input is read along the pixel axis.
_TILE = 64


@numba.njit(cache=True, nogil=True)
def copy_rows(src, out):
    """Copy a 2-D ``src`` of any strides into the C-contiguous ``out``, tile by tile.

    ``src`` is typically the (pixel, sample) view of a (sample, y, x) slab, whose
    pixel axis is the contiguous one: a plain copy walks the output row by row and
    touches one input cache line per sample; tiles of pixels reuse each line.
    """
    npix, ns = src.shape
    for p0 in range(0, npix, _TILE):
        p1 = min(p0 + _TILE, npix)
        for j in range(ns):
            for p in range(p0, p1):
                out[p, j] = src[p, j]


@numba.njit(cache=True, nogil=True)
def pixel_differences(ramp, groupdq, use_dq, first, second, bad_either, bad_second, out):
    """Group differences of every pixel, as C-contiguous rows of samples.

    Parameters
    ----------
    ramp : ndarray, (npix, integration, group), any strides, DN
    groupdq : ndarray of uint8, same shape (ignored unless ``use_dq``)
    use_dq : bool
    first, second : ndarray of intp, (ndiff,)
        Groups of each difference (``second - first``).
    bad_either, bad_second : int
        Flags that exclude a difference when set on either group / on its second.
    out : ndarray of float32, (npix, integration * ndiff)
        ``out[p, i * ndiff + k]`` is difference ``k`` of integration ``i``
        (computed in float64, rounded once to float32); NaN where excluded.
    """
    npix, nint, _ = ramp.shape
    ndiff = first.shape[0]
    for p0 in range(0, npix, _TILE):
        p1 = min(p0 + _TILE, npix)
        for i in range(nint):
            for k in range(ndiff):
                a = first[k]
                b = second[k]
                j = i * ndiff + k
                for p in range(p0, p1):
                    v = np.float32(np.float64(ramp[p, i, b]) - np.float64(ramp[p, i, a]))
                    if use_dq:
                        ga = groupdq[p, i, a]
                        gb = groupdq[p, i, b]
                        if ((ga | gb) & bad_either) != 0 or (gb & bad_second) != 0:
                            v = np.nan
                    out[p, j] = v
