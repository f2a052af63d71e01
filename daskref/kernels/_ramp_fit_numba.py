"""Compiled pixel loop of :func:`daskref.kernels.ramp_fit.fit_ramps` (numba).

The vectorised version fits each jump-delimited segment of every pixel of a block
at once, with a dozen float64 (group, pixel) temporaries per segment and fancy
indexing for the pixels that have later segments: most of a prep run's time. This
loop does the same arithmetic pixel by pixel, in the same order and precision, so
the products are bit-identical (``tests/kernels/test_ramp_fit_numba.py`` checks it
against the vectorised version on ramps with jumps, saturation, flagged and
single-group segments):

* every elementwise operation is the same IEEE operation (no fastmath, so nothing is
  reassociated or fused into multiply-adds; ``pow`` and ``sqrt`` from the same libm);
* numpy's sums along the group (or integration) axis of a (group, pixel) array add
  the groups one after another when there are several pixels, but use pairwise
  summation, starting from 0, when the array has a single pixel column (the reduced
  axis is then the contiguous one): :func:`_axis0_sum` reproduces both, and the
  caller says which applies (the number of pixels the vectorised version fit
  together).
"""

from __future__ import annotations

import numba
import numpy as np

from ._sort_numba import sort_columns

_JIT = dict(cache=True, nogil=True, error_model="numpy")


@numba.njit(**_JIT)
def _pairwise_block(a, lo, n):
    """Pairwise sum of ``a[lo:lo + n]`` as numpy does it, for ``n <= 128`` (one block).

    In ``a``'s precision, as numpy's (float32 values add in float32).
    """
    if n < 8:
        res = a.dtype.type(0)
        for j in range(n):
            res += a[lo + j]
        return res
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    i = 8
    while i < n - (n % 8):
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@numba.njit(**_JIT)
def _pairwise(a, lo, n):
    """Pairwise sum of ``a[lo:lo + n]`` as numpy does it (``pairwise_sum`` in its loops).

    Above 128 values numpy halves the range (the first half a multiple of 8) and
    adds the two sums; the halving runs here on an explicit stack, because a
    recursive function does not survive numba's on-disk cache.
    """
    if n <= 128:
        return _pairwise_block(a, lo, n)
    frame_lo = np.empty(64, np.int64)
    frame_n = np.empty(64, np.int64)
    stage = np.zeros(64, np.int64)
    left = np.empty(64, a.dtype)
    top = 0
    frame_lo[0] = lo
    frame_n[0] = n
    ret = a.dtype.type(0)
    while top >= 0:
        m = frame_n[top]
        if m <= 128:
            ret = _pairwise_block(a, frame_lo[top], m)
            top -= 1
            continue
        half = m // 2
        half -= half % 8
        if stage[top] == 0:  # the first half next
            stage[top] = 1
            top += 1
            frame_lo[top] = frame_lo[top - 1]
            frame_n[top] = half
            stage[top] = 0
        elif stage[top] == 1:  # first half done (in ret): the second next
            left[top] = ret
            stage[top] = 2
            top += 1
            frame_lo[top] = frame_lo[top - 1] + half
            frame_n[top] = m - half
            stage[top] = 0
        else:
            ret = left[top] + ret
            top -= 1
    return ret


@numba.njit(**_JIT)
def _axis0_sum(a, n, single_column):
    """``x.sum(axis=0)`` of a C-ordered (n, npix) float64 ``x`` for one pixel.

    ``a[:n]`` holds the pixel's column. Several columns: the rows are added in
    order to the first; one column: pairwise from 0.
    """
    if single_column:
        return _pairwise(a, 0, n)
    if n == 0:
        return 0.0
    acc = a[0]
    for j in range(1, n):
        acc += a[j]
    return acc


@numba.njit(**_JIT)
def _power_index(snr, lows):
    """Row of :data:`~daskref.kernels.ramp_fit.OPTIMAL_POWER_TABLE` for ``snr``.

    The first matching row, or the table's length for P = 0.
    """
    for j in range(lows.shape[0]):
        if snr > lows[j]:
            return j
    return lows.shape[0]


@numba.njit(**_JIT)
def _select(a, m, k):
    """The ``k``-th smallest of ``a[:m]`` (no NaN); reorders ``a``.

    Quickselect with a median-of-three pivot and branch-free three-way partitions
    (values below the pivot, equal to it, above it): on the noisy differences of a
    ramp the comparisons of a classic partition are coin flips, and their
    mispredicted branches cost more than the moves.
    """
    left = 0
    right = m - 1
    while right > left:
        x = a[left]
        y = a[(left + right) // 2]
        z = a[right]
        if x > y:
            x, y = y, x
        if y > z:
            y = z
        if x > y:
            y = x
        pivot = y
        below = left
        for i in range(left, right + 1):
            v = a[i]
            a[i] = a[below]
            a[below] = v
            below += v < pivot
        upto = below
        for i in range(below, right + 1):
            v = a[i]
            a[i] = a[upto]
            a[upto] = v
            upto += v == pivot
        if k < below:
            right = below - 1
        elif k < upto:
            return pivot
        else:
            left = upto
    return a[k]


@numba.njit(**_JIT)
def _median_of(buf, n_all):
    """``_masked_median`` of ``buf[:n_all]`` (NaN for a missing value); reorders ``buf``.

    The same two middle order statistics of the finite values as the vectorised
    version's sort, found by selection; the median is ``0.5 * (lower + upper)``.
    """
    m = 0
    for j in range(n_all):
        v = buf[j]
        if not np.isnan(v):
            buf[m] = v
            m += 1
    return _median_finite(buf, m)


@numba.njit(**_JIT)
def _median_finite(buf, m):
    """Median of the ``m`` finite values ``buf[:m]`` (NaN for none); reorders ``buf``."""
    if m == 0:
        return np.nan
    lo = (m - 1) // 2
    hi = m // 2
    a = _select(buf, m, lo)
    b = a
    if hi > lo:  # the next order statistic: a again if it repeats, else the next value
        at_most = 0
        b = np.inf
        for j in range(m):
            v = buf[j]
            at_most += v <= a
            if v > a and v < b:
                b = v
        if at_most > hi:
            b = a
    return 0.5 * (a + b)


@numba.njit(**_JIT)
def median_differences(data, gdq, sat_flag, dnu_flag, jump_flag, pairs, width, out):
    """Each pixel's median usable first difference, for many pixels at once (DN).

    The differences :func:`fit_block` collects for its Poisson rate estimate
    (consecutive good groups, not across a jump, none after saturation), gathered
    for ``width`` pixels into the columns of a (difference, pixel) buffer, missing
    ones as ``+inf``, and sorted by a sorting network (:mod:`._sort_numba`): the
    same two middle values as :func:`_median_finite`'s selection, without its
    unpredictable branches. For a few dozen differences per pixel.

    Parameters
    ----------
    data : (npix, nint, ngroup) float, pixel-major
    gdq : (npix, nint, ngroup) uint8
    sat_flag, dnu_flag, jump_flag : int
    pairs : ndarray of intp, (ncomparators, 2)
        Sorting network of ``nint * (ngroup - 1)`` values.
    width : int
    out : ndarray of float64, (npix,)
        NaN for a pixel without any usable difference.
    """
    npix, nint, ngroup = data.shape
    ndiff = nint * (ngroup - 1)
    buf = np.empty((max(ndiff, 1), width))
    tmp = np.empty(width)
    count = np.empty(width, np.int64)
    for p0 in range(0, npix, width):
        bw = min(width, npix - p0)
        for j in range(bw):
            p = p0 + j
            nd = 0
            for i in range(nint):
                satrun = False
                prev_good = False
                prev_y = 0.0
                for g in range(ngroup):
                    v = np.float64(data[p, i, g])
                    q = gdq[p, i, g]
                    satrun = satrun or (q & sat_flag) != 0
                    gd = (not satrun) and (q & dnu_flag) == 0 and np.isfinite(v)
                    jp = g > 0 and (q & jump_flag) != 0
                    yv = v if gd else 0.0
                    if gd and prev_good and not jp:
                        buf[nd, j] = yv - prev_y
                        nd += 1
                    prev_good = gd
                    prev_y = yv
            count[j] = nd
            for k in range(nd, ndiff):
                buf[k, j] = np.inf
        sort_columns(buf, pairs, bw, tmp)
        for j in range(bw):
            m = count[j]
            if m == 0:
                out[p0 + j] = np.nan
            else:
                out[p0 + j] = 0.5 * (buf[(m - 1) // 2, j] + buf[m // 2, j])


@numba.njit(**_JIT)
def fit_block(data, gdq, pdq, cds, gain_in, t, tgroup, tgroup2, nframes_sqrt, optimal,
              save_opt, max_segments, max_cr, flags, lows, powers, out_f, out_i, opt, crmag,
              have_median, median_diff):
    """Fit every pixel of a block; see :func:`daskref.kernels.ramp_fit._fit_pixels`.

    Parameters
    ----------
    data : float32/float64 (npix, nint, ngroup)
        Pixel-major (see :func:`~daskref.kernels.ramp_fit._fit_pixels`): a pixel's
        samples in one run of memory. Read in (integration, group, pixel) order, the
        samples of a pixel lie a whole plane apart, all in the same cache set.
    gdq : uint8 (npix, nint, ngroup)
    pdq : uint32 (npix,)
    cds, gain_in : float64 (npix,)
    t : float64 (ngroup,)
        Group times.
    tgroup, tgroup2 : float
        TGROUP and ``tgroup ** 2`` (from Python, as the vectorised code has it).
    nframes_sqrt : float
    optimal, save_opt : bool
    max_segments, max_cr : int
    flags : int64 (5,)
        SATURATED, DO_NOT_USE, JUMP_DET, NO_GAIN_VALUE, 0.
    lows, powers : float64
        :data:`~daskref.kernels.ramp_fit.OPTIMAL_POWER_TABLE`.
    out_f : float64 (8, nint + 1, npix)
        Filled: [0] rateints/rate, [1] var_r, [2] var_p, each per integration
        (rows 0..nint-1) and for the exposure (row nint).
    out_i : uint32 (nint + 1, npix)
        dq_ints (rows 0..nint-1) and dq (row nint).
    opt : float64 (7, nint, max_segments, npix)
        slope, sigslope, var_poisson, var_rnoise, yint, sigyint, weights (with
        ``save_opt``), pre-filled NaN (weights 0).
    crmag : float64 (nint, max_cr, npix)
        Pre-filled 0 (with ``save_opt``).
    have_median : bool
        ``median_diff`` (npix,) holds the median usable difference of each pixel
        (:func:`median_differences`); otherwise it is found here, pixel by pixel.
    """
    npix, nint, ngroup = data.shape
    sat_flag, dnu_flag, jump_flag, nogain_flag = flags[0], flags[1], flags[2], flags[3]
    ndiff = nint * max(ngroup - 1, 0)
    single_block = npix == 1

    # how many pixels of the block have segment s of integration i: the vectorised
    # fit ran each (i, s) on those pixels together, which decides its sums' order
    seg_pixels = np.zeros((nint, ngroup + 1), np.int64)
    for p in range(npix):
        for i in range(nint):
            nseg = 1
            for g in range(1, ngroup):
                if (gdq[p, i, g] & jump_flag) != 0:
                    nseg += 1
            for s in range(nseg):
                seg_pixels[i, s] += 1

    y = np.empty((nint, ngroup))
    good = np.empty((nint, ngroup), np.bool_)
    jump = np.empty((nint, ngroup), np.bool_)
    satm = np.empty((nint, ngroup), np.bool_)
    segid = np.empty((nint, ngroup), np.int64)
    diffs = np.empty(max(ndiff, 1))
    singles = np.empty(nint)
    w = np.empty(ngroup)
    xc = np.empty(ngroup)
    tmp = np.empty(ngroup)
    ybuf = np.empty(ngroup)
    wtab = np.empty((lows.shape[0] + 1, ngroup + 1, ngroup))
    wdone = np.zeros((lows.shape[0] + 1, ngroup + 1), np.bool_)
    pi = lows.shape[0]
    xybuf = np.empty(ngroup)
    inv_c_int = np.empty(nint)
    per_int = np.empty(nint)
    seg_n = np.empty(ngroup + 1, np.int64)
    seg_cnt = np.empty((nint, ngroup + 1), np.int64)
    seg_first = np.empty((nint, ngroup + 1), np.int64)
    seg_last = np.empty((nint, ngroup + 1), np.int64)
    seg_vals = np.empty((7, ngroup + 1))  # slope, sigslope, yint, sigyint, var_r, var_p
    for p in range(npix):
        rn = cds[p] / np.sqrt(2.0) / nframes_sqrt
        rn_ok = np.isfinite(rn) and rn > 0
        if not rn_ok:
            rn = 1.0
        gn = gain_in[p]
        gain_ok = np.isfinite(gn) and gn > 0
        if not gain_ok:
            gn = 1.0
        # one pass over the groups: flags, the usable first differences (for the
        # Poisson rate) and each segment's count, first and last good group
        nd = 0
        for i in range(nint):
            satrun = False
            count = 0
            seg_cnt[i, 0] = 0
            seg_first[i, 0] = -1
            seg_last[i, 0] = -1
            prev_good = False
            prev_y = 0.0
            for g in range(ngroup):
                v = np.float64(data[p, i, g])
                q = gdq[p, i, g]
                sm = (q & sat_flag) != 0
                satm[i, g] = sm
                satrun = satrun or sm
                gd = (not satrun) and (q & dnu_flag) == 0 and np.isfinite(v)
                good[i, g] = gd
                jp = g > 0 and (q & jump_flag) != 0
                jump[i, g] = jp
                if jp:
                    count += 1
                    seg_cnt[i, count] = 0
                    seg_first[i, count] = -1
                    seg_last[i, count] = -1
                segid[i, g] = count
                yv = v if gd else 0.0
                y[i, g] = yv
                if gd:
                    if prev_good and not jp:
                        diffs[nd] = yv - prev_y
                        nd += 1
                    if seg_first[i, count] < 0:
                        seg_first[i, count] = g
                    seg_last[i, count] = g
                    seg_cnt[i, count] += 1
                prev_good = gd
                prev_y = yv
        if ndiff > 0:
            med = median_diff[p] if have_median else _median_finite(diffs, nd)
            r_est = med / tgroup
        else:
            r_est = np.nan
        if not np.isfinite(r_est):
            for i in range(nint):
                first0 = -1
                for g in range(ngroup):
                    if good[i, g] and segid[i, g] == 0:
                        first0 = g
                        break
                singles[i] = y[i, first0] / t[first0] if first0 >= 0 else np.nan
            r_est = _median_of(singles, nint)
        pois_ok = gain_ok and np.isfinite(r_est) and r_est > 0
        rate_pos = r_est if pois_ok else 0.0

        for i in range(nint):
            nseg = segid[i, ngroup - 1] + 1 if ngroup > 0 else 0
            any_multi = False
            for s in range(nseg):
                single_col = seg_pixels[i, s] == 1 if s > 0 else single_block
                n = seg_cnt[i, s]
                first = seg_first[i, s]
                last = seg_last[i, s]
                if first < 0:  # argmax of no True: the first and last group
                    first = 0
                    last = ngroup - 1
                y_first = y[i, first]
                t_first = t[first]
                power = 0.0
                mid = (last - first) / 2.0
                if optimal:
                    diff = y[i, last] - y_first
                    rg = rn * gn
                    sig2_e = rg * rg + diff * gn
                    snr = diff * gn / np.sqrt(sig2_e) if (sig2_e > 0 and gain_ok) else 0.0
                    pi = _power_index(snr if snr > 0 else 0.0, lows)
                    power = powers[pi] if pi < lows.shape[0] else 0.0
                    # the weights depend on the segment's length and P only: each
                    # (P, length) is computed once per block, not per pixel
                    seg_len = last - first + 1
                    if mid > 0 and power != 0.0 and power != 1.0 and not wdone[pi, seg_len]:
                        for k in range(seg_len):
                            wtab[pi, seg_len, k] = np.abs((k - mid) / mid) ** power
                        wdone[pi, seg_len] = True
                # one pass: weights, times and the five sums, each added in numpy's
                # order (groups in turn from the first; pairwise for one column)
                s1 = sx = sxx = sy = sxy = 0.0
                for g in range(ngroup):
                    m = good[i, g] and segid[i, g] == s
                    xg = t[g] - t_first if m else 0.0
                    if optimal:
                        if m and mid > 0:
                            # pow(x, 0) is 1 and pow(x, 1) is x exactly: no libm call
                            if power == 0.0:
                                wg = 1.0
                            elif power == 1.0:
                                wg = np.abs(((g - first) - mid) / mid)
                            else:
                                wg = wtab[pi, last - first + 1, g - first]
                        else:
                            wg = 0.0
                    else:
                        wg = 1.0 if m else 0.0
                    yg = y[i, g]
                    wx = wg * xg
                    if single_col:
                        w[g] = wg
                        xc[g] = wx
                        tmp[g] = wx * xg
                        ybuf[g] = wg * yg
                        xybuf[g] = wx * yg
                    elif g == 0:
                        s1, sx, sxx, sy, sxy = wg, wx, wx * xg, wg * yg, wx * yg
                    else:
                        s1 += wg
                        sx += wx
                        sxx += wx * xg
                        sy += wg * yg
                        sxy += wx * yg
                if single_col:
                    s1 = _pairwise(w, 0, ngroup)
                    sx = _pairwise(xc, 0, ngroup)
                    sxx = _pairwise(tmp, 0, ngroup)
                    sy = _pairwise(ybuf, 0, ngroup)
                    sxy = _pairwise(xybuf, 0, ngroup)
                det = s1 * sxx - sx * sx
                fit = n >= 2 and det > 0
                single = n == 1
                slope = (s1 * sxy - sx * sy) / det if fit else np.nan
                icpt = (sxx * sy - sx * sxy) / det
                yint = icpt - slope * t_first if fit else np.nan
                sigslope = rn * np.sqrt(s1 / det) if fit else np.nan
                sigyint = (rn * np.sqrt((sxx + 2 * t_first * sx + (t_first * t_first) * s1) / det)
                           if fit else np.nan)
                nn = np.float64(n)
                var_r = 12.0 * (rn * rn) / ((nn * nn * nn - nn) * tgroup2) if fit else np.nan
                var_p = rate_pos / (tgroup * gn * (nn - 1)) if (fit and gain_ok) else 0.0
                if single:
                    slope = y_first / t_first
                    yint = 0.0
                    var_r = 2.0 * (rn * rn) / (t_first * t_first)
                    if gain_ok:
                        var_p = rate_pos / (t_first * gn)
                    sigslope = np.sqrt(2.0) * rn / t_first
                if not (fit or single):
                    var_p = np.nan
                seg_n[s] = n
                seg_vals[0, s] = slope
                seg_vals[1, s] = sigslope
                seg_vals[2, s] = yint
                seg_vals[3, s] = sigyint
                seg_vals[4, s] = var_r
                seg_vals[5, s] = var_p
                any_multi = any_multi or n >= 2
            sum_inv_c = 0.0
            sum_slope = 0.0
            sum_inv_r = 0.0
            sum_inv_p = 0.0
            for s in range(nseg):
                n = seg_n[s]
                use = rn_ok and (n >= 2 or (s == 0 and n == 1 and not any_multi))
                var_r = seg_vals[4, s]
                var_p = seg_vals[5, s]
                inv_c = 1.0 / (var_r + var_p) if use else 0.0
                sum_inv_r += 1.0 / var_r if use else 0.0
                sum_inv_p += 1.0 / var_p if (use and pois_ok) else 0.0
                sum_inv_c += inv_c
                sum_slope += inv_c * seg_vals[0, s] if use else 0.0
                if save_opt and s < max_segments:
                    opt[0, i, s, p] = seg_vals[0, s] if use else np.nan
                    opt[1, i, s, p] = seg_vals[1, s] if use else np.nan
                    opt[2, i, s, p] = var_p if use else np.nan
                    opt[3, i, s, p] = var_r if use else np.nan
                    opt[4, i, s, p] = seg_vals[2, s] if use else np.nan
                    opt[5, i, s, p] = seg_vals[3, s] if use else np.nan
                    opt[6, i, s, p] = inv_c
            has = sum_inv_c > 0
            out_f[0, i, p] = sum_slope / sum_inv_c if has else np.nan
            out_f[1, i, p] = 1.0 / sum_inv_r if has else np.nan
            out_f[2, i, p] = (1.0 / sum_inv_p if pois_ok else 0.0) if has else np.nan
            inv_c_int[i] = sum_inv_c
            d = pdq[p]
            any_jump = False
            for g in range(ngroup):
                any_jump = any_jump or jump[i, g]
            if any_jump:
                d |= jump_flag
            if ngroup > 0 and satm[i, 0]:
                d |= sat_flag
            if not has:
                d |= dnu_flag
            out_i[i, p] = d
            if save_opt:
                for g in range(1, ngroup):
                    slot = segid[i, g] - 1
                    if jump[i, g] and slot < max_cr:
                        slot = min(max(slot, 0), max_cr - 1)
                        ok = good[i, g] and good[i, g - 1]
                        crmag[i, slot, p] = y[i, g] - y[i, g - 1] if ok else np.nan
        # the exposure: integrations combined by their inverse variances
        has_any = False
        for i in range(nint):
            has_any = has_any or inv_c_int[i] > 0
        for i in range(nint):
            per_int[i] = inv_c_int[i] * out_f[0, i, p] if inv_c_int[i] > 0 else 0.0
        num = _axis0_sum(per_int, nint, single_block)
        for i in range(nint):
            per_int[i] = inv_c_int[i]
        den = _axis0_sum(per_int, nint, single_block)
        out_f[0, nint, p] = num / den if has_any else np.nan
        for i in range(nint):
            per_int[i] = 1.0 / out_f[1, i, p] if inv_c_int[i] > 0 else 0.0
        s_r = _axis0_sum(per_int, nint, single_block)
        out_f[1, nint, p] = 1.0 / s_r if has_any else np.nan
        for i in range(nint):
            per_int[i] = 1.0 / out_f[2, i, p] if (inv_c_int[i] > 0 and pois_ok) else 0.0
        inv_p = _axis0_sum(per_int, nint, single_block)
        out_f[2, nint, p] = (1.0 / inv_p if pois_ok else 0.0) if has_any else np.nan
        d = pdq[p]
        for i in range(nint):
            d |= out_i[i, p] & (jump_flag | sat_flag)
        if not has_any:
            d |= dnu_flag
        if not gain_ok:
            d |= nogain_flag
            for i in range(nint):
                out_i[i, p] |= nogain_flag
        out_i[nint, p] = d
