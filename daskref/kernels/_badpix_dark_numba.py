"""Compiled per-pixel statistics of the bad-pixel search in darks (numba).

:func:`daskref.kernels.badpix_dark.dark_pixel_statistics` in one pass per tile of
neighbouring pixels along a row. The numpy version
(:func:`~daskref.kernels.badpix_dark.dark_pixel_statistics_numpy`) copies the
transposed slab, builds a dozen slab-sized temporaries and sorts long rows with
``np.sort``; here the same arithmetic runs tile by tile, bit for bit
(``tests/kernels/test_badpix_dark_numba.py`` compares bytes):

* a tile's ramps and flags are gathered from the (integration, group, y, x) slab
  (read along x, in place) into small (sample, pixel) buffers: the group
  differences, DQ codes and step flags of ``width`` pixels stay in cache;
* every sort (a pixel's clean CDS differences, its differences per integration, the
  late ones, its per-integration z, rates and pedestals) fills a (sample, pixel)
  buffer, missing samples as ``+inf``, sorted column-wise by a sorting network
  (:func:`._sort_numba.sort_columns`): one compare-exchange sequence for all the
  columns, which the compiler vectorises across them;
* each pixel's sorted samples then go through the numpy version's own compiled
  helpers (:func:`._clip_numba.robust_std_sorted`, ``_shifted_median`` of
  ``median_rows``, :func:`._clip_numba.clip_sorted` of ``sigma_clip_stats``);
* numpy's sums along a contiguous last axis are pairwise (the rate's
  ``(r * tc).sum``, ``np.nansum`` of the early differences, in float32):
  :func:`._ramp_fit_numba._pairwise`. Every other operation is the same IEEE
  operation in the same precision as the numpy expression it replaces (float32
  differences, float64 deviations; ``np.nan_to_num``'s ``+-inf -> +-max``).

``error_model='numpy'``: 0/0 is NaN as in numpy; no fastmath (the sorting network
only takes min and max of NaN-free values).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .. import dq
from ._clip_numba import clip_sorted, robust_std_sorted, shifted_mid
from ._ramp_fit_numba import _pairwise
from ._sort_numba import sort_columns

_JIT = dict(cache=True, nogil=True, error_model="numpy")

#: ``np.nan_to_num``'s replacement of +-inf.
_BIG = float(np.finfo(np.float64).max)
_HALF_PI = math.pi / 2

# codes of a sample in the tile's flag buffer
_SAT = 1  # SATURATED
_DNU = 2  # DO_NOT_USE
_JUMP = 4  # JUMP_DET
_BAD = 8  # saturated, or DO_NOT_USE on some but not all of the pixel's groups

#: Cut of ``_robust_std``, in robust sigmas.
_CUT = 4.0

#: Order of the statistics in ``out`` (that of ``badpix_dark.STATISTICS``).
(_CLEAN_RATE, _CLEAN_RATE_ERR, _NOISE, _SATURATED_FRACTION, _RC_FRACTION, _RC_SIGNIFICANCE,
 _TELEGRAPH_FRACTION, _PEDESTAL_LOW, _PEDESTAL_HIGH, _PEDESTAL_MEDIAN, _PEDESTAL_SCATTER,
 _N_CLEAN) = range(12)


@numba.njit(**_JIT)
def _nan_to_num(v):
    """``np.nan_to_num`` of a float64: NaN 0, +-inf +-max."""
    if np.isnan(v):
        return 0.0
    if v == np.inf:
        return _BIG
    if v == -np.inf:
        return -_BIG
    return v


@numba.njit(**_JIT)
def _clip0(v):
    """``np.clip(v, 0, None)`` (``np.maximum(v, 0)``: NaN stays NaN)."""
    return v if (v >= 0.0 or np.isnan(v)) else 0.0



@numba.njit(**_JIT)
def _pairwise_columns(a, n, width, acc, res):
    """``res[j] = a[:n, j].sum()`` as numpy sums a contiguous row (pairwise), every column.

    The loop of :func:`._ramp_fit_numba._pairwise` run across the columns: below 8
    values in turn from 0, up to 128 in 8 interleaved partial sums; longer columns
    are copied to a row for :func:`._ramp_fit_numba._pairwise` itself.

    Parameters
    ----------
    a : ndarray, (>= n, >= width)
        In the precision of the sum (numpy's: the values').
    acc : ndarray, (8, >= width), ``a``'s dtype
        Scratch.
    res : ndarray, (>= width,), ``a``'s dtype
    """
    if n > 128:
        row = np.empty(n, a.dtype)
        for j in range(width):
            for k in range(n):
                row[k] = a[k, j]
            res[j] = _pairwise(row, 0, n)
        return
    if n < 8:
        for j in range(width):
            res[j] = 0
        for k in range(n):
            for j in range(width):
                res[j] += a[k, j]
        return
    for t in range(8):
        for j in range(width):
            acc[t, j] = a[t, j]
    k = 8
    while k < n - (n % 8):
        for t in range(8):
            for j in range(width):
                acc[t, j] += a[k + t, j]
        k += 8
    for j in range(width):
        res[j] = (((acc[0, j] + acc[1, j]) + (acc[2, j] + acc[3, j]))
                  + ((acc[4, j] + acc[5, j]) + (acc[6, j] + acc[7, j])))
    while k < n:
        for j in range(width):
            res[j] += a[k, j]
        k += 1


@numba.njit(**_JIT)
def _column_median(buf, col, m):
    """``_shifted_median`` of the sorted column ``buf[:m, col]``."""
    if m == 0:
        return np.nan
    return shifted_mid(buf[(m - 1) // 2, col], buf[m // 2, col])


@numba.njit(**_JIT)
def _order_statistic(buf, col, n, fraction, largest):
    """``badpix_dark._order_statistic`` of the sorted column ``buf[:n, col]``.

    Past ``n`` the column holds ``+inf`` where numpy's sort has NaN: an index there
    gives NaN.
    """
    m = np.intp(np.floor(fraction * n))
    idx = (n - 1 - m) if largest else m
    if not (n > 0 and m < n):
        return np.nan
    idx = min(max(idx, 0), buf.shape[0] - 1)
    return np.float64(buf[idx, col]) if idx < n else np.nan


@numba.njit(**_JIT)
def dark_statistics_block(ramp, groupdq, rateints, gain, use_gain, times, tc, tc_norm,
                          e, late0, step_sigma, max_jump_limit, jump_ratio, pedestal_sigma,
                          rc_fraction, low_fraction, clip_sigma, clip_iters, clip,
                          bias, factor, net_cds, net_diff, net_late, net_late_all, net_int,
                          width, out):
    """The 12 statistics of ``dark_pixel_statistics`` for an (integration, group, y, x) slab.

    The loops over a tile run with the pixel innermost, across the (sample,
    pixel) buffers (branch-free where they can, so they vectorise); only the
    sorted-row statistics run pixel by pixel.

    Parameters
    ----------
    ramp : ndarray, (integration, group, y, x), any strides and float dtype, DN
        Read as float32, as the numpy version's copy.
    groupdq : ndarray of unsigned int, same shape
    rateints : ndarray, (integration, y, x), any strides, DN/s
    gain : ndarray of float64, (y, x), any strides (zero ones too), e-/DN
        Read only if ``use_gain``.
    use_gain : bool
    times : ndarray of float64, (group,), s
    tc : ndarray of float64, (group,), s
        ``times - times.mean()``, as numpy computes it.
    tc_norm : float
        ``(tc**2).sum()``, s^2.
    e, late0 : int
        Early differences ``[0, e)`` and the late ones ``[late0, ndiff)`` of the RC
        test; ``e`` 0 skips the test (fewer than 3 differences).
    step_sigma, max_jump_limit, jump_ratio, pedestal_sigma, rc_fraction, low_fraction
        As ``step_sigma_threshold``, ``max_jump_limit``, ``jump_ratio_threshold``,
        ``pedestal_sigma_threshold``, ``rc_fraction_threshold`` and
        ``low_pedestal_fraction`` of ``dark_pixel_statistics``.
    clip_sigma, clip_iters, clip
        Clipping of the rates, as for :func:`._clip_numba.clip_rows`.
    bias, factor : ndarray of float64, (integration + 1,)
        ``clipped_std_bias`` of the rates and the median's ``estimator_error_factor``
        of each sample count.
    net_cds, net_diff, net_late, net_late_all, net_int : ndarray of intp, (ncomparator, 2)
        Sorting networks of ``integration * ndiff``, ``ndiff``, ``ndiff - late0``,
        ``integration * (ndiff - late0)`` and ``integration`` values.
    width : int
        Pixels per tile.
    out : ndarray of float32, (12, y, x)
        The statistics, in the order of ``badpix_dark.STATISTICS``.
    """
    nint, ngroup, ny, nx = ramp.shape
    ndiff = max(ngroup - 1, 0)
    nlate = ndiff - late0 if e > 0 else 0
    nsamp = nint * ngroup
    ncds = nint * ndiff
    w_ = width
    # the tile's (sample, pixel) buffers; the sort buffers of per-integration rows
    # hold integration i's pixels in columns [i * bw, (i + 1) * bw)
    r = np.empty((nsamp, w_), np.float32)
    code = np.empty((nsamp, w_), np.uint8)
    d = np.empty((ncds, w_), np.float32)
    step = np.empty((ncds, w_), np.bool_)
    s_cds = np.empty((ncds, w_), np.float32)
    s_diff = np.empty((ndiff, nint * w_), np.float32)
    s_late = np.empty((nlate, nint * w_), np.float32)
    s_late_all = np.empty((nint * nlate, w_), np.float32)
    s_z = np.empty((nint, w_))
    s_rate = np.empty((nint, w_))
    s_ped = np.empty((nint, w_))
    tmp32 = np.empty(nint * w_, np.float32)
    tmp64 = np.empty(w_)
    count = np.empty(nint * w_, np.intp)  # samples (not NaN) per sort column
    prod = np.empty((ngroup, w_))
    early = np.empty((max(e, 1), w_), np.float32)
    acc64 = np.empty((8, w_))
    acc32 = np.empty((8, w_), np.float32)
    sum64 = np.empty(w_)
    sum32 = np.empty(w_, np.float32)
    med_k = np.empty((nint, w_))
    ok_k = np.empty((nint, w_), np.bool_)  # "evaluated"
    clean_k = np.empty((nint, w_), np.bool_)
    n_up = np.empty(w_, np.intp)
    n_down = np.empty(w_, np.intp)
    n_e = np.empty(w_, np.intp)
    n_l = np.empty(w_, np.intp)
    n_early = np.empty(w_, np.intp)
    n_late = np.empty(w_, np.intp)
    any_step = np.empty(w_, np.bool_)
    any_bad = np.empty(w_, np.bool_)
    finite = np.empty(w_, np.bool_)
    first = np.empty(w_, np.intp)
    n_tel = np.empty(w_, np.intp)
    n_rc = np.empty((3, w_), np.intp)
    n_sat = np.empty(w_, np.intp)
    n_eval = np.empty(w_, np.intp)
    n_clean = np.empty(w_, np.intp)
    n_cds = np.empty(w_, np.intp)
    n_fin = np.empty(w_, np.intp)
    n_la = np.empty(w_, np.intp)
    n_z = np.empty(w_, np.intp)
    all_dnu = np.empty(w_, np.bool_)
    noise = np.empty(w_)
    mean_diff = np.empty(w_)
    late_noise = np.empty(w_)
    # one pixel's sorted row and the scratch of its statistics
    ns = max(ncds, nint, 1)
    s32 = np.empty(ns, np.float32)
    s64 = np.empty(ns)
    dev = np.empty(ns)
    sd = np.empty(ns)
    p1 = np.zeros(nint + 1)
    p2 = np.zeros(nint + 1)
    nan32 = np.float32(np.nan)
    inf32 = np.float32(np.inf)
    for yy in range(ny):
        for x0 in range(0, nx, w_):
            bw = min(w_, nx - x0)

            # gather the tile: float32 ramps, DQ as codes; DO_NOT_USE on every
            # group is a MASK's per-pixel flag (dq_init), not a bad group
            for j in range(bw):
                all_dnu[j] = nsamp > 0
            for i in range(nint):
                for g in range(ngroup):
                    q = i * ngroup + g
                    for j in range(bw):
                        r[q, j] = np.float32(ramp[i, g, yy, x0 + j])
                        f = groupdq[i, g, yy, x0 + j]
                        dnu = (f & dq.DO_NOT_USE) != 0
                        code[q, j] = (_SAT * ((f & dq.SATURATED) != 0) + _DNU * dnu
                                      + _JUMP * ((f & dq.JUMP_DET) != 0))
                        all_dnu[j] &= dnu
            for q in range(nsamp):
                for j in range(bw):
                    k = code[q, j]
                    bad = (k & _SAT) != 0 or ((k & _DNU) != 0 and not all_dnu[j])
                    code[q, j] = k | (_BAD * bad)

            # group differences (float32, NaN where either group is bad); the clean
            # ones (no jump on the second group) of each integration, to sort
            for q in range(nint * bw):
                count[q] = 0
            for i in range(nint):
                for kk in range(ndiff):
                    qa = i * ngroup + kk
                    q = i * ndiff + kk
                    for j in range(bw):
                        ca = code[qa, j]
                        cb = code[qa + 1, j]
                        v = r[qa + 1, j] - r[qa, j]
                        v = nan32 if ((ca | cb) & _BAD) != 0 else v
                        d[q, j] = v
                        miss = (cb & _JUMP) != 0 or np.isnan(v)
                        s_diff[kk, i * bw + j] = inf32 if miss else v
                        count[i * bw + j] += not miss
            # the clean CDS row is their union
            for j in range(bw):
                n_cds[j] = 0
            for i in range(nint):
                for kk in range(ndiff):
                    q = i * ndiff + kk
                    for j in range(bw):
                        s_cds[q, j] = s_diff[kk, i * bw + j]
                for j in range(bw):
                    n_cds[j] += count[i * bw + j]
            sort_columns(s_cds, net_cds, bw, tmp32)
            sort_columns(s_diff, net_diff, nint * bw, tmp32)

            # CDS noise: MAD-cut std of the clean differences; their median per
            # integration
            for j in range(bw):
                m = n_cds[j]
                for k in range(m):
                    s32[k] = s_cds[k, j]
                noise[j], mean_diff[j] = robust_std_sorted(s32, m, _CUT, dev, sd)
            for i in range(nint):
                for j in range(bw):
                    col = i * bw + j
                    med_k[i, j] = _column_median(s_diff, col, count[col])

            # steps: differences that stand out of the integration's own ramp; per
            # integration the telegraph test, "evaluated" and "clean"
            for j in range(bw):
                n_tel[j] = 0
                n_sat[j] = 0
                n_eval[j] = 0
                n_clean[j] = 0
                n_rc[0, j] = 0
                n_rc[1, j] = 0
                n_rc[2, j] = 0
            for i in range(nint):
                for j in range(bw):
                    n_up[j] = 0
                    n_down[j] = 0
                    any_step[j] = False
                    any_bad[j] = False
                    finite[j] = False
                for kk in range(ndiff):
                    q = i * ndiff + kk
                    for j in range(bw):
                        v = d[q, j]
                        dv = (np.float64(v) - med_k[i, j]) / noise[j]
                        st = abs(_nan_to_num(dv)) > step_sigma
                        step[q, j] = st
                        any_step[j] |= st
                        n_up[j] += st and dv > 0
                        n_down[j] += st and dv < 0
                        finite[j] |= np.isfinite(v)
                for g in range(ngroup):
                    for j in range(bw):
                        any_bad[j] |= (code[i * ngroup + g, j] & _BAD) != 0
                for j in range(bw):
                    saturated = ngroup > 0 and (code[i * ngroup, j] & _SAT) != 0
                    ok = not saturated and finite[j]
                    ok_k[i, j] = ok
                    n_sat[j] += saturated
                    n_eval[j] += ok
                    n_tel[j] += ok and (n_up[j] >= 1 and n_down[j] >= 1
                                        and n_up[j] + n_down[j] >= max_jump_limit)
                    clean_k[i, j] = not (any_step[j] or any_bad[j])
                    n_clean[j] += clean_k[i, j]

            # RC: the early-ramp shape test. z compares the sum of the e early
            # differences with e times the median of the late ones (steps removed),
            # in sigmas of the late noise (jumps removed too); rc_steps where the
            # steps crowd into the early differences
            if e > 0:
                for q in range(nint * bw):
                    count[q] = 0
                for j in range(bw):
                    n_la[j] = 0
                    n_z[j] = 0
                for i in range(nint):
                    for kk in range(nlate):
                        q = i * ndiff + late0 + kk
                        qg = i * ngroup + late0 + kk + 1
                        for j in range(bw):
                            v = d[q, j]
                            miss = step[q, j] or np.isnan(v)
                            s_late[kk, i * bw + j] = inf32 if miss else v
                            count[i * bw + j] += not miss
                            miss = miss or (code[qg, j] & _JUMP) != 0
                            s_late_all[i * nlate + kk, j] = inf32 if miss else v
                            n_la[j] += not miss
                sort_columns(s_late, net_late, nint * bw, tmp32)
                sort_columns(s_late_all, net_late_all, bw, tmp32)
                for j in range(bw):
                    m = n_la[j]
                    for k in range(m):
                        s32[k] = s_late_all[k, j]
                    late_noise[j], _ = robust_std_sorted(s32, m, _CUT, dev, sd)
                for i in range(nint):
                    for j in range(bw):
                        n_e[j] = 0
                        n_l[j] = 0
                        n_early[j] = 0
                        n_late[j] = 0
                    for kk in range(e):
                        q = i * ndiff + kk
                        for j in range(bw):
                            v = d[q, j]
                            n_e[j] += np.isfinite(v)
                            early[kk, j] = np.float32(0.0) if np.isnan(v) else v  # nansum
                            n_early[j] += step[q, j]
                    _pairwise_columns(early, e, bw, acc32, sum32)
                    for kk in range(late0, ndiff):
                        q = i * ndiff + kk
                        for j in range(bw):
                            n_l[j] += (not step[q, j]) and np.isfinite(d[q, j])
                            n_late[j] += step[q, j]
                    for j in range(bw):
                        col = i * bw + j
                        late_med = _column_median(s_late, col, count[col])
                        ne = np.float64(n_e[j])
                        scale = late_noise[j] * np.sqrt(
                            ne + np.float64(n_e[j] * n_e[j]) * _HALF_PI / np.float64(n_l[j]))
                        z = (np.float64(sum32[j]) - ne * late_med) / scale
                        ok = n_e[j] > 0 and n_l[j] > 0 and ok_k[i, j]
                        z = _nan_to_num(z) if ok else np.nan
                        n_z[j] += ok
                        s_z[i, j] = z if ok else np.inf
                        rc_steps = n_early[j] >= 1 and (
                            np.float64(n_early[j]) / np.float64(e)
                            >= jump_ratio * np.float64(n_late[j]) / np.float64(ndiff - late0))
                        n_rc[0, j] += z > pedestal_sigma  # NaN unless evaluated
                        n_rc[1, j] += z < -pedestal_sigma
                        n_rc[2, j] += rc_steps and ok_k[i, j]
                # the transient repeats in every integration: the median z over
                # them, in its own sigmas (robust to a cosmic ray in a few early groups)
                sort_columns(s_z, net_int, bw, tmp64)
                for j in range(bw):
                    m = n_z[j]
                    sig = _column_median(s_z, j, m) * np.sqrt(np.float64(m)) / factor[m]
                    out[_RC_SIGNIFICANCE, yy, x0 + j] = np.float32(sig)
            else:
                for j in range(bw):
                    out[_RC_SIGNIFICANCE, yy, x0 + j] = nan32

            # dark rate: least-squares slopes of the integrations without steps or
            # bad groups (sum(tc) = 0: r needs no centring), else the ramp fit's
            # slopes of all; clipped mean and its standard error
            for j in range(bw):
                count[j] = 0
                n_fin[j] = 0
            for i in range(nint):
                for g in range(ngroup):
                    for j in range(bw):
                        prod[g, j] = np.float64(r[i * ngroup + g, j]) * tc[g]
                _pairwise_columns(prod, ngroup, bw, acc64, sum64)
                for j in range(bw):
                    if n_clean[j] > 0:
                        v = sum64[j] / tc_norm if clean_k[i, j] else np.nan
                    else:
                        v = np.float64(rateints[i, yy, x0 + j])
                        v = v if np.isfinite(v) else np.nan
                    n_fin[j] += np.isfinite(v)
                    s_rate[i, j] = np.inf if np.isnan(v) else v
                    count[j] += not np.isnan(v)
            sort_columns(s_rate, net_int, bw, tmp64)
            for j in range(bw):
                m = count[j]
                for k in range(m):
                    s64[k] = s_rate[k, j]
                n, mu, m2, _, _ = clip_sorted(s64, m, p1, p2, clip_sigma, clip_iters, clip,
                                              nint - 1)
                var = m2 / (n - 0.0) if n > 0 else np.nan
                n_rate = n_fin[j]
                err = np.sqrt(var) / bias[n_rate] / np.sqrt(n_rate) if n_rate >= 2 else np.nan
                out[_CLEAN_RATE, yy, x0 + j] = np.float32(mu)
                out[_CLEAN_RATE_ERR, yy, x0 + j] = np.float32(err)

            # noise without the dark current's shot noise in a CDS difference (DN^2);
            # the fractions of integrations
            for j in range(bw):
                nz = noise[j]
                if use_gain:
                    poisson = _clip0(mean_diff[j]) / gain[yy, x0 + j]
                    nz = np.sqrt(_clip0(nz * nz - poisson))
                out[_NOISE, yy, x0 + j] = np.float32(nz)
                out[_SATURATED_FRACTION, yy, x0 + j] = np.float32(n_sat[j] / nint)
                n_max = max(n_rc[0, j], n_rc[1, j], n_rc[2, j])
                out[_RC_FRACTION, yy, x0 + j] = np.float32(n_max / n_eval[j])
                out[_TELEGRAPH_FRACTION, yy, x0 + j] = np.float32(n_tel[j] / n_eval[j])
                out[_N_CLEAN, yy, x0 + j] = np.float32(n_clean[j])

            # pedestal: the ramp fit's zero-time signal, from the first usable group
            for j in range(bw):
                count[j] = 0
            for i in range(nint):
                for j in range(bw):
                    first[j] = ngroup
                for g in range(ngroup - 1, -1, -1):
                    for j in range(bw):
                        first[j] = first[j] if (code[i * ngroup + g, j] & _BAD) else g
                for j in range(bw):
                    rate = np.float64(rateints[i, yy, x0 + j])
                    g = first[j]
                    v = np.nan
                    if g < ngroup and np.isfinite(rate):
                        v = np.float64(r[i * ngroup + g, j]) - rate * times[g]
                    s_ped[i, j] = np.inf if np.isnan(v) else v
                    count[j] += not np.isnan(v)
            sort_columns(s_ped, net_int, bw, tmp64)
            for j in range(bw):
                m = count[j]
                out[_PEDESTAL_LOW, yy, x0 + j] = np.float32(
                    _order_statistic(s_ped, j, m, low_fraction, False))
                out[_PEDESTAL_HIGH, yy, x0 + j] = np.float32(
                    _order_statistic(s_ped, j, m, rc_fraction, True))
                for k in range(m):
                    s64[k] = s_ped[k, j]
                std, _ = robust_std_sorted(s64, m, _CUT, dev, sd)
                out[_PEDESTAL_SCATTER, yy, x0 + j] = np.float32(std)
                out[_PEDESTAL_MEDIAN, yy, x0 + j] = np.float32(_column_median(s_ped, j, m))
