"""Numpy kernels of the saturation search: where each ramp stops rising.

A ramp driven into saturation rises and then reads one level (plus read noise) in
every later group. Per pixel, the kernel

1. estimates the per-read noise ``sigma`` from the second differences of every
   ramp of the pixel, ``1.4826 median(|v[g+2] - 2 v[g+1] + v[g]|) / sqrt(6)``: a
   linear rise or a plateau leaves only noise there (``sqrt(6) sigma``), and the
   median ignores the few knees and cosmic rays;
2. in each integration, takes the *plateau* to be the trailing run of groups within
   ``tol = plateau_sigma x sqrt(2) x sigma`` of the median of the last 3, and
   accepts it when
   it holds at least ``min_plateau_groups`` groups, the group before it lies more
   than ``tol`` below, it lies ``min_rise`` above the first group, the ramp before
   it rose by more than ``tol`` a group, and the
   plateau's own slope is under a fifth of that rise (a slowly rising ramp has
   near-equal last groups but no knee);
3. gives the integration's level as the median of its plateau, and the pixel's level
   as the median over the integrations that saturated (robust to an odd one).

Every function works on ``(..., integration, group)`` arrays of raw DN and is exact
per pixel, so any split of the pixels gives the same result.
"""

from __future__ import annotations

import numpy as np

#: Consistency factor of the median absolute deviation for normal noise.
MAD_SIGMA = 1.4826
#: The plateau's slope must stay under this fraction of the rise before it.
PLATEAU_SLOPE_FRACTION = 0.2


def read_noise(v: np.ndarray) -> np.ndarray:
    """Per-read noise of every pixel from the second differences of its ramps, DN.

    Parameters
    ----------
    v : ndarray, (..., integration, group), DN
        At least 3 groups.

    Returns
    -------
    ndarray float64, (...)
    """
    d2 = v[..., 2:] - 2.0 * v[..., 1:-1] + v[..., :-2]
    flat = np.abs(d2).reshape(d2.shape[:-2] + (-1,))
    return MAD_SIGMA * np.median(flat, axis=-1) / np.sqrt(6.0)


def _runs(v, tol, min_plateau_groups, min_rise):
    """(start, accepted) of the trailing plateau of every integration."""
    ngroups = v.shape[-1]
    last = v[..., -1]
    # the median of the last 3 groups: a plateau's level, less noisy than one group
    top = np.median(v[..., -3:], axis=-1)
    near = np.abs(v - top[..., None]) <= tol[..., None, None]
    # length of the trailing run of groups near the last one
    run = np.cumprod(near[..., ::-1], axis=-1).sum(axis=-1)
    start = ngroups - run
    before = np.take_along_axis(v, np.maximum(start - 1, 0)[..., None], axis=-1)[..., 0]
    rise = (before - v[..., 0]) / np.maximum(start - 1, 1)
    at_start = np.take_along_axis(v, np.minimum(start, ngroups - 1)[..., None], axis=-1)[..., 0]
    slope = (last - at_start) / np.maximum(run - 1, 1)
    step = top - before
    ok = ((run >= int(min_plateau_groups)) & (start >= 1) & (step > tol[..., None])
          & (top - v[..., 0] > float(min_rise))
          & ((start == 1) | (rise > tol[..., None]))
          & (np.abs(slope) < PLATEAU_SLOPE_FRACTION * np.maximum(rise, step)))
    return start, ok


def plateaus(v: np.ndarray, *, plateau_sigma: float = 5.0, min_plateau_groups: int = 2,
             min_rise: float = 500.0):
    """The plateau of every integration of every pixel.

    Parameters
    ----------
    v : ndarray, (..., integration, group), DN
        Raw ramps (at least 3 groups).
    plateau_sigma : float
        Tolerance of the plateau, in standard deviations of a difference of two reads.
    min_plateau_groups : int
        Fewest groups a plateau has.
    min_rise : float
        DN the plateau lies above the first group at least (a dark ramp of a few
        groups can look flat at the end when its noise estimate is low by chance).

    Returns
    -------
    start : ndarray int, (..., integration)
        First group of the plateau (``ngroups`` where the integration did not
        saturate).
    level : ndarray float64, (..., integration)
        Median of the plateau, DN (NaN where it did not saturate): the last rising
        group, which may lie within the tolerance, does not pull it down.
    tol : ndarray float64, (...)
        The tolerance, DN.
    """
    v = np.asarray(v, np.float64)
    ngroups = v.shape[-1]
    if ngroups < 3:
        raise ValueError(f"the saturation search needs at least 3 groups, not {ngroups}")
    # at least a DN: integer data with tiny noise still scatter by the rounding
    tol = np.maximum(float(plateau_sigma) * np.sqrt(2.0) * read_noise(v), 1.0)
    start, ok = _runs(v, tol, min_plateau_groups, min_rise)
    in_run = ok[..., None] & (np.arange(ngroups) >= start[..., None])
    with np.errstate(all="ignore"):
        level = np.sort(np.where(in_run, v, np.inf), axis=-1)
        n = in_run.sum(axis=-1)
        k = np.maximum(n, 1)
        lo = np.take_along_axis(level, ((k - 1) // 2)[..., None], axis=-1)[..., 0]
        hi = np.take_along_axis(level, (k // 2)[..., None], axis=-1)[..., 0]
    start = np.where(ok, start, ngroups)
    level = np.where(ok, 0.5 * (lo + hi), np.nan)
    return start, level, tol


def finite_median(a: np.ndarray) -> np.ndarray:
    """Median of the finite values along the last axis; NaN where there are none.

    (``np.nanmedian`` without its warning on all-NaN rows.)
    """
    finite = np.isfinite(a)
    n = finite.sum(axis=-1)
    ordered = np.sort(np.where(finite, a, np.inf), axis=-1)
    k = np.maximum(n, 1)
    lo = np.take_along_axis(ordered, ((k - 1) // 2)[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(ordered, (k // 2)[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore"):
        return np.where(n > 0, 0.5 * (lo + hi), np.nan)


def saturation_levels(v: np.ndarray, *, plateau_sigma: float = 5.0,
                      min_plateau_groups: int = 2, min_rise: float = 500.0):
    """Saturation level of every pixel: the median plateau over its integrations.

    Parameters
    ----------
    v : ndarray, (..., integration, group), DN
        Raw ramps.
    plateau_sigma, min_plateau_groups, min_rise
        As in :func:`plateaus`.

    Returns
    -------
    level : ndarray float32, (...)
        DN, raw (the reset level included); NaN where no integration saturated.
    n_saturated : ndarray int16, (...)
        Integrations that saturated.
    spread : ndarray float32, (...)
        Half the range of the integrations' plateaus, DN (NaN with none).
    """
    _, level, _ = plateaus(v, plateau_sigma=plateau_sigma,
                           min_plateau_groups=min_plateau_groups, min_rise=min_rise)
    n = np.isfinite(level).sum(axis=-1)
    median = finite_median(level)
    with np.errstate(all="ignore"):
        top = np.where(np.isfinite(level), level, -np.inf).max(axis=-1)
        bottom = np.where(np.isfinite(level), level, np.inf).min(axis=-1)
        spread = np.where(n > 0, 0.5 * (top - bottom), np.nan)
    return median.astype(np.float32), n.astype(np.int16), spread.astype(np.float32)
