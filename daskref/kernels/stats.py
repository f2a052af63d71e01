"""Robust per-pixel statistics on one chunk (plain numpy).

Samples lie along the last axis; every other axis is a pixel axis. Missing samples
are NaN. Nothing here knows about dask or xarray.

Sigma clipping follows ``astropy.stats.sigma_clip`` with its defaults (centre =
median, scale = standard deviation with ddof = 0, symmetric bounds, iterate until
nothing changes or ``maxiters`` passes), so results match the jwst_reffiles
algorithms. It is done on sorted samples: the survivors of a symmetric clip are a
contiguous run of the sorted values, so each pass is two counts, and means and
variances come from prefix sums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ._clip_numba import clip_rows, copy_rows
from ._clip_tables import PRECOMPUTED


@dataclass
class ClippedStats:
    """Per-pixel statistics of the samples that survived sigma clipping.

    Attributes
    ----------
    mean : ndarray
        Mean of the survivors.
    var : ndarray
        Variance of the survivors, ``sum((x - mean)**2) / (n - ddof)``, not yet
        corrected for clipping.
    n : ndarray of int
        Number of survivors.
    bound : ndarray
        Half-width of the last clipping window, in data units (``inf`` when no
        clipping was done).
    median : ndarray
        Median of the survivors (NaN where there are none).
    """

    mean: np.ndarray
    var: np.ndarray
    n: np.ndarray
    bound: np.ndarray
    median: np.ndarray


def _take(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.take_along_axis(a, idx[..., None], axis=-1)[..., 0]


def sigma_clip_stats(
    samples: np.ndarray,
    *,
    sigma: float = 3.0,
    maxiters: int | None = 3,
    ddof: float = 0.0,
    overwrite_input: bool = False,
) -> ClippedStats:
    """Sigma-clipped mean and variance of the samples along the last axis.

    Float32 and float64 samples go through the compiled row loop
    (:func:`._clip_numba.clip_rows`), which gives bit-identical results to the
    vectorised :func:`sigma_clip_stats_numpy` several times faster and without its
    chunk-sized temporaries; other inputs go through the latter.

    Parameters
    ----------
    samples : ndarray, (..., sample)
        Data values (any unit); NaN marks a missing sample.
    sigma : float
        Clipping threshold in standard deviations about the median. ``inf`` or a
        ``maxiters`` of 0 disables clipping.
    maxiters : int or None
        Maximum clipping passes; None iterates to convergence.
    ddof : float
        Delta degrees of freedom of the returned variance.
    overwrite_input : bool
        Let a C-contiguous float ``samples`` be sorted in place (as ``np.median``'s
        option), saving its copy.

    Returns
    -------
    ClippedStats
        Float64 arrays with the shape of ``samples`` without its last axis. Pixels
        with ``n <= ddof`` survivors have NaN variance; with none, NaN mean too.
    """
    samples = np.asarray(samples)
    if samples.dtype.kind != "f":
        samples = samples.astype(np.float64)
    if samples.dtype not in (np.float32, np.float64) or samples.shape[-1] == 0:
        return sigma_clip_stats_numpy(samples, sigma=sigma, maxiters=maxiters, ddof=ddof)
    shape = samples.shape[:-1]
    rows = samples.reshape(-1, samples.shape[-1])
    if rows.flags.c_contiguous:
        x = rows if overwrite_input else rows.copy()
    else:  # e.g. the (pixel, sample) view of a (sample, y, x) slab
        x = np.empty(rows.shape, rows.dtype)
        copy_rows(rows, x)
    x.sort(axis=-1)  # NaN last
    npix = x.shape[0]
    mean, var, bound, median = (np.empty(npix) for _ in range(4))
    n = np.empty(npix, np.intp)
    clip = bool(np.isfinite(sigma) and (maxiters is None or maxiters > 0))
    clip_rows(x, float(sigma), -1 if maxiters is None else int(maxiters), clip, float(ddof),
              mean, var, n, bound, median)
    return ClippedStats(mean=mean.reshape(shape), var=var.reshape(shape), n=n.reshape(shape),
                        bound=bound.reshape(shape), median=median.reshape(shape))


def sigma_clip_stats_numpy(
    samples: np.ndarray,
    *,
    sigma: float = 3.0,
    maxiters: int | None = 3,
    ddof: float = 0.0,
) -> ClippedStats:
    """Vectorised numpy version of :func:`sigma_clip_stats` (the reference).

    Parameters
    ----------
    samples : ndarray, (..., sample)
        Data values (any unit); NaN marks a missing sample.
    sigma : float
        Clipping threshold in standard deviations about the median. ``inf`` or a
        ``maxiters`` of 0 disables clipping.
    maxiters : int or None
        Maximum clipping passes; None iterates to convergence.
    ddof : float
        Delta degrees of freedom of the returned variance.

    Returns
    -------
    ClippedStats
        Float64 arrays with the shape of ``samples`` without its last axis. Pixels
        with ``n <= ddof`` survivors have NaN variance; with none, NaN mean too.
    """
    samples = np.asarray(samples)
    if samples.dtype.kind != "f":
        samples = samples.astype(np.float64)
    c = np.sort(samples, axis=-1)  # NaN sort last
    n_valid = np.count_nonzero(~np.isnan(c), axis=-1)
    shape = c.shape[:-1]
    # Shift by a per-pixel reference (the median) so the prefix sums keep precision.
    ref = _take(c, np.clip((n_valid - 1) // 2, 0, None))
    ref = np.where(n_valid > 0, ref, 0)
    c -= ref[..., None]  # NaN stays NaN: comparisons with it are False
    # Prefix sums of the values and their squares (in the samples' precision, at
    # least float32). NaNs sit after the n_valid values of each pixel, so the sums
    # up to any index <= n_valid are finite.
    acc = np.result_type(c.dtype, np.float32)
    p1 = np.zeros(shape + (c.shape[-1] + 1,), dtype=acc)
    np.cumsum(c, axis=-1, out=p1[..., 1:])
    p2 = np.zeros_like(p1)
    np.cumsum(np.square(c), axis=-1, out=p2[..., 1:])

    lo = np.zeros(shape, dtype=np.intp)
    hi = n_valid.astype(np.intp)
    bound = np.full(shape, np.inf)

    def moments(lo, hi):
        n = hi - lo
        with np.errstate(invalid="ignore", divide="ignore"):
            s1 = _take(p1, hi).astype(np.float64) - _take(p1, lo)
            s2 = _take(p2, hi).astype(np.float64) - _take(p2, lo)
            mean = s1 / n
            m2 = np.maximum(s2 - s1 * mean, 0.0)  # sum of squared deviations
        return n, mean, m2

    clip = np.isfinite(sigma) and (maxiters is None or maxiters > 0)
    iteration = 0
    while clip:
        n, mean, m2 = moments(lo, hi)
        with np.errstate(invalid="ignore", divide="ignore"):
            std = np.sqrt(m2 / n)
        i_lo = np.clip((lo + hi - 1) // 2, 0, c.shape[-1] - 1)
        i_hi = np.clip((lo + hi) // 2, 0, c.shape[-1] - 1)
        median = 0.5 * (_take(c, i_lo).astype(np.float64) + _take(c, i_hi))
        t = sigma * std
        valid = n > 0
        # As astropy: a sample once rejected stays rejected.
        below_lo = np.count_nonzero(c < (median - t)[..., None], axis=-1)
        upto_hi = np.count_nonzero(c <= (median + t)[..., None], axis=-1)
        new_lo = np.where(valid, np.maximum(lo, below_lo), lo)
        new_hi = np.where(valid, np.minimum(hi, upto_hi), hi)
        new_hi = np.maximum(new_hi, new_lo)
        bound = np.where(valid, t, bound)
        iteration += 1
        changed = np.any((new_lo != lo) | (new_hi != hi))
        lo, hi = new_lo, new_hi
        if not changed or (maxiters is not None and iteration >= maxiters):
            break

    n, mean, m2 = moments(lo, hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(n > ddof, m2 / (n - ddof), np.nan)
    i_lo = np.clip((lo + hi - 1) // 2, 0, c.shape[-1] - 1)
    i_hi = np.clip((lo + hi) // 2, 0, c.shape[-1] - 1)
    median = 0.5 * (_take(c, i_lo).astype(np.float64) + _take(c, i_hi))
    median = np.where(n > 0, median + ref, np.nan)
    return ClippedStats(mean=mean + ref, var=var, n=n, bound=bound, median=median)


_GRID = np.unique(
    np.concatenate([np.arange(2, 13), [14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 128],
                    [160, 192, 256, 320, 384, 512, 768, 1024, 1536, 2048, 4096]])
).astype(int)


@lru_cache(maxsize=32)
def _std_bias_table(
    sigma: float, maxiters: int | None, block: int | None, budget: int = 400_000
) -> np.ndarray:
    """Monte Carlo ``E[clipped std] / true std`` on :data:`_GRID` sample counts.

    ``budget`` samples per grid point give a precision of about
    ``1 / sqrt(2 * budget)`` on the factor (0.1 % for the default). The default
    parameter set is precomputed with 10x the budget in :mod:`._clip_tables`.
    """
    key = (sigma, maxiters, block)
    if budget == 400_000 and key in PRECOMPUTED:
        return np.asarray(PRECOMPUTED[key])
    rng = np.random.default_rng(20261121)
    out = np.empty(len(_GRID))
    for i, n in enumerate(_GRID):
        trials = max(budget // n, 2000)
        if block:
            # Consecutive differences: blocks of `block` differences of block+1 reads.
            nblocks = -(-n // block)
            reads = rng.standard_normal((trials, nblocks, block + 1)) / math.sqrt(2.0)
            x = np.diff(reads, axis=-1).reshape(trials, -1)[:, :n]
        else:
            x = rng.standard_normal((trials, n))
        st = sigma_clip_stats(x, sigma=sigma, maxiters=maxiters, ddof=0)
        out[i] = np.nanmean(np.sqrt(st.var))
    return out


def clipped_std_bias(
    n: np.ndarray | int, *, sigma: float, maxiters: int | None, block: int | None = None
) -> np.ndarray:
    """Expected ratio of the clipped (ddof = 0) standard deviation to the true one.

    For ``n`` normal samples clipped as in :func:`sigma_clip_stats`, the standard
    deviation of the survivors is low for two reasons: the ``ddof = 0`` / ``E[s]``
    bias of a small sample, and the clipping itself, which removes the tails of the
    distribution (about 1.5 % for 3 sigma and many samples). Dividing by this factor
    gives an unbiased standard deviation for normal noise. The factor is computed once
    per parameter set by a seeded Monte Carlo (0.1 % precision) on a grid of sample
    counts and interpolated in ``log n``.

    Parameters
    ----------
    n : int or ndarray of int
        Number of samples before clipping.
    sigma, maxiters : float, int or None
        Clipping parameters, as in :func:`sigma_clip_stats`.
    block : int, optional
        Samples are consecutive differences of reads, in runs of ``block``
        (neighbouring differences share a read and are anti-correlated).

    Returns
    -------
    ndarray
        Factor per element of ``n``; NaN where ``n < 2``.
    """
    if not np.isfinite(sigma) or maxiters == 0:
        sigma, maxiters = np.inf, 0
    table = _std_bias_table(float(sigma), maxiters, block)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.interp(np.log(np.clip(n, 2, None)), np.log(_GRID), table)
    return np.where(n >= 2, f, np.nan)



#: Sample counts of the estimator-error table; above the last the factor is taken
#: as constant (by then within about 0.2 % of its large-sample value: about 1.0 for
#: a 3-sigma clipped mean, sqrt(pi / 2) = 1.2533 for the median).
_ERROR_GRID = _GRID[_GRID <= 512]


@lru_cache(maxsize=32)
def _error_factor_table(
    stat: str, sigma: float, maxiters: int | None, budget: int = 2_000_000
) -> np.ndarray:
    """Monte Carlo ``std(estimator) * sqrt(n) / true std`` on :data:`_ERROR_GRID`.

    ``budget`` samples per grid point (at least 20000 trials) give a precision of
    about ``1 / sqrt(2 * trials)`` on the factor. The default parameter sets are
    precomputed in :mod:`._clip_tables`.
    """
    key = ("error", stat, sigma, maxiters)
    if budget == 2_000_000 and key in PRECOMPUTED:
        return np.asarray(PRECOMPUTED[key])
    rng = np.random.default_rng(20261201)
    out = np.empty(len(_ERROR_GRID))
    for i, n in enumerate(_ERROR_GRID):
        x = rng.standard_normal((max(budget // n, 20000), n))
        st = sigma_clip_stats(x, sigma=sigma, maxiters=maxiters)
        est = st.median if stat == "median" else st.mean
        out[i] = np.std(est) * math.sqrt(n)
    return out


def estimator_error_factor(
    n: np.ndarray | int, *, stat: str, sigma: float, maxiters: int | None
) -> np.ndarray:
    """Standard error of a (clipped) mean or median, in units of ``sigma / sqrt(n)``.

    For ``n`` normal samples of standard deviation ``s``, the estimator (the mean
    or the median of the samples that survive sigma clipping as in
    :func:`sigma_clip_stats`; no clipping for ``sigma = inf`` or ``maxiters = 0``)
    has a standard deviation ``factor * s / sqrt(n)``. The factor is 1 for the
    plain mean, slightly above 1 for a clipped mean (clipping throws away a little
    information), about 1.2533 for a large-sample median and less for a few samples.
    It comes from a seeded Monte Carlo (precision about 0.5 %) on a grid of sample
    counts, interpolated in ``log n`` and constant beyond 512 samples.

    Parameters
    ----------
    n : int or ndarray of int
        Samples before clipping.
    stat : {'mean', 'median'}
    sigma, maxiters : float, int or None
        Clipping parameters.

    Returns
    -------
    ndarray
        Factor per element of ``n``; 1 where ``n == 1``, NaN where ``n < 1``.
    """
    if stat not in ("mean", "median"):
        raise ValueError(f"stat must be 'mean' or 'median', not {stat!r}")
    if not np.isfinite(sigma) or maxiters == 0:
        sigma, maxiters = np.inf, 0
    n = np.asarray(n, dtype=np.float64)
    if stat == "mean" and maxiters == 0:
        return np.where(n >= 1, 1.0, np.nan)
    table = _error_factor_table(stat, float(sigma), maxiters)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.interp(np.log(np.clip(n, 2, None)), np.log(_ERROR_GRID), table)
    return np.where(n >= 2, f, np.where(n == 1, 1.0, np.nan))


#: Correlations of the :func:`clipped_variance_covariance` table.
_RHO_GRID = np.linspace(0.0, 1.0, 21)


@lru_cache(maxsize=32)
def _variance_covariance_table(
    sigma: float, maxiters: int | None, budget: int = 2_000_000, n: int = 512
) -> np.ndarray:
    """Monte Carlo ``n Cov(v_x, v_y) / 2`` on :data:`_RHO_GRID` (unit variances).

    ``v`` is the clipped variance made unbiased (divided by :func:`clipped_std_bias`
    squared) of ``n`` samples; ``y = rho x + sqrt(1 - rho^2) z`` shares the random
    numbers of every grid point, so the table is smooth in ``rho``. ``budget`` samples
    per series give a precision of about ``sqrt(2 n / budget)`` (2 % for the runtime
    default, 0.7 % for the precomputed one).
    """
    key = ("varcov", sigma, maxiters)
    if budget == 2_000_000 and key in PRECOMPUTED:
        return np.asarray(PRECOMPUTED[key])
    rng = np.random.default_rng(20261205)
    trials = max(budget // n, 2000)
    x = rng.standard_normal((trials, n))
    z = rng.standard_normal((trials, n))
    f2 = float(clipped_std_bias(n, sigma=sigma, maxiters=maxiters)) ** 2
    vx = sigma_clip_stats(x, sigma=sigma, maxiters=maxiters).var / f2
    vx = vx - vx.mean()
    out = np.empty(_RHO_GRID.size)
    for i, rho in enumerate(_RHO_GRID):
        y = rho * x + math.sqrt(max(1.0 - rho * rho, 0.0)) * z
        vy = sigma_clip_stats(y, sigma=sigma, maxiters=maxiters).var / f2
        out[i] = np.mean(vx * (vy - vy.mean())) * n / 2.0
    out[0] = 0.0  # independent samples: zero exactly (the Monte Carlo's is noise)
    return out


def clipped_variance_covariance(
    rho: np.ndarray | float, *, sigma: float, maxiters: int | None
) -> np.ndarray:
    """Covariance of two clipped variance estimates, in units of ``2 s_x^2 s_y^2 / n``.

    For ``n`` pairs of normal samples ``(x, y)`` with standard deviations ``s_x``,
    ``s_y`` and correlation ``rho``, the variances of the ``x`` and of the ``y``
    clipped as in :func:`sigma_clip_stats` and made unbiased with
    :func:`clipped_std_bias` have ``Cov = phi(rho) 2 s_x^2 s_y^2 / n``. Without
    clipping ``phi = rho^2`` (the normal-theory result); clipping makes the estimate
    noisier, the more so the more correlated the samples: for 3 sigma ``phi / rho^2``
    rises from about 1.04 at ``rho`` 0.3 to 1.07 at 0.7 and 1.18 at 1 (the standard
    error of one clipped variance is 8 % above ``sqrt(2 / n)``). From a seeded Monte
    Carlo with 512 samples, interpolated linearly in ``rho``; the dependence on ``n``
    is within the table's precision from about 100 samples on.

    Parameters
    ----------
    rho : float or ndarray
        Correlation of the paired samples, in [-1, 1] (``phi`` is even in ``rho``).
    sigma, maxiters : float, int or None
        Clipping parameters.

    Returns
    -------
    ndarray
        ``phi(rho)``, dimensionless.
    """
    r = np.abs(np.asarray(rho, dtype=np.float64))
    if not np.isfinite(sigma) or maxiters == 0:
        return r * r
    table = _variance_covariance_table(float(sigma), maxiters)
    return np.interp(np.clip(r, 0.0, 1.0), _RHO_GRID, table)
