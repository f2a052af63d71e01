"""Compiled DARK statistic of a slab (numba): :func:`daskref.kernels.dark.dark_kernel`.

The numpy version masks the whole slab, sorts every (group, pixel)'s samples with
``np.sort`` (a call per short row), clips them and fits the rates with chunk-sized
temporaries; at ten inputs that took longer than all of the prep. Here one pass
per run of pixels along a row does the same arithmetic, bit for bit
(``tests/kernels/test_dark_numba.py`` compares bytes):

* the samples of a group of ``width`` neighbouring pixels are gathered into a
  (sample, pixel) buffer, excluded ones as ``+inf``, and sorted column-wise by a
  sorting network (Batcher's odd-even merge sort): the same compare-exchange on
  every column, which the compiler vectorises across the pixels;
* the sorted columns are shifted and their prefix sums formed across the pixels,
  then each pixel is clipped by :func:`._clip_numba.clip_prefixed`, the loop of
  ``sigma_clip_stats``;
* the rate fit of :func:`~daskref.kernels.dark.fill_from_rate` runs per pixel with
  numpy's pairwise summation (:func:`._ramp_fit_numba._pairwise`).
"""

from __future__ import annotations

import numba
import numpy as np

from .. import dq
from ._clip_numba import clip_prefixed
from ._ramp_fit_numba import _pairwise
from ._sort_numba import sort_columns

_JIT = dict(cache=True, nogil=True, error_model="numpy")


@numba.njit(**_JIT)
def _fill_pixel(val, er, nu, j, times, fit_groups, w, y, t1, sci, err, p, yy, xx):
    """:func:`~daskref.kernels.dark.fill_from_rate` of pixel ``j`` (columns of val/er/nu).

    Fills its groups without a sample in ``sci``/``err[p, :, yy, xx]`` (the measured
    ones are written already); returns ``(rate, filled code)``.
    """
    ngroup = times.shape[0]
    n_fit = 0
    any_missing = False
    for g in range(ngroup):
        measured = np.isfinite(val[g, j]) and nu[g, j] > 0
        any_missing = any_missing or not measured
        w[g] = np.float64(nu[g, j]) if measured and fit_groups[g] else 0.0
        y[g] = np.float64(val[g, j]) if w[g] > 0 else 0.0
        if w[g] != 0:
            n_fit += 1
    sw = _pairwise(w, 0, ngroup)
    for g in range(ngroup):
        t1[g] = w[g] * times[g]
    tm = _pairwise(t1, 0, ngroup) / sw
    for g in range(ngroup):
        t1[g] = w[g] * y[g]
    ym = _pairwise(t1, 0, ngroup) / sw
    for g in range(ngroup):
        d = times[g] - tm
        t1[g] = w[g] * (d * d)
    stt = _pairwise(t1, 0, ngroup)
    for g in range(ngroup):
        t1[g] = w[g] * (times[g] - tm) * (y[g] - ym)
    rate = _pairwise(t1, 0, ngroup) / stt
    if n_fit == 1:  # a line through zero at reset
        rate = ym / tm
        icpt = 0.0
    else:
        icpt = ym - rate * tm
    if n_fit == 0:
        rate = np.nan
    # groups without a sample: the line, and the typical error of the measured ones
    if any_missing:
        n_ok = 0
        for g in range(ngroup):
            ok = np.isfinite(val[g, j]) and nu[g, j] > 0 and np.isfinite(er[g, j])
            e = np.float64(er[g, j])
            t1[g] = e * e if ok else 0.0
            n_ok += ok
        typical = np.sqrt(_pairwise(t1, 0, ngroup) / n_ok)
        if not np.isfinite(typical):
            typical = 0.0
        for g in range(ngroup):
            if not (np.isfinite(val[g, j]) and nu[g, j] > 0):
                model = icpt + rate * times[g]
                sci[p, g, yy, xx] = np.float32(model if np.isfinite(model) else 0.0)
                err[p, g, yy, xx] = np.float32(typical)
    code = 2 if n_fit == 0 else (1 if any_missing else 0)
    return rate, code


@numba.njit(**_JIT)
def dark_block(ramp, groupdq, use_dq, plane_ints, plane_start, pairs, pair_start, times,
               fit_groups, stat_median, sigma, maxiters, clip, bias, factor, root_n, width,
               sci, err, n_used, rate, filled):
    """DARK of an (integration, group, y, x) slab into the (plane, group, y, x) outputs.

    Parameters
    ----------
    ramp : ndarray, (integration, group, y, x), any strides, DN
    groupdq : ndarray of uint8, same shape (ignored unless ``use_dq``)
    plane_ints, plane_start : ndarray of intp
        The integrations of plane ``p`` are ``plane_ints[plane_start[p]:plane_start[p+1]]``.
    pairs, pair_start : ndarray of intp
        Sorting network of plane ``p``: ``pairs[pair_start[p]:pair_start[p+1]]``.
    times : ndarray of float64, (group,), s
    fit_groups : ndarray of bool, (group,)
    stat_median : bool
        The median of the survivors, not their mean.
    sigma, maxiters, clip
        As for :func:`._clip_numba.clip_rows`.
    bias, factor, root_n : ndarray of float64, (integration + 1,)
        Clipped-std bias, estimator error factor and sqrt of each sample count.
    width : int
        Pixels sorted together.
    sci, err : ndarray of float32, (plane, group, y, x)
    n_used : ndarray of int16 or int32, (plane, group, y, x)
    rate : ndarray of float32, (y, x), DN/s
        The last plane's fitted rate.
    filled : ndarray of uint8, (y, x), zeros on entry
        The worst fill code over the planes.
    """
    nint, ngroup, ny, nx = ramp.shape
    nplanes = plane_start.shape[0] - 1
    msize = 1
    for p in range(nplanes):
        msize = max(msize, plane_start[p + 1] - plane_start[p])
    buf = np.empty((msize, width), np.float32)
    tmp = np.empty(width, np.float32)
    count = np.empty(width, np.intp)
    first_jump = np.empty((nint, width), np.intp)
    ref = np.empty(width, np.float32)
    p1 = np.empty((msize + 1, width), np.float32)
    p2 = np.empty((msize + 1, width), np.float32)
    val = np.empty((ngroup, width), np.float32)
    er = np.empty((ngroup, width), np.float32)
    nu = np.empty((ngroup, width), n_used.dtype)
    w = np.empty(ngroup)
    y = np.empty(ngroup)
    t1 = np.empty(ngroup)
    for yy in range(ny):
        for x0 in range(0, nx, width):
            bw = min(width, nx - x0)
            # the group of each integration's first jump: it and all later ones go
            for i in range(nint):
                for j in range(bw):
                    first_jump[i, j] = ngroup
                if use_dq:
                    for g in range(ngroup - 1, -1, -1):
                        for j in range(bw):
                            if groupdq[i, g, yy, x0 + j] & dq.JUMP_DET:
                                first_jump[i, j] = g
            for p in range(nplanes):
                ints = plane_ints[plane_start[p]:plane_start[p + 1]]
                net = pairs[pair_start[p]:pair_start[p + 1]]
                m_p = ints.shape[0]
                for g in range(ngroup):
                    for j in range(bw):
                        count[j] = 0
                    for k in range(m_p):
                        i = ints[k]
                        for j in range(bw):
                            v = np.float32(ramp[i, g, yy, x0 + j])
                            if use_dq and (g >= first_jump[i, j]
                                           or groupdq[i, g, yy, x0 + j] & dq.SATURATED):
                                v = np.float32(np.nan)
                            if np.isnan(v):
                                v = np.float32(np.inf)
                            else:
                                count[j] += 1
                            buf[k, j] = v
                    sort_columns(buf, net, bw, tmp)
                    # shift by each pixel's reference sample and form the prefix sums
                    # of :func:`._clip_numba.clip_sorted` for all pixels at once (the
                    # same sequential sums per pixel, in vector lanes across pixels)
                    for j in range(bw):
                        ref[j] = buf[max((count[j] - 1) // 2, 0), j] if count[j] > 0 else 0
                        p1[0, j] = 0
                        p2[0, j] = 0
                    for k in range(m_p):
                        for j in range(bw):
                            v = buf[k, j] - ref[j]
                            buf[k, j] = v
                            p1[k + 1, j] = p1[k, j] + v
                            p2[k + 1, j] = p2[k, j] + v * v
                    for j in range(bw):
                        m = count[j]
                        # The first clipping pass, which for most pixels keeps every
                        # sample and so is the last: the same arithmetic as
                        # clip_prefixed's, without its loop and walks, so that the
                        # divisions of neighbouring pixels overlap. A window that
                        # shrinks goes to clip_prefixed.
                        s1 = np.float64(p1[m, j])
                        mean = s1 / m
                        m2 = np.float64(p2[m, j]) - s1 * mean
                        if m2 < 0.0:
                            m2 = 0.0
                        i_lo = min(max((m - 1) // 2, 0), m_p - 1)
                        i_hi = min(max(m // 2, 0), m_p - 1)
                        med = 0.5 * (np.float64(buf[i_lo, j]) + np.float64(buf[i_hi, j]))
                        n = m
                        if clip and m > 0:
                            t = sigma * np.sqrt(m2 / m)
                            if (np.float64(buf[0, j]) < med - t
                                    or not (np.float64(buf[m - 1, j]) <= med + t)):
                                n = -1
                        if n < 0:
                            n, mean, m2, _, med = clip_prefixed(
                                buf[:, j], m, p1[:, j], p2[:, j], ref[j], sigma, maxiters,
                                clip, m_p - 1)
                        else:
                            mean = mean + np.float64(ref[j])
                            med = med + np.float64(ref[j]) if m > 0 else np.nan
                        value = med if stat_median else mean
                        var = m2 / n if n > 0 else np.nan
                        std = np.sqrt(var) / bias[m]
                        e = std * factor[m] / root_n[m] if m >= 2 else np.nan
                        v32 = np.float32(value if n > 0 else np.nan)
                        e32 = np.float32(e)
                        val[g, j] = v32
                        er[g, j] = e32
                        nu[g, j] = n
                        sci[p, g, yy, x0 + j] = v32
                        err[p, g, yy, x0 + j] = e32
                        n_used[p, g, yy, x0 + j] = n
                for j in range(bw):
                    r, code = _fill_pixel(val, er, nu, j, times, fit_groups, w, y, t1,
                                          sci, err, p, yy, x0 + j)
                    rate[yy, x0 + j] = np.float32(r)
                    filled[yy, x0 + j] = max(filled[yy, x0 + j], code)
