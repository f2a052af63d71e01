"""Per-pixel statistics of the bad-pixel search in darks, on one slab (plain numpy).

Arrays arrive with the stack axes last: ramp ``(..., integration, group)`` and
rateints ``(..., integration)``. Every statistic is the pixel's own, so any
chunking gives the same result; the detector-wide thresholds (per amplifier) are
applied afterwards (:mod:`daskref.algorithms.badpix_dark`).
"""

from __future__ import annotations

import math

import numpy as np

from .. import dq
from ._clip_numba import median_rows, robust_std_rows
from ._sort_numba import sorting_network
from .stats import clipped_std_bias, estimator_error_factor, sigma_clip_stats

#: The per-pixel statistics, in the order :func:`dark_pixel_statistics` returns them.
STATISTICS = (
    "clean_rate", "clean_rate_err", "noise", "saturated_fraction", "rc_fraction",
    "rc_significance", "telegraph_fraction",
    "pedestal_low", "pedestal_high", "pedestal_median", "pedestal_scatter", "n_clean",
)


def _rows(a: np.ndarray) -> np.ndarray:
    """``a`` as sorted float rows (pixel, sample; NaN last) for the compiled loops."""
    a = np.asarray(a)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    return np.sort(a.reshape(-1, a.shape[-1]), axis=-1)


def _median(a: np.ndarray) -> np.ndarray:
    """Median along the last axis ignoring NaN; NaN where nothing is finite.

    That of ``sigma_clip_stats(a, sigma=inf, maxiters=0)``, bit for bit, without
    its prefix sums (:func:`._clip_numba.median_rows`).
    """
    x = _rows(a)
    out = np.empty(x.shape[0])
    median_rows(x, out)
    return out.reshape(np.shape(a)[:-1])


def _robust_std(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standard deviation and mean along the last axis, robust to many outliers.

    Sigma clipping about the median with the standard deviation keeps the steps of
    a telegraph pixel (a third of its differences may be steps, which inflate the
    standard deviation the clipping starts from). Here the samples are cut at 4
    MAD-sigmas (1.4826 MAD, robust up to half the samples) from the median, and
    the standard deviation (ddof 1) and mean of what remains are returned: for
    normal noise within 0.1 % of the true sigma (the cut removes 6e-5 of the
    samples).
    """
    # One compiled pass per pixel (one sort, not three), with the arithmetic of
    # _robust_std_numpy, which stays as the reference it is tested against.
    x = _rows(a)
    std, mean = np.empty(x.shape[0]), np.empty(x.shape[0])
    robust_std_rows(x, 4.0, std, mean)
    shape = np.shape(a)[:-1]
    return std.reshape(shape), mean.reshape(shape)


def _robust_std_numpy(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised numpy version of :func:`_robust_std` (the reference)."""
    med = sigma_clip_stats(a, sigma=np.inf, maxiters=0).median
    dev = np.abs(a - med[..., None])
    scale = 1.4826 * sigma_clip_stats(dev, sigma=np.inf, maxiters=0).median
    with np.errstate(invalid="ignore"):
        kept = np.where(dev <= 4 * scale[..., None], a, np.nan)
    st = sigma_clip_stats(kept, sigma=np.inf, maxiters=0, ddof=1)
    return np.where(st.n >= 2, np.sqrt(st.var), np.nan), st.mean


def _order_statistic(a: np.ndarray, fraction: float, largest: bool) -> np.ndarray:
    """The value that more than ``fraction`` of each pixel's finite samples pass.

    With the finite samples sorted ``a_0 <= ... <= a_{n-1}`` and ``m = floor(fraction
    * n)``: ``count(a < t) > fraction * n`` exactly when ``a_m < t`` (and
    ``count(a > t) > fraction * n`` exactly when ``a_{n-1-m} > t``). So a test of
    "more than this fraction of integrations beyond a detector-wide threshold"
    needs only this one number per pixel, before the threshold is known.
    """
    c = np.sort(a, axis=-1)  # NaN last
    n = np.count_nonzero(~np.isnan(c), axis=-1)
    m = np.floor(fraction * n).astype(np.intp)
    idx = (n - 1 - m) if largest else m
    ok = (n > 0) & (m < n)
    out = np.take_along_axis(c, np.clip(idx, 0, c.shape[-1] - 1)[..., None], axis=-1)[..., 0]
    return np.where(ok, out, np.nan)


def dark_pixel_statistics(
    ramp: np.ndarray,
    groupdq: np.ndarray,
    rateints: np.ndarray,
    times: np.ndarray,
    *,
    gain: float | np.ndarray | None,
    clip_sigma: float,
    clip_iters: int,
    step_sigma_threshold: float,
    max_jump_limit: int,
    jump_ratio_threshold: float,
    early_cutoff_fraction: float,
    pedestal_sigma_threshold: float,
    rc_fraction_threshold: float,
    low_pedestal_fraction: float,
) -> tuple[np.ndarray, ...]:
    """The statistics behind every bad-pixel class of a slab of dark ramps.

    The compiled loop :func:`._badpix_dark_numba.dark_statistics_block`, reading the
    slab in place tile by tile; its results are bit-identical to
    :func:`dark_pixel_statistics_numpy`.

    Parameters
    ----------
    ramp : ndarray, (..., integration, group), DN
        Calibrated dark ramps (superbias-subtracted, through jump detection);
        typically the transposed view of an (integration, group, y, x) slab.
    groupdq : ndarray of uint8, same shape
    rateints : ndarray, (..., integration), DN/s
        The ramp fit's per-integration slopes.
    times : ndarray, (group,), s
        Mean time since reset of each group.
    gain : float or ndarray (...), e-/DN, or None
        Removes the dark current's Poisson variance from ``noise``.
    clip_sigma, clip_iters
        Clipping of the clean slopes (``dark_stdev_clipping_sigma``,
        ``dark_max_clipping_iters``).
    step_sigma_threshold : float
        A group difference is a *step* of the pixel when it deviates from its
        integration's median difference by more than this many of the pixel's CDS
        noise sigmas (the jump flags do not decide: a neighbour of a cosmic ray is
        flagged without a step, and a telegraph pixel's inflated READNOISE hides its
        steps from the jump step).
    max_jump_limit : int
        Steps (up and down together) an integration needs to count as telegraph.
    jump_ratio_threshold, early_cutoff_fraction : float
        An integration is RC-like when its steps in the first
        ``early_cutoff_fraction`` of the differences occur at least
        ``jump_ratio_threshold`` times as often as in the second half.
    pedestal_sigma_threshold : float
        Significance of the early-ramp shape test (RC), in sigma.
    rc_fraction_threshold, low_pedestal_fraction : float
        The fractions of integrations used by the pedestal order statistics.

    Returns
    -------
    tuple of ndarray, (...), in the order of :data:`STATISTICS`
        ``clean_rate`` (DN/s): clipped mean of the least-squares slopes of the
        integrations with no step and no saturated group (of the ramp fit's slopes of
        all integrations where none is clean), ``clean_rate_err`` its standard error
        (unbiased clipped scatter over sqrt n); ``noise`` (DN):
        clipped CDS noise of the clean group differences, Poisson term removed;
        ``saturated_fraction``: integrations saturated from group 0;
        ``rc_fraction``: the largest fraction of integrations with an early rise,
        an early drop (shape test) or early steps; ``rc_significance``: the
        median shape-test z over the integrations, in its own sigmas (signed);
        ``telegraph_fraction``:
        integrations with up and down steps; ``pedestal_low``/``pedestal_high``: order statistics of
        the pedestals for ``low_pedestal_fraction``/``rc_fraction_threshold``
        (:func:`_order_statistic`); ``pedestal_median``, ``pedestal_scatter``
        (DN); ``n_clean`` (clean integrations, float).
    """
    from ._badpix_dark_numba import dark_statistics_block

    lead = ramp.shape[:-2]
    nint, ngroups = ramp.shape[-2:]
    # C-contiguous arguments (a copy only for the rare strided block): every other
    # memory layout would be another compilation of this large kernel (half a
    # minute each on a fresh cache)
    ramp4 = _slab(ramp, 2)
    ramp4 = np.ascontiguousarray(
        ramp4, dtype=ramp4.dtype if ramp4.dtype in (np.float32, np.float64) else np.float32)
    dq4 = np.ascontiguousarray(_slab(groupdq, 2))
    rates3 = np.ascontiguousarray(_slab(rateints, 1))
    ny, nx = ramp4.shape[2:]
    if gain is None:
        gain2 = np.zeros((1, 1))
    else:
        gain2 = np.ascontiguousarray(
            np.broadcast_to(np.asarray(gain, np.float64), lead).reshape(ny, nx))
    t = np.asarray(times, np.float64)
    tc = t - t.mean()  # as the numpy version computes them
    tc_norm = float((tc**2).sum())
    ndiff = ngroups - 1
    if ndiff >= 3:
        e = max(1, int(early_cutoff_fraction * ndiff))
        late0 = max(e, ndiff // 2)
    else:
        e = late0 = 0  # no RC test
    clip = bool(np.isfinite(clip_sigma) and (clip_iters is None or clip_iters > 0))
    counts = np.arange(nint + 1)
    bias = np.asarray(clipped_std_bias(counts, sigma=clip_sigma, maxiters=clip_iters),
                      np.float64)
    factor = np.asarray(estimator_error_factor(counts, stat="median", sigma=np.inf, maxiters=0),
                        np.float64)
    ncds = nint * max(ndiff, 0)
    nlate = ndiff - late0 if e else 0
    nets = [sorting_network(n) for n in (ncds, max(ndiff, 0), nlate, nint * nlate, nint)]
    out = np.empty((len(STATISTICS), ny, nx), np.float32)
    dark_statistics_block(
        ramp4, dq4, rates3, gain2, gain is not None, t, tc, tc_norm, e, late0,
        float(step_sigma_threshold), int(max_jump_limit), float(jump_ratio_threshold),
        float(pedestal_sigma_threshold), float(rc_fraction_threshold),
        float(low_pedestal_fraction), float(clip_sigma),
        -1 if clip_iters is None else int(clip_iters), clip, bias, factor, *nets,
        _tile_width(ncds), out)
    return tuple(a.reshape(lead) for a in out)


def _slab(a: np.ndarray, ncore: int) -> np.ndarray:
    """The (core..., y, x) view of a (..., core) array: its last ``ncore`` axes first.

    The (y, x, integration, group) view of an (integration, group, y, x) slab gives
    back the slab; other pixel layouts become one row of pixels.
    """
    a = np.asarray(a)
    core = tuple(range(-ncore, 0))
    x = np.moveaxis(a, core, tuple(range(ncore)))
    if x.ndim == ncore + 2:
        return x
    return x.reshape(x.shape[:ncore] + (1, -1))


def _tile_width(ncds: int) -> int:
    """Pixels per tile of ``ncds`` clean differences each.

    The tile's (sample, pixel) buffers of ``ncds`` rows stay within a few hundred kB.
    """
    return int(min(256, max(16, (16384 // max(ncds, 1)) // 8 * 8)))


def dark_pixel_statistics_numpy(
    ramp: np.ndarray,
    groupdq: np.ndarray,
    rateints: np.ndarray,
    times: np.ndarray,
    *,
    gain: float | np.ndarray | None,
    clip_sigma: float,
    clip_iters: int,
    step_sigma_threshold: float,
    max_jump_limit: int,
    jump_ratio_threshold: float,
    early_cutoff_fraction: float,
    pedestal_sigma_threshold: float,
    rc_fraction_threshold: float,
    low_pedestal_fraction: float,
) -> tuple[np.ndarray, ...]:
    """Vectorised numpy version of :func:`dark_pixel_statistics` (the reference).

    Same parameters and results, bit for bit.
    """
    lead = ramp.shape[:-2]
    nint, ngroups = ramp.shape[-2:]
    # contiguous copies: numpy's reductions then take the same path for any chunking
    r = np.ascontiguousarray(ramp.reshape(-1, nint, ngroups), dtype=np.float32)
    g = np.ascontiguousarray(groupdq.reshape(-1, nint, ngroups))
    rates = rateints.reshape(-1, nint).astype(np.float64)
    npix = r.shape[0]

    sat = (g & dq.SATURATED) != 0
    dnu = (g & dq.DO_NOT_USE) != 0
    # DO_NOT_USE on every group is a MASK's per-pixel flag (dq_init), not a bad group
    dnu &= ~dnu.all(axis=(-2, -1), keepdims=True)
    bad_group = sat | dnu
    jump = (g & dq.JUMP_DET) != 0

    d = np.diff(r, axis=-1)
    bad_d = bad_group[..., 1:] | bad_group[..., :-1]
    jump_d = jump[..., 1:]
    d = np.where(bad_d, np.nan, d)

    # CDS noise from the clean differences of every integration
    clean_d = np.where(jump_d, np.nan, d).reshape(npix, -1)
    noise, mean_diff = _robust_std(clean_d)

    # steps: differences that stand out of the integration's own ramp. Not the jump
    # flags: the jump step's threshold follows the READNOISE reference, which the
    # steps of a telegraph pixel inflate, and it flags neighbours that did not step.
    med_k = _median(np.where(jump_d, np.nan, d))
    with np.errstate(invalid="ignore", divide="ignore"):
        dev = (d - med_k[..., None]) / noise[:, None, None]
    steps = np.abs(np.nan_to_num(dev)) > step_sigma_threshold
    n_up = np.count_nonzero(steps & (dev > 0), axis=-1)
    n_down = np.count_nonzero(steps & (dev < 0), axis=-1)
    telegraph_k = (n_up >= 1) & (n_down >= 1) & (n_up + n_down >= max_jump_limit)

    saturated_k = sat[..., 0]
    evaluated = ~saturated_k & np.isfinite(d).any(axis=-1)

    # RC: the early-ramp transient (shape, of one sign in every integration), or
    # steps concentrated early
    ndiff = ngroups - 1
    rc_up = rc_down = rc_steps = np.zeros((npix, nint), bool)
    rc_significance = np.full(npix, np.nan)
    if ndiff >= 3:
        e = max(1, int(early_cutoff_fraction * ndiff))
        late0 = max(e, ndiff // 2)
        early = d[..., :e]
        late = np.where(steps[..., late0:], np.nan, d[..., late0:])
        n_e = np.count_nonzero(np.isfinite(early), axis=-1)
        n_l = np.count_nonzero(np.isfinite(late), axis=-1)
        late_med = _median(late)
        # the noise of the late half, which an early transient does not inflate
        late_noise, _ = _robust_std(np.where(jump_d[..., late0:], np.nan, late).reshape(npix, -1))
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = late_noise[:, None] * np.sqrt(n_e + n_e**2 * (math.pi / 2) / n_l)
            z = (np.nansum(early, axis=-1) - n_e * late_med) / scale
        z = np.where((n_e > 0) & (n_l > 0) & evaluated, np.nan_to_num(z), np.nan)
        rc_up, rc_down = z > pedestal_sigma_threshold, z < -pedestal_sigma_threshold
        # the transient repeats in every integration: the median z over them, in
        # its own sigmas (robust to a cosmic ray in a few early groups)
        n_z = np.count_nonzero(np.isfinite(z), axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rc_significance = _median(z) * np.sqrt(n_z) / estimator_error_factor(
                n_z, stat="median", sigma=np.inf, maxiters=0)
        early_steps = np.count_nonzero(steps[..., :e], axis=-1)
        late_steps = np.count_nonzero(steps[..., late0:], axis=-1)
        rc_steps = (early_steps >= 1) & (
            early_steps / e >= jump_ratio_threshold * late_steps / (ndiff - late0))

    with np.errstate(invalid="ignore", divide="ignore"):
        n_eval = np.count_nonzero(evaluated, axis=-1)
        saturated_fraction = np.count_nonzero(saturated_k, axis=-1) / nint
        rc_fraction = np.maximum.reduce([
            np.count_nonzero(k & evaluated, axis=-1) for k in (rc_up, rc_down, rc_steps)
        ]) / n_eval
        telegraph_fraction = np.count_nonzero(telegraph_k & evaluated, axis=-1) / n_eval

    # dark rate: least-squares slopes of the integrations without steps or bad
    # groups (a neighbour's jump flag alone does not split the ramp), else the ramp
    # fit's slopes of every integration
    clean_k = ~(steps.any(axis=-1) | bad_group.any(axis=-1))
    t = np.asarray(times, np.float64)
    tc = t - t.mean()
    own = (r * tc).sum(axis=-1) / (tc**2).sum()  # sum(tc) = 0: no need to centre r
    n_clean = np.count_nonzero(clean_k, axis=-1)
    clean = np.where(clean_k, own, np.nan)
    fallback = np.where(np.isfinite(rates), rates, np.nan)
    samples = np.where((n_clean > 0)[:, None], clean, fallback)
    n_rate = np.count_nonzero(np.isfinite(samples), axis=-1)
    st_rate = sigma_clip_stats(samples, sigma=clip_sigma, maxiters=clip_iters)
    clean_rate = st_rate.mean
    with np.errstate(invalid="ignore", divide="ignore"):
        clean_rate_err = (np.sqrt(st_rate.var) / clipped_std_bias(
            n_rate, sigma=clip_sigma, maxiters=clip_iters) / np.sqrt(n_rate))
    clean_rate_err = np.where(n_rate >= 2, clean_rate_err, np.nan)

    if gain is not None:  # dark-current shot noise in a CDS difference, DN^2
        gain_flat = np.broadcast_to(np.asarray(gain, np.float64), lead).reshape(-1)
        with np.errstate(invalid="ignore"):
            poisson = np.clip(mean_diff, 0, None) / gain_flat
            noise = np.sqrt(np.clip(noise**2 - poisson, 0, None))

    # pedestal: the ramp fit's zero-time signal, from the first usable group
    first = np.argmax(~bad_group, axis=-1)
    has_good = (~bad_group).any(axis=-1)
    first_value = np.take_along_axis(r, first[..., None], axis=-1)[..., 0]
    pedestal = np.where(has_good & np.isfinite(rates),
                        first_value - rates * np.asarray(times)[first], np.nan)
    pedestal_low = _order_statistic(pedestal, low_pedestal_fraction, largest=False)
    pedestal_high = _order_statistic(pedestal, rc_fraction_threshold, largest=True)
    pedestal_scatter, _ = _robust_std(pedestal)
    pedestal_median = _median(pedestal)

    out = (clean_rate, clean_rate_err, noise, saturated_fraction, rc_fraction, rc_significance,
           telegraph_fraction,
           pedestal_low, pedestal_high, pedestal_median, pedestal_scatter,
           n_clean.astype(np.float64))
    return tuple(np.asarray(a, np.float32).reshape(lead) for a in out)
