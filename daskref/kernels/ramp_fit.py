"""Ramp fitting on one chunk: segment slopes, integration and exposure rates.

Pure numpy, vectorised over pixels. The semantics follow the JWST ``ramp_fitting``
step (ordinary least squares with the "optimal" weighting of Fixsen et al. 2000);
see :func:`fit_ramps` for the rules and the formulas.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from daskref import dq
from daskref.kernels._clip_numba import copy_rows
from daskref.kernels._groups import running_count, running_or
from daskref.kernels._ramp_fit_numba import fit_block, median_differences
from daskref.kernels._sort_numba import sorting_network

#: Signal-to-noise thresholds (exclusive lower bounds) and the weighting exponent P
#: used above each of them (Fixsen et al. 2000, table as in the JWST documentation).
OPTIMAL_POWER_TABLE: tuple[tuple[float, float], ...] = (
    (100.0, 10.0),
    (50.0, 6.0),
    (20.0, 3.0),
    (10.0, 1.0),
    (5.0, 0.4),
)

RATE_NAMES = (
    "rate", "rate_err", "rate_var_poisson", "rate_var_rnoise", "dq",
    "rateints", "rateints_err", "rateints_var_poisson", "rateints_var_rnoise", "dq_ints",
)
"""Names of the outputs of :func:`fit_ramps` that are always present."""

OPT_NAMES = (
    "slope", "sigslope", "var_poisson", "var_rnoise", "yint", "sigyint", "weights",
    "pedestal", "crmag",
)
"""Names of the optional (``save_opt=True``) outputs of :func:`fit_ramps`."""


def optimal_power(snr: np.ndarray) -> np.ndarray:
    """Weighting exponent P for a segment signal-to-noise ratio.

    Parameters
    ----------
    snr : numpy.ndarray
        Segment signal-to-noise ratio (dimensionless); NaN counts as 0.

    Returns
    -------
    numpy.ndarray
        P: 0 for S <= 5, 0.4 for 5 < S <= 10, 1 up to 20, 3 up to 50, 6 up to 100
        and 10 above (:data:`OPTIMAL_POWER_TABLE`).
    """
    snr = np.asarray(snr, dtype=np.float64)
    conds = [snr > lo for lo, _ in OPTIMAL_POWER_TABLE]
    return np.select(conds, [p for _, p in OPTIMAL_POWER_TABLE], 0.0)


def group_times(ngroups: int, tgroup: float, nframes: int = 1, groupgap: int = 0) -> np.ndarray:
    """Effective exposure time of each group, in s.

    A group averages ``nframes`` frames and is followed by ``groupgap`` dropped frames,
    so ``tgroup = (nframes + groupgap) * tframe``. Group ``g`` is the mean of the frames
    read at ``tframe * (g * (nframes + groupgap) + k)``, ``k = 1 .. nframes``:

        t_g = g * tgroup + tframe * (nframes + 1) / 2

    which is ``(g + 1) * tgroup`` for ``nframes=1, groupgap=0``.

    Parameters
    ----------
    ngroups : int
        Number of groups.
    tgroup : float
        Group time (TGROUP), s.
    nframes, groupgap : int
        Frames averaged per group (NFRAMES) and frames dropped between groups
        (GROUPGAP).

    Returns
    -------
    numpy.ndarray, shape (ngroups,), float64, s
    """
    tframe = tgroup / (nframes + groupgap)
    return np.arange(ngroups) * tgroup + tframe * (nframes + 1) / 2.0


def _masked_median(a: np.ndarray) -> np.ndarray:
    """Median along axis 0 ignoring NaN, NaN where no finite value (warning-free)."""
    if a.shape[0] == 0:
        return np.full(a.shape[1:], np.nan)
    s = np.sort(a, axis=0)  # NaN sort last
    n = np.isfinite(a).sum(axis=0)
    lo = np.clip((n - 1) // 2, 0, a.shape[0] - 1)[None]
    hi = np.clip(n // 2, 0, a.shape[0] - 1)[None]
    med = 0.5 * (np.take_along_axis(s, lo, 0)[0] + np.take_along_axis(s, hi, 0)[0])
    return np.where(n > 0, med, np.nan)


def _first_last(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count, first and last True index along axis 0 of a boolean (G, ...) mask."""
    n = m.sum(axis=0)
    first = np.argmax(m, axis=0)
    last = m.shape[0] - 1 - np.argmax(m[::-1], axis=0)
    return n, first, last


def _take(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.take_along_axis(a, idx[None], 0)[0]


def _fit_segment(y, m, t, *, tgroup, rn, gain, gain_ok, rate_pos, optimal):
    """Fit the groups ``m`` (G, ...) of ``y`` (zeros where not ``m``).

    Returns a dict of (...) float64 arrays (one value per pixel); entries are
    meaningful where ``n >= 2`` (a fit) or ``n == 1`` (a single group, slope =
    value / time).
    """
    n, first, last = _first_last(m)
    y_first = _take(y, first)
    t_first = t[first]
    t_single = t_first
    tcol = t.reshape((-1,) + (1,) * (m.ndim - 1))
    xc = np.where(m, tcol - t_first, 0.0)  # time from the segment's first group
    with np.errstate(divide="ignore", invalid="ignore"):
        if optimal:
            diff = _take(y, last) - y_first  # DN over the segment
            sig2_e = (rn * gain) ** 2 + diff * gain  # variance of diff*gain, e-^2
            snr = np.where((sig2_e > 0) & gain_ok, diff * gain / np.sqrt(sig2_e), 0.0)
            power = optimal_power(np.where(snr > 0, snr, 0.0))
            k = np.arange(m.shape[0]).reshape(tcol.shape) - first  # index within segment
            mid = (last - first) / 2.0
            w = np.abs((k - mid) / mid) ** power
            w = np.where(m & (mid > 0), w, 0.0)
        else:
            w = m.astype(np.float64)
        wx = w * xc
        s1 = w.sum(axis=0)
        sx = wx.sum(axis=0)
        sxx = (wx * xc).sum(axis=0)
        sy = (w * y).sum(axis=0)
        sxy = (wx * y).sum(axis=0)
        det = s1 * sxx - sx * sx
        fit = (n >= 2) & (det > 0)
        single = n == 1
        slope = np.where(fit, (s1 * sxy - sx * sy) / det, np.nan)
        icpt = (sxx * sy - sx * sxy) / det  # at the first group's time
        yint = np.where(fit, icpt - slope * t_first, np.nan)
        sigslope = np.where(fit, rn * np.sqrt(s1 / det), np.nan)
        sigyint = np.where(
            fit, rn * np.sqrt((sxx + 2 * t_first * sx + t_first**2 * s1) / det), np.nan
        )
        nn = n.astype(np.float64)
        var_r = np.where(fit, 12.0 * rn**2 / ((nn**3 - nn) * tgroup**2), np.nan)
        var_p = np.where(fit & gain_ok, rate_pos / (tgroup * gain * (nn - 1)), 0.0)
        # single good group: the value over its time, variances with the pipeline's
        # n -> 2 convention (var_r = 2 R^2 / t^2, var_p = rate / (t * gain))
        slope = np.where(single, y_first / t_single, slope)
        yint = np.where(single, 0.0, yint)
        var_r = np.where(single, 2.0 * rn**2 / t_single**2, var_r)
        var_p = np.where(single & gain_ok, rate_pos / (t_single * gain), var_p)
        sigslope = np.where(single, np.sqrt(2.0) * rn / t_single, sigslope)
    var_p = np.where(fit | single, var_p, np.nan)
    return {
        "n": n, "slope": slope, "sigslope": sigslope, "yint": yint, "sigyint": sigyint,
        "var_r": var_r, "var_p": var_p,
    }


def fit_ramps(
    data: np.ndarray,
    groupdq: np.ndarray | None = None,
    *,
    tgroup: float,
    readnoise,
    gain,
    nframes: int = 1,
    groupgap: int = 0,
    weighting: Literal["optimal", "unweighted"] = "optimal",
    pixeldq: np.ndarray | None = None,
    save_opt: bool = False,
    max_segments: int | None = None,
) -> dict[str, np.ndarray]:
    """Fit up-the-ramp data: rates per integration and per exposure, with variances.

    Parameters
    ----------
    data : numpy.ndarray, (integration, group, y, x), DN
        Calibrated ramps (bias-subtracted, linearised). NaN groups are ignored.
    groupdq : numpy.ndarray, (integration, group, y, x), uint8, optional
        Group DQ; None means every group is good.
    tgroup : float
        Group time TGROUP, s.
    readnoise : float or numpy.ndarray (y, x), DN
        CDS read noise (the READNOISE reference convention). The noise of one group
        is ``readnoise / sqrt(2) / sqrt(nframes)``. Pixels with a non-finite or
        non-positive value get no rate (NaN, DO_NOT_USE).
    gain : float or numpy.ndarray (y, x), e-/DN
        Pixels with a non-finite or non-positive gain get zero Poisson variance,
        S/N 0 (equal weights) and the NO_GAIN_VALUE flag.
    nframes, groupgap : int
        NFRAMES and GROUPGAP, for the group times and the per-group read noise.
    weighting : {"optimal", "unweighted"}
        "optimal": Fixsen et al. (2000) power-law weights chosen by the segment S/N;
        "unweighted": ordinary least squares with equal weights.
    pixeldq : numpy.ndarray (y, x), uint32, optional
        OR'ed into ``dq`` and ``dq_ints``.
    save_opt : bool
        Also return the segment-level fit products (``_fitopt`` layout).
    max_segments : int, optional
        Length of the ``segment`` axis of the optional products (and ``max_segments
        - 1``, at least 1, of the ``crmag`` axis). Default: the largest number of
        segments in ``data``. Rates always use every segment; only the stored
        segment products are truncated.

    Returns
    -------
    dict of numpy.ndarray
        Rates in DN/s, variances in (DN/s)^2, float32:

        * ``rate``, ``rate_err``, ``rate_var_poisson``, ``rate_var_rnoise`` (y, x)
        * ``rateints``, ``rateints_err``, ``rateints_var_poisson``,
          ``rateints_var_rnoise`` (integration, y, x)
        * ``dq`` (y, x) and ``dq_ints`` (integration, y, x), uint32
        * with ``save_opt``: ``slope``, ``sigslope``, ``var_poisson``, ``var_rnoise``,
          ``yint`` (DN), ``sigyint`` (DN), ``weights`` ((DN/s)^-2), all
          (integration, segment, y, x); ``pedestal`` (integration, y, x), DN;
          ``crmag`` (integration, cr, y, x), DN.

    Notes
    -----
    *Segments.* Groups flagged DO_NOT_USE, non-finite groups, and every group from
    the first SATURATED one on are excluded. A JUMP_DET flag at group g starts a new
    segment at g, so the difference g-1 -> g is never used (a flag on group 0 has no
    effect). Excluded groups inside a
    segment do not split it (the fit uses the true group times).

    *Fit.* Times are :func:`group_times`. A segment with n >= 2 groups is fit by
    weighted least squares with weights ``|(k - k_mid) / k_mid| ** P``, ``k`` the
    group index within the segment, ``k_mid = (k_last) / 2``, and P from
    :func:`optimal_power` of ``S = D g / sqrt((R g)^2 + D g)`` with D the last minus
    first group of the segment (DN), g the gain and R the per-group read noise
    (``weighting="unweighted"``: P = 0). Segment variances (R per group, in DN):

        var_rnoise = 12 R^2 / ((n^3 - n) tgroup^2)
        var_poisson = r_est / (tgroup g (n - 1))

    where ``r_est`` is the median over all integrations of the usable first
    differences (within segments) divided by ``tgroup``, or, for a pixel with none,
    the median of its single-group rates; ``var_poisson = 0`` where ``r_est <= 0``.
    ``sigslope``/``sigyint`` are the formal read-noise errors of the weighted fit,
    ``yint`` its intercept at t = 0.

    *Single group.* Segments with one good group are ignored when the integration
    has a segment with two or more. Otherwise, when the first segment has exactly one
    good group (e.g. saturation from group 1 on), its rate is value / t_g with
    ``var_rnoise = 2 R^2 / t_g^2`` and ``var_poisson = r_est / (t_g g)`` (the
    pipeline's n -> 2 convention). Other lone groups (after a jump) are not used.

    *Combination.* Per integration, segment slopes are averaged with weights
    ``1 / (var_poisson + var_rnoise)``; ``var_rnoise`` and ``var_poisson`` of the
    integration are ``1 / sum(1 / var)`` over its segments, and its error is
    ``sqrt(var_poisson + var_rnoise)``. Integrations are combined the same way, with
    weights ``sum_s 1 / (var_poisson_s + var_rnoise_s)``.

    *DQ.* ``dq_ints`` is ``pixeldq`` OR JUMP_DET (any jump in the integration) OR
    SATURATED (saturated in group 0) OR DO_NOT_USE (no usable data; the rates and
    variances are then NaN). ``dq`` ORs JUMP_DET and SATURATED over integrations and
    is DO_NOT_USE only when every integration is.

    *Optional products.* Segment slot s holds the s-th jump-delimited segment; slots
    not used for the rate (no data, lone groups that were ignored, padding) are NaN
    with weight 0. ``weights`` is ``1 / (var_poisson + var_rnoise)``. ``pedestal`` is
    ``data[group 0] - rateints * t_0`` (0 where group 0 is saturated or not finite,
    or the integration has no rate); ``crmag`` holds, in order, the first differences at the
    groups flagged JUMP_DET (0 in unused slots, NaN when the jump group or the one
    before it is unusable).

    References
    ----------
    Fixsen, D. J. et al. 2000, PASP 112, 1350.
    JWST pipeline documentation, ``ramp_fitting`` step ("Slope and Variance
    Calculations").
    """
    if weighting not in ("optimal", "unweighted"):
        raise ValueError(f"weighting must be 'optimal' or 'unweighted', got {weighting!r}")
    data = np.asarray(data)
    if data.ndim != 4:
        raise ValueError(f"data must be (integration, group, y, x); got shape {data.shape}")
    nint, ngroup, ny, nx = data.shape
    npix = ny * nx
    flat = data.reshape(nint, ngroup, npix)
    gdq = (np.zeros(flat.shape, dq.GROUP_DTYPE) if groupdq is None
           else np.asarray(groupdq).astype(dq.GROUP_DTYPE, copy=False).reshape(flat.shape))
    pdq = (np.zeros(npix, dq.PIXEL_DTYPE) if pixeldq is None
           else np.broadcast_to(np.asarray(pixeldq).astype(dq.PIXEL_DTYPE), (ny, nx)).ravel())
    cds = np.broadcast_to(np.asarray(readnoise, dtype=np.float64), (ny, nx)).ravel()
    gain = np.broadcast_to(np.asarray(gain, dtype=np.float64), (ny, nx)).ravel()

    if max_segments is None:  # the largest number of segments in the data
        jumps = (gdq[:, 1:] & dq.JUMP_DET) != 0
        max_segments = int(jumps.sum(axis=1, dtype=np.int32).max()) + 1 if jumps.size else 1
    max_cr = max(max_segments - 1, 1)

    per_int = ("rateints", "rateints_err", "rateints_var_poisson", "rateints_var_rnoise",
               "dq_ints")
    shapes = {k: (nint,) if k in per_int else () for k in RATE_NAMES}
    if save_opt:
        shapes |= {k: (nint, max_segments) for k in OPT_NAMES}
        shapes |= {"pedestal": (nint,), "crmag": (nint, max_cr)}
    out = {}
    # Every pixel is independent: fit blocks of pixels, so that the float64
    # temporaries stay small (and in cache) whatever the chunk size.
    for p0 in range(0, npix, PIXEL_BLOCK):
        sl = slice(p0, min(p0 + PIXEL_BLOCK, npix))
        block = _fit_pixels(
            flat[..., sl], gdq[..., sl], pdq[sl], cds[sl], gain[sl], tgroup=tgroup,
            nframes=nframes, groupgap=groupgap, optimal=weighting == "optimal",
            save_opt=save_opt, max_segments=max_segments, max_cr=max_cr,
        )
        for k, v in block.items():
            if k not in out:
                out[k] = np.empty(shapes[k] + (npix,), dtype=v.dtype)
            out[k][..., sl] = v
    return {k: v.reshape(shapes[k] + (ny, nx)) for k, v in out.items()}


#: Most differences per pixel whose median is found by a sorting network.
NETWORK_MEDIAN_MAX = 64

#: Pixels fit together by :func:`fit_ramps`: bounds its float64 temporaries (a few
#: tens of bytes per pixel, group and integration of the block).
PIXEL_BLOCK = 8192


def _fit_pixels(data, gdq, pdq, cds, gain, *, tgroup, nframes, groupgap, optimal, save_opt,
                max_segments, max_cr):
    """Run :func:`fit_ramps` on a block of pixels (compiled loop).

    ``data``/``gdq`` are (integration, group, pixel), ``pdq``/``cds``/``gain``
    (pixel,); the outputs have a last ``pixel`` axis. Bit-identical to
    :func:`_fit_pixels_numpy` (:mod:`._ramp_fit_numba`), several times faster.
    """
    nint, ngroup, npix = data.shape
    t = group_times(ngroup, tgroup, nframes, groupgap)
    flags = np.array([dq.SATURATED, dq.DO_NOT_USE, dq.JUMP_DET, dq.NO_GAIN_VALUE, 0], np.int64)
    lows = np.array([lo for lo, _ in OPTIMAL_POWER_TABLE], np.float64)
    powers = np.array([pw for _, pw in OPTIMAL_POWER_TABLE], np.float64)
    out_f = np.empty((3, nint + 1, npix))
    out_i = np.empty((nint + 1, npix), dq.PIXEL_DTYPE)
    nseg_opt = max_segments if save_opt else 1
    opt = np.full((7, nint if save_opt else 1, nseg_opt, npix if save_opt else 1), np.nan)
    if save_opt:
        opt[6] = 0.0
    crmag = np.zeros((nint, max_cr, npix) if save_opt else (1, 1, 1))
    data_pm = _pixel_major(data)
    gdq_pm = _pixel_major(np.asarray(gdq, dtype=dq.GROUP_DTYPE))
    ndiff = nint * max(ngroup - 1, 0)
    # a few dozen differences per pixel: their medians by a sorting network across
    # pixels; more: by selection per pixel (the network grows as n log^2 n)
    have_median = 0 < ndiff <= NETWORK_MEDIAN_MAX
    median_diff = np.empty(npix if have_median else 1)
    if have_median:
        median_differences(data_pm, gdq_pm, dq.SATURATED, dq.DO_NOT_USE, dq.JUMP_DET,
                           sorting_network(ndiff), 256, median_diff)
    fit_block(data_pm, gdq_pm,
              np.ascontiguousarray(pdq, dtype=dq.PIXEL_DTYPE),
              np.ascontiguousarray(cds, dtype=np.float64),
              np.ascontiguousarray(gain, dtype=np.float64), t, float(tgroup),
              float(tgroup) ** 2, float(np.sqrt(nframes)), bool(optimal), bool(save_opt),
              int(max_segments), int(max_cr), flags, lows, powers, out_f, out_i, opt, crmag,
              have_median, median_diff)
    rateints, var_r_int, var_p_int = out_f[0, :nint], out_f[1, :nint], out_f[2, :nint]
    rate, var_r, var_p = out_f[0, nint], out_f[1, nint], out_f[2, nint]
    opt_by_name = dict(zip(("slope", "sigslope", "var_poisson", "var_rnoise", "yint",
                            "sigyint", "weights"), opt, strict=True)) if save_opt else {}
    sat0 = (gdq[:, 0] & dq.SATURATED) != 0 if ngroup else np.zeros((nint, npix), bool)
    return _outputs(data, t, sat0, rate, var_p, var_r, out_i[nint], rateints, var_p_int,
                    var_r_int, out_i[:nint], opt_by_name, crmag, save_opt)


def _outputs(data, t, sat0, rate, var_p, var_r, dq_rate, rateints, var_p_int, var_r_int,
             dq_ints, opt, crmag, save_opt) -> dict:
    """The float64 results of a block as :func:`fit_ramps`' float32 / DQ outputs."""
    f4 = np.float32
    out = {
        "rate": rate.astype(f4),
        "rate_err": np.sqrt(var_p + var_r).astype(f4),
        "rate_var_poisson": var_p.astype(f4),
        "rate_var_rnoise": var_r.astype(f4),
        "dq": dq_rate.astype(dq.PIXEL_DTYPE),
        "rateints": rateints.astype(f4),
        "rateints_err": np.sqrt(var_p_int + var_r_int).astype(f4),
        "rateints_var_poisson": var_p_int.astype(f4),
        "rateints_var_rnoise": var_r_int.astype(f4),
        "dq_ints": dq_ints.astype(dq.PIXEL_DTYPE),
    }
    if save_opt:
        out.update({k: v.astype(f4) for k, v in opt.items()})
        nint, ngroup = data.shape[:2]
        t0 = t[0] if ngroup else np.nan
        y0 = (data[:, 0].astype(np.float64) if ngroup
              else np.full((nint,) + data.shape[2:], np.nan))
        ped_ok = np.isfinite(rateints) & np.isfinite(y0) & ~sat0
        out["pedestal"] = np.where(ped_ok, y0 - rateints * t0, 0.0).astype(f4)
        out["crmag"] = crmag.astype(f4)
    return out


def _pixel_major(a: np.ndarray) -> np.ndarray:
    """(integration, group, pixel) -> C-contiguous (pixel, integration, group), tiled."""
    nint, ngroup, npix = a.shape
    out = np.empty((npix, nint * ngroup), a.dtype)
    copy_rows(a.reshape(nint * ngroup, npix).T, out)
    return out.reshape(npix, nint, ngroup)


def _fit_pixels_numpy(data, gdq, pdq, cds, gain, *, tgroup, nframes, groupgap, optimal,
                      save_opt, max_segments, max_cr):
    """The vectorised reference of :func:`_fit_pixels` (same arguments and outputs)."""
    nint, ngroup, npix = data.shape
    y_all = data.astype(np.float64)
    shape2 = (npix,)

    rn = cds / np.sqrt(2.0) / np.sqrt(nframes)  # per-group read noise, DN
    rn_ok = np.isfinite(rn) & (rn > 0)
    rn = np.where(rn_ok, rn, 1.0)
    gain_ok = np.isfinite(gain) & (gain > 0)
    gain = np.where(gain_ok, gain, 1.0)

    t = group_times(ngroup, tgroup, nframes, groupgap)
    sat = (gdq & dq.SATURATED) != 0
    good = ~running_or(sat) & ((gdq & dq.DO_NOT_USE) == 0) & np.isfinite(y_all)
    jump = (gdq & dq.JUMP_DET) != 0
    jump[:, 0] = False
    segid = running_count(jump)
    y_all = np.where(good, y_all, 0.0)

    # Poisson rate estimate: median of usable first differences over all integrations
    ok_diff = good[:, 1:] & good[:, :-1] & ~jump[:, 1:]
    diffs = np.where(ok_diff, y_all[:, 1:] - y_all[:, :-1], np.nan)
    r_est = _masked_median(diffs.reshape((-1,) + shape2)) / tgroup
    del diffs, ok_diff
    m0 = good & (segid == 0)
    n0 = m0.sum(axis=1)
    first0 = np.argmax(m0, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        single_rates = np.where(
            n0 > 0, np.take_along_axis(y_all, first0[:, None], 1)[:, 0] / t[first0], np.nan
        )
    r_est = np.where(np.isfinite(r_est), r_est, _masked_median(single_rates))
    pois_ok = gain_ok & np.isfinite(r_est) & (r_est > 0)
    rate_pos = np.where(pois_ok, r_est, 0.0)

    rateints = np.full((nint,) + shape2, np.nan)
    var_r_int = np.full((nint,) + shape2, np.nan)
    var_p_int = np.full((nint,) + shape2, np.nan)
    inv_c_int = np.zeros((nint,) + shape2)
    dq_ints = np.repeat(pdq[None], nint, axis=0)
    if save_opt:
        opt = {k: np.full((nint, max_segments) + shape2, np.nan)
               for k in ("slope", "sigslope", "var_poisson", "var_rnoise", "yint", "sigyint")}
        opt["weights"] = np.zeros((nint, max_segments) + shape2)
        crmag = np.zeros((nint, max_cr) + shape2)

    for i in range(nint):
        nseg_pix = segid[i, -1] + 1 if ngroup else np.zeros(shape2, np.int64)
        nseg = int(nseg_pix.max()) if ngroup else 0
        # segment s is fit only on the pixels that have it (s + 1 segments or more):
        # elsewhere it has no group and contributes nothing
        segs = []
        for s in range(nseg):
            pix = slice(None) if s == 0 else np.flatnonzero(nseg_pix > s)
            segs.append((pix, _fit_segment(
                y_all[i][:, pix], good[i][:, pix] & (segid[i][:, pix] == s), t,
                tgroup=tgroup, rn=rn[pix], gain=gain[pix], gain_ok=gain_ok[pix],
                rate_pos=rate_pos[pix], optimal=optimal,
            )))
        any_multi = np.zeros(shape2, bool)
        for pix, seg in segs:
            any_multi[pix] |= seg["n"] >= 2
        sum_inv_c = np.zeros(shape2)
        sum_slope = np.zeros(shape2)
        sum_inv_r = np.zeros(shape2)
        sum_inv_p = np.zeros(shape2)
        for s, (pix, seg) in enumerate(segs):
            use = rn_ok[pix] & ((seg["n"] >= 2) | ((s == 0) & (seg["n"] == 1) & ~any_multi[pix]))
            with np.errstate(divide="ignore", invalid="ignore"):
                inv_c = np.where(use, 1.0 / (seg["var_r"] + seg["var_p"]), 0.0)
                sum_inv_r[pix] += np.where(use, 1.0 / seg["var_r"], 0.0)
                sum_inv_p[pix] += np.where(use & pois_ok[pix], 1.0 / seg["var_p"], 0.0)
            sum_inv_c[pix] += inv_c
            sum_slope[pix] += np.where(use, inv_c * seg["slope"], 0.0)
            if save_opt and s < max_segments:
                for key, src in (("slope", "slope"), ("sigslope", "sigslope"),
                                 ("var_poisson", "var_p"), ("var_rnoise", "var_r"),
                                 ("yint", "yint"), ("sigyint", "sigyint")):
                    opt[key][i, s, pix] = np.where(use, seg[src], np.nan)
                opt["weights"][i, s, pix] = inv_c
        has = sum_inv_c > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            rateints[i] = np.where(has, sum_slope / sum_inv_c, np.nan)
            var_r_int[i] = np.where(has, 1.0 / sum_inv_r, np.nan)
            var_p_int[i] = np.where(has, np.where(pois_ok, 1.0 / sum_inv_p, 0.0), np.nan)
        inv_c_int[i] = sum_inv_c
        dq_ints[i] |= np.where(jump[i].any(axis=0), dq.JUMP_DET, 0).astype(dq.PIXEL_DTYPE)
        dq_ints[i] |= np.where(sat[i, 0], dq.SATURATED, 0).astype(dq.PIXEL_DTYPE)
        dq_ints[i] |= np.where(~has, dq.DO_NOT_USE, 0).astype(dq.PIXEL_DTYPE)
        if save_opt:
            k = segid[i] - 1  # slot of each jump
            for g in range(1, ngroup):
                hit = jump[i, g] & (k[g] < max_cr)
                if not hit.any():
                    continue
                kk = np.clip(k[g], 0, max_cr - 1)[None]
                ok = good[i, g] & good[i, g - 1]
                mag = np.where(ok, y_all[i, g] - y_all[i, g - 1], np.nan)
                cur = np.take_along_axis(crmag[i], kk, 0)[0]
                np.put_along_axis(crmag[i], kk, np.where(hit, mag, cur)[None], 0)

    has_int = inv_c_int > 0
    has_any = has_int.any(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(
            has_any,
            np.where(has_int, inv_c_int * rateints, 0.0).sum(axis=0) / inv_c_int.sum(axis=0),
            np.nan,
        )
        var_r = np.where(has_any, 1.0 / np.where(has_int, 1.0 / var_r_int, 0.0).sum(axis=0),
                         np.nan)
        inv_p = np.where(has_int & pois_ok, 1.0 / var_p_int, 0.0).sum(axis=0)
        var_p = np.where(has_any, np.where(pois_ok, 1.0 / inv_p, 0.0), np.nan)
    dq_rate = pdq | np.bitwise_or.reduce(dq_ints & (dq.JUMP_DET | dq.SATURATED), axis=0)
    dq_rate |= np.where(~has_any, dq.DO_NOT_USE, 0).astype(dq.PIXEL_DTYPE)
    nogain = np.where(gain_ok, 0, dq.NO_GAIN_VALUE).astype(dq.PIXEL_DTYPE)
    dq_rate |= nogain
    dq_ints |= nogain[None]

    return _outputs(data, t, sat[:, 0] if ngroup else np.zeros((nint,) + shape2, bool), rate,
                    var_p, var_r, dq_rate, rateints, var_p_int, var_r_int, dq_ints,
                    opt if save_opt else {}, crmag if save_opt else None, save_opt)
