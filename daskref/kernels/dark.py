"""DARK kernels on one pixel slab (plain numpy).

Arrays arrive with the stack axes last, as ``algorithms._chunks.apply_stack`` (and
``xarray.apply_ufunc``) hand them over: ramp ``(..., integration, group)`` (any
leading pixel axes), often a transposed view of an (integration, group, y, x) slab.
"""

from __future__ import annotations

import numpy as np

from .. import dq
from .stats import clipped_std_bias, estimator_error_factor, sigma_clip_stats


def count_dtype(nint: int) -> np.dtype:
    """The integer type of the sample counts of a stack of ``nint`` integrations.

    int16 (half the memory and disk of the contribution cube) unless the count
    could exceed it.
    """
    return np.dtype(np.int16 if nint <= np.iinfo(np.int16).max else np.int32)


def usable_samples(ramp: np.ndarray, groupdq: np.ndarray | None) -> np.ndarray:
    """The ramp with the samples a dark may not use set to NaN.

    Excluded: in each integration, the group in which the first jump is flagged
    (JUMP_DET) and every later group (the jwst_reffiles rule: after a cosmic ray
    the ramp no longer shows the dark signal alone), and every SATURATED group.
    DO_NOT_USE alone does not exclude a sample: dq_init copies a MASK's per-pixel
    DO_NOT_USE into every group, and the dark of a bad pixel is still wanted.

    Parameters
    ----------
    ramp : ndarray, (..., integration, group), DN
    groupdq : ndarray of uint8, same shape, or None

    Returns
    -------
    ndarray of float32, same shape, DN
    """
    x = ramp.astype(np.float32, copy=True)
    if groupdq is not None:
        after_jump = np.logical_or.accumulate((groupdq & dq.JUMP_DET) != 0, axis=-1)
        x[after_jump | ((groupdq & dq.SATURATED) != 0)] = np.nan
    return x


def group_statistic(
    samples: np.ndarray,
    *,
    stat: str,
    clip: bool,
    sigma: float,
    maxiters: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clipped mean (or median) of each pixel's samples and its 1-sigma error.

    Parameters
    ----------
    samples : ndarray, (..., sample), DN
        NaN marks a missing sample.
    stat : {'mean', 'median'}
    clip : bool
        Sigma-clip the samples first (``sigma``, ``maxiters``).
    sigma, maxiters : float, int

    Returns
    -------
    value, err : ndarray of float32, (...), DN
        ``err`` is the standard error of ``value``: the clipped standard deviation,
        made unbiased for normal noise (:func:`~.stats.clipped_std_bias`), times the
        estimator's efficiency factor (:func:`~.stats.estimator_error_factor`; the
        median's is about 1.25), over ``sqrt(n)``. NaN where no sample survives;
        ``err`` NaN with one sample.
    n_used : ndarray of int, (...)
        Samples that survived clipping (:func:`count_dtype` of the sample count).
    """
    if not clip:
        sigma, maxiters = np.inf, 0
    n_valid = np.count_nonzero(~np.isnan(samples), axis=-1)
    st = sigma_clip_stats(samples, sigma=sigma, maxiters=maxiters, ddof=0)
    value = st.median if stat == "median" else st.mean
    # The factors depend on the sample count only: evaluated once per count and
    # looked up (interpolating them for every pixel and group took a quarter of
    # the kernel); the arithmetic on each value is unchanged.
    counts = np.arange(samples.shape[-1] + 1)
    bias = clipped_std_bias(counts, sigma=sigma, maxiters=maxiters)[n_valid]
    factor = estimator_error_factor(counts, stat=stat, sigma=sigma, maxiters=maxiters)[n_valid]
    root_n = np.sqrt(counts)[n_valid]
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(st.var) / bias
        err = np.where(n_valid >= 2, std * factor / root_n, np.nan)
    value = np.where(st.n > 0, value, np.nan)
    return (value.astype(np.float32), err.astype(np.float32),
            st.n.astype(count_dtype(samples.shape[-1])))


def fill_from_rate(
    value: np.ndarray, err: np.ndarray, n_used: np.ndarray, times: np.ndarray,
    fit_groups: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit each pixel's dark signal against time; fill the groups with no sample.

    Parameters
    ----------
    value, err : ndarray, (..., group), DN
        Per-group dark signal and its error (NaN where no sample survived).
    n_used : ndarray of int, (..., group)
    times : ndarray, (group,), s
        Mean time since reset of each group.
    fit_groups : ndarray of bool, (group,)
        Groups the rate fit may use (MIRI leaves out the first and last group).

    Returns
    -------
    value, err : ndarray of float32, (..., group)
        Groups without samples filled from the line ``a + rate * t`` fitted (least
        squares, weighted by the sample counts) to the measured groups; with one
        measured group the line goes through zero at reset; with none, 0.
    rate : ndarray of float32, (...), DN/s
        The fitted dark rate (NaN with no measured group).
    filled : ndarray of uint8, (...)
        0: every group measured; 1: some groups filled; 2: nothing measured.
    """
    t = np.asarray(times, dtype=np.float64)
    measured = np.isfinite(value) & (n_used > 0)
    w = np.where(measured & fit_groups, n_used, 0).astype(np.float64)
    y = np.where(w > 0, value, 0.0).astype(np.float64)
    sw = w.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        tm = (w * t).sum(-1) / sw
        ym = (w * y).sum(-1) / sw
        stt = (w * (t - tm[..., None]) ** 2).sum(-1)
        rate = (w * (t - tm[..., None]) * (y - ym[..., None])).sum(-1) / stt
        n_fit = np.count_nonzero(w, axis=-1)
        # one measured group: a line through zero at reset (superbias-subtracted data)
        rate = np.where(n_fit == 1, ym / tm, rate)
        icpt = np.where(n_fit == 1, 0.0, ym - rate * tm)
    rate = np.where(n_fit > 0, rate, np.nan)
    model = icpt[..., None] + rate[..., None] * t
    missing = ~measured
    any_missing = missing.any(-1)
    out_value = np.where(missing, np.where(np.isfinite(model), model, 0.0), value)
    # filled groups: the typical error of the measured ones
    ok = measured & np.isfinite(err)
    with np.errstate(invalid="ignore", divide="ignore"):
        typical = np.sqrt(np.where(ok, err.astype(np.float64) ** 2, 0.0).sum(-1)
                          / np.count_nonzero(ok, axis=-1))
    typical = np.where(np.isfinite(typical), typical, 0.0)
    out_err = np.where(missing, typical[..., None], err)
    filled = np.where(n_fit == 0, 2, np.where(any_missing, 1, 0)).astype(np.uint8)
    return (out_value.astype(np.float32), out_err.astype(np.float32), rate.astype(np.float32),
            filled)


def dark_kernel_numpy(
    ramp: np.ndarray,
    groupdq: np.ndarray | None,
    plane_index: np.ndarray,
    times: np.ndarray,
    fit_groups: np.ndarray,
    *,
    nplanes: int,
    stat: str,
    clip: bool,
    sigma: float,
    maxiters: int,
):
    """Vectorised numpy version of :func:`dark_kernel` (the reference).

    Same parameters and results; built from :func:`usable_samples`,
    :func:`group_statistic` and :func:`fill_from_rate`.
    """
    x = usable_samples(ramp, groupdq)
    x = np.moveaxis(x, -2, -1)  # (..., group, integration)
    # Outputs laid out (plane, group, ...) in memory and handed back as views with
    # the stack axes last: the product's (plane, group, y, x) blocks are then
    # contiguous, and gathering them is a plain copy rather than a strided one.
    lead = x.shape[:-2]
    shape = (nplanes, x.shape[-2]) + lead
    axes = ((0, 1), (-2, -1))
    sci = np.moveaxis(np.empty(shape, np.float32), *axes)
    err = np.moveaxis(np.empty(shape, np.float32), *axes)
    n_used = np.moveaxis(np.empty(shape, count_dtype(ramp.shape[-2])), *axes)
    filled = np.zeros(x.shape[:-2], np.uint8)
    rate = None
    for p in range(nplanes):
        v, e, n = group_statistic(x[..., plane_index == p], stat=stat, clip=clip,
                                  sigma=sigma, maxiters=maxiters)
        sci[..., p, :], err[..., p, :], rate, f = fill_from_rate(v, e, n, times, fit_groups)
        n_used[..., p, :] = n
        filled = np.maximum(filled, f)
    return sci, err, n_used, rate, filled


def dark_kernel(
    ramp: np.ndarray,
    groupdq: np.ndarray | None,
    plane_index: np.ndarray,
    times: np.ndarray,
    fit_groups: np.ndarray,
    *,
    nplanes: int,
    stat: str,
    clip: bool,
    sigma: float,
    maxiters: int,
):
    """DARK of a slab: the dark signal per (plane, group) over the integrations.

    The compiled loop :func:`._dark_numba.dark_block`; its results are bit-identical
    to :func:`dark_kernel_numpy` (usable samples as :func:`usable_samples`, the
    statistic as :func:`group_statistic`, the fill as :func:`fill_from_rate`).

    Parameters
    ----------
    ramp : ndarray, (..., integration, group), DN
        Calibrated dark ramps (superbias-subtracted); typically the transposed view
        of an (integration, group, y, x) slab, which is read in place.
    groupdq : ndarray of uint8 (same shape) or None
    plane_index : ndarray of int, (integration,)
        Which output plane each integration belongs to (MIRI: 0 for the first
        integration of each exposure, 1 for the others; near-IR: all 0).
    times, fit_groups : ndarray, (group,)
        Group times (s) and the groups the rate fit uses.
    nplanes : int
    stat, clip, sigma, maxiters
        See :func:`group_statistic`.

    Returns
    -------
    sci, err : ndarray of float32, (..., plane, group), DN
    n_used : ndarray of int (:func:`count_dtype`), (..., plane, group)
    rate : ndarray of float32, (...), DN/s
        Dark rate fitted to the last plane (the integrations after the first, for
        MIRI with several).
    filled : ndarray of uint8, (...)
        Worst :func:`fill_from_rate` code over the planes.
    """
    from ._dark_numba import dark_block
    from ._sort_numba import sorting_network

    if stat not in ("mean", "median"):
        raise ValueError(f"stat must be 'mean' or 'median', not {stat!r}")
    lead = ramp.shape[:-2]
    nint, ngroup = ramp.shape[-2:]
    ramp4 = _slab(ramp)
    use_dq = groupdq is not None
    dq4 = _slab(groupdq) if use_dq else np.zeros((1, 1, 1, 1), np.uint8)
    plane_index = np.asarray(plane_index)
    members = [np.flatnonzero(plane_index == p) for p in range(nplanes)]
    plane_ints = np.concatenate(members).astype(np.intp)
    plane_start = np.cumsum([0] + [len(m) for m in members]).astype(np.intp)
    nets = [sorting_network(len(m)) for m in members]
    pairs = np.concatenate(nets).astype(np.intp).reshape(-1, 2)
    pair_start = np.cumsum([0] + [len(n) for n in nets]).astype(np.intp)
    if not clip:
        sigma, maxiters = np.inf, 0
    counts = np.arange(nint + 1)
    bias = np.asarray(clipped_std_bias(counts, sigma=sigma, maxiters=maxiters), np.float64)
    factor = np.asarray(estimator_error_factor(counts, stat=stat, sigma=sigma,
                                               maxiters=maxiters), np.float64)
    root_n = np.sqrt(counts)
    do_clip = bool(np.isfinite(sigma) and maxiters > 0)
    ny, nx = ramp4.shape[2:]
    # pixels sorted together: the (sample, pixel) buffer stays within a few hundred kB
    width = int(min(512, max(64, (65536 // max(nint, 1)) // 8 * 8)))
    shape = (nplanes, ngroup, ny, nx)
    sci = np.empty(shape, np.float32)
    err = np.empty(shape, np.float32)
    n_used = np.empty(shape, count_dtype(nint))
    rate = np.empty((ny, nx), np.float32)
    filled = np.zeros((ny, nx), np.uint8)
    dark_block(ramp4, dq4, use_dq, plane_ints, plane_start, pairs, pair_start,
               np.asarray(times, np.float64), np.asarray(fit_groups, bool), stat == "median",
               float(sigma), int(maxiters), do_clip, bias, factor, root_n, width,
               sci, err, n_used, rate, filled)
    # outputs laid out (plane, group, ...) and handed back as views with the stack
    # axes last, so the product's blocks are contiguous
    axes = ((0, 1), (-2, -1))

    def back(a):
        return np.moveaxis(a.reshape((nplanes, ngroup) + lead), *axes)

    return back(sci), back(err), back(n_used), rate.reshape(lead), filled.reshape(lead)


def _slab(a: np.ndarray) -> np.ndarray:
    """The (integration, group, y, x) view of a (..., integration, group) array."""
    x = np.moveaxis(np.asarray(a), (-2, -1), (0, 1))
    if x.ndim == 4:
        return x
    return x.reshape(x.shape[:2] + (1, -1))  # other pixel layouts: one row of pixels
