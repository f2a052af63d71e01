"""Numpy kernels of the photon-transfer GAIN: box statistics, IPC, the PTC fits.

Box statistics
--------------
For a pair of flats ``a``, ``b`` of one level and a group ``g``, with ``X = v[g] -
v[0]`` (the reset level and its kTC offset cancel), the mean signal of a box of
pixels is the mean of ``(Xa + Xb) / 2`` and its variance ``var(Xa - Xb) / 2`` (the
pixel-to-pixel response cancels in the difference). The same for a pair of darks
gives the read-noise (and dark) part, which is subtracted. The variance is
sigma-clipped (``clip_sigma``, corrected for the clipping and small-sample bias of
:func:`daskref.kernels.stats.clipped_std_bias`), so cosmic rays do not raise it.
The nearest-neighbour covariance of the half difference (the mean over the pairs of
horizontal and vertical neighbours in the box, both surviving the clipping) measures
the inter-pixel capacitance.

IPC
---
IPC reads the collected signal ``s`` of a pixel through the kernel ``[[0, a, 0],
[a, 1 - 4a, a], [0, a, 0]]``: ``d_i = (1 - 4a) s_i + a sum_nn s_j``. For shot noise
of variance ``sigma^2``, independent from pixel to pixel, the read values have

* ``var(d_i) = sigma^2 ((1 - 4a)^2 + 4 a^2)`` (the pixel's own share and that of its
  four neighbours), and
* ``cov(d_i, d_j) = 2 a (1 - 4a) sigma^2`` for nearest neighbours (``s_i`` and
  ``s_j`` are each in both; no third pixel is a neighbour of both),

exactly, so the measured ratio ``r = cov / var`` gives ``a`` as the root of
``(20 r + 8) a^2 - (8 r + 2) a + r = 0`` near ``r / 2`` (:func:`ipc_alpha`), and the
true shot variance is the measured one over ``(1 - 4a)^2 + 4a^2 = 1 - 8a + 20a^2``
(:func:`ipc_variance_factor`): without the correction the gain is high by about
``8a`` (12 % for ``a = 0.015``). Read noise is not coupled, so ``r`` is taken on
the dark-subtracted variance and covariance (the dark pairs also remove the read
noise's own neighbour correlation, row noise). Two biases of the measured ratio are
removed: the box's own mean, subtracted from every pixel, lowers the covariance of
any two pixels by ``var / n``; and the clipping truncates the pair distribution,
so that for a small correlation ``rho`` the survivors' covariance over their
variance is ``rho v_c``, ``v_c`` the truncated variance fraction (the square of the
std bias factor, which is divided out).

Photon transfer
---------------
``var = c0 + m / gain + c2 m^2 + c3 m^3`` over every level and group of an
amplifier (``fit_degree`` 3 by default: a detector read ``f(s)`` low by a quadratic
and a cubic term has ``var = f'(s)^2 s / gain`` against ``m = f(s)``, which a
quadratic absorbs only to a few per cent). Each box then takes its amplifier's
curve shape and fits only its scale, ``var - c0 = k (m + r2 m^2 + r3 m^3)``,
``gain_box = 1 / k``, by generalised least squares with the covariance of its
points (:func:`box_gains`): the points of one pair are the same pixels at several
groups, strongly correlated, and every point shares the subtracted dark estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .stats import clipped_std_bias, clipped_variance_covariance, sigma_clip_stats


@dataclass
class BoxStats:
    """Statistics of a pair in every box (arrays of shape ``(..., by, bx)``).

    Attributes
    ----------
    mean : ndarray
        Clipped mean of the half sum, DN.
    var : ndarray
        Variance of the half difference, DN^2 (clipped, corrected for the clipping).
    cov : ndarray
        Nearest-neighbour covariance of the half difference, DN^2 (same correction).
    n : ndarray of int
        Pixels of the box that were used (finite, not reference pixels), before
        clipping.
    """

    mean: np.ndarray
    var: np.ndarray
    cov: np.ndarray
    n: np.ndarray


def box_stats(a: np.ndarray, b: np.ndarray, valid: np.ndarray, *, box_size: int,
              clip_sigma: float = 3.0, maxiters: int = 3,
              horizontal: bool = True) -> BoxStats:
    """Mean, variance and neighbour covariance of a pair's half sum and difference.

    Parameters
    ----------
    a, b : ndarray, (..., y, x), DN
        ``v[g] - v[0]`` of the two exposures of a pair (any leading axes: groups).
    valid : ndarray of bool, (y, x)
        Pixels to use (not reference pixels).
    box_size : int
        Box side, pixels; ``y`` must be a multiple of it (the last box column may be
        partial).
    clip_sigma, maxiters : float, int
        Clipping of the difference and the sum over the box's pixels.
    horizontal : bool
        Neighbours along ``x`` count for the covariance too (False where the columns
        were put in amplifier order, so that side by side columns are not neighbours
        on the detector: the vertical ones alone measure the same symmetric ``a``).

    Returns
    -------
    BoxStats
        Float64 arrays of shape ``(..., y // box_size, ceil(x / box_size))`` (NaN
        with fewer than 8 pixels).
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    ny, nx = a.shape[-2:]
    bs = int(box_size)
    if ny % bs:
        raise ValueError(f"{ny} rows are not a multiple of box_size {bs}")
    nbx = -(-nx // bs)
    pad = nbx * bs - nx

    def boxes(arr):
        """(..., by, bx, bs, bs): each box's pixels, NaN outside ``valid``."""
        arr = np.where(valid, arr, np.nan)
        if pad:
            width = [(0, 0)] * (arr.ndim - 1) + [(0, pad)]
            arr = np.pad(arr, width, constant_values=np.nan)
        arr = arr.reshape(arr.shape[:-2] + (ny // bs, bs, nbx, bs))
        return np.moveaxis(arr, -3, -2)

    def samples(arr):
        return arr.reshape(arr.shape[:-2] + (bs * bs,))

    d = boxes(a - b)
    diff = sigma_clip_stats(samples(d), sigma=clip_sigma, maxiters=maxiters, ddof=0)
    half = sigma_clip_stats(samples(boxes(0.5 * (a + b))), sigma=clip_sigma,
                            maxiters=maxiters)
    n0 = np.isfinite(samples(d)).sum(axis=-1)
    factor = clipped_std_bias(n0, sigma=clip_sigma, maxiters=maxiters)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = diff.var / factor**2 / 2.0
        # the survivors (to within the last clipping window) and their deviations
        lo = (diff.median - diff.bound)[..., None, None]
        hi = (diff.median + diff.bound)[..., None, None]
        keep = (d >= lo) & (d <= hi)
        dev = np.where(keep, d - diff.mean[..., None, None], 0.0)
        w = keep.astype(np.float64)
        sxy = (dev[..., :-1, :] * dev[..., 1:, :]).sum(axis=(-2, -1))
        npairs = (w[..., :-1, :] * w[..., 1:, :]).sum(axis=(-2, -1))
        if horizontal:
            sxy += (dev[..., :, :-1] * dev[..., :, 1:]).sum(axis=(-2, -1))
            npairs += (w[..., :, :-1] * w[..., :, 1:]).sum(axis=(-2, -1))
        # correlation of the survivors (their own mean removed, which lowers it by
        # 1 / n), over v_c = factor^2 (the truncation), times the corrected variance
        rho = (sxy / npairs / diff.var + 1.0 / diff.n) / factor**2
        cov = rho * var
    ok = n0 >= 8
    return BoxStats(mean=np.where(ok, half.mean, np.nan), var=np.where(ok, var, np.nan),
                    cov=np.where(ok, cov, np.nan), n=n0)


def ipc_alpha(ratio):
    """IPC coupling ``a`` from the neighbour covariance over the variance, ``r``.

    The root of ``(20 r + 8) a^2 - (8 r + 2) a + r = 0`` near ``r / 2``:
    ``a = (1 + 4r - sqrt(1 - 4 r^2)) / (8 + 20 r)`` (module notes). NaN for ``|r| >=
    1/2``.
    """
    r = np.asarray(ratio, np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(r) < 0.5,
                        (1.0 + 4.0 * r - np.sqrt(1.0 - 4.0 * r * r)) / (8.0 + 20.0 * r),
                        np.nan)


def ipc_variance_factor(alpha):
    """What IPC leaves of uncorrelated noise's variance: ``(1 - 4a)^2 + 4a^2``."""
    a = np.asarray(alpha, np.float64)
    return (1.0 - 4.0 * a) ** 2 + 4.0 * a * a


def fit_ptc(mean: np.ndarray, var: np.ndarray, *, degree: int = 3, intercept: bool = True):
    """Fit ``var = [c0] + c1 m + ... + c_degree m^degree`` by least squares.

    Parameters
    ----------
    mean, var : ndarray, (point,)
        Mean signal (DN) and variance (DN^2) of the points; NaN points are ignored.
    degree : int
        Highest power.
    intercept : bool
        Fit ``c0`` too (without dark pairs the read noise stays in ``var``).

    Returns
    -------
    coeffs : ndarray, (degree + 1,)
        ``c0 ... c_degree`` (``c0`` 0 without an intercept); NaN with too few points.
    rms : float
        RMS fractional residual of the fit.
    """
    ok = np.isfinite(mean) & np.isfinite(var)
    m, y = mean[ok], var[ok]
    powers = np.arange(0 if intercept else 1, int(degree) + 1)
    out = np.full(int(degree) + 1, np.nan)
    if m.size < powers.size + 1:
        return out, np.nan
    scale = float(np.max(np.abs(m))) or 1.0
    x = (m / scale)[:, None] ** powers[None, :]
    sol, *_ = np.linalg.lstsq(x, y, rcond=None)
    out[:] = 0.0
    out[powers] = sol / scale ** powers
    fitted = x @ sol
    rms = float(np.sqrt(np.mean(((y - fitted) / fitted) ** 2)))
    return out, rms


@dataclass
class AmplifierFit:
    """The photon transfer of one amplifier (:func:`fit_amplifier`).

    Attributes
    ----------
    coeffs : ndarray, (degree + 1,)
        ``c0 ... c_degree`` of the (IPC-corrected, where asked) variance, DN^2 per
        DN^k; the gain is ``1 / c1``.
    rms : float
        RMS fractional residual.
    read : float
        ``c0`` of the variance before the IPC correction (0 with dark pairs), DN^2.
    ratio, alpha : float
        Neighbour covariance over the shot variance, and the IPC ``a`` it gives.
    factor : float
        ``(1 - 4a)^2 + 4a^2`` where corrected, else 1.
    """

    coeffs: np.ndarray
    rms: float
    read: float
    ratio: float
    alpha: float
    factor: float

    @property
    def gain(self) -> float:
        """e-/DN."""
        return float(1.0 / self.coeffs[1])


def fit_amplifier(mean, var, cov, *, degree: int, intercept: bool,
                  ipc_correction: bool) -> AmplifierFit:
    """PTC of one amplifier from its box-averaged points, IPC measured and corrected.

    Parameters
    ----------
    mean, var, cov : ndarray, (point,)
        Mean (DN), variance and neighbour covariance (DN^2) of every (pair, group)
        averaged over the amplifier's boxes, dark pairs subtracted where there are
        any.
    degree : int
        Highest power of the fit.
    intercept : bool
        No dark pairs: the read noise ``c0`` is fitted (first without the IPC
        correction, which applies to the shot noise only).
    ipc_correction : bool
        Divide the shot variance by :func:`ipc_variance_factor` before the fit.
    """
    read = 0.0
    if intercept:
        first, _ = fit_ptc(mean, var, degree=degree, intercept=True)
        read = float(first[0]) if np.isfinite(first[0]) else 0.0
    shot = var - read
    ok = np.isfinite(shot) & np.isfinite(cov)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = float(cov[ok].sum() / shot[ok].sum()) if ok.any() else np.nan
    alpha = float(ipc_alpha(ratio))
    factor = float(ipc_variance_factor(alpha)) if ipc_correction else 1.0
    if not np.isfinite(factor):
        factor = np.nan
    coeffs, rms = fit_ptc(mean, read + shot / factor, degree=degree, intercept=intercept)
    return AmplifierFit(coeffs=coeffs, rms=rms, read=read, ratio=ratio, alpha=alpha,
                        factor=factor)


def ptc_shape(mean, coeffs):
    """``m + (c2 / c1) m^2 + ... `` of every point for a fit's coefficients.

    Parameters
    ----------
    mean : ndarray
        Mean signal, DN (any shape).
    coeffs : ndarray, (degree + 1, ...) broadcastable against ``mean``
    """
    coeffs = np.asarray(coeffs, np.float64)
    c1 = coeffs[1]
    shape = np.zeros_like(np.asarray(mean, np.float64))
    for k in range(coeffs.shape[0] - 1, 0, -1):
        shape = shape * mean + coeffs[k] / c1
    return shape * mean


def pair_point_covariance(shot, read, mean, n, *, clip_sigma: float, maxiters: int):
    """Covariance of a pair's variance estimates at its groups, DN^4.

    The groups of one pair are the same pixels' ``v[g] - v[0]``: between groups ``g <
    h`` the half difference shares the shot noise collected up to ``g`` and the read
    noise of ``v[0]`` (half of one point's read variance), so it has the covariance
    ``c_gh = S_gh + R_min / 2`` (``S_gh = sqrt(S_g S_h) sqrt(m_g / m_h)``, which is
    ``S_g`` for a linear ramp and follows the non-linearity's ``f'`` otherwise) and
    ``c_gg = S_g + R_g``. The variance estimates of ``n`` pixels then covary by
    ``2 phi(rho_gh) c_gg c_hh / n`` (:func:`~.stats.clipped_variance_covariance`;
    ``rho_gh = c_gh / sqrt(c_gg c_hh)``).

    Parameters
    ----------
    shot : ndarray, (..., group)
        Expected shot variance of the half difference at every group, DN^2.
    read : ndarray, (..., group)
        Its read-noise (and dark) part, DN^2.
    mean : ndarray, (..., group)
        Mean signal, DN (for the cross-group shot covariance).
    n : ndarray, (...)
        Pixels of the estimates.
    clip_sigma, maxiters : float, int
        Clipping of the estimates.

    Returns
    -------
    ndarray, (..., group, group)
    """
    shot = np.asarray(shot, np.float64)
    read = np.asarray(read, np.float64)
    m = np.abs(np.asarray(mean, np.float64))
    g = shot.shape[-1]
    eye = np.eye(g, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.minimum(m[..., :, None], m[..., None, :])
        hi = np.maximum(m[..., :, None], m[..., None, :])
        s_cross = np.sqrt(shot[..., :, None] * shot[..., None, :]) * np.sqrt(lo / hi)
        r_cross = np.where(eye, read[..., :, None],
                           0.5 * np.minimum(read[..., :, None], read[..., None, :]))
        total = shot + read
        cross = np.where(eye, total[..., :, None], s_cross + r_cross)
        outer = total[..., :, None] * total[..., None, :]
        rho = cross / np.sqrt(outer)
        phi = clipped_variance_covariance(np.nan_to_num(rho), sigma=clip_sigma,
                                          maxiters=maxiters)
        return 2.0 * phi * outer / np.asarray(n, np.float64)[..., None, None]


def dark_point_covariance(read, n, n_pairs: int, *, clip_sigma: float, maxiters: int):
    """Covariance of the dark variance subtracted at each group (mean of the pairs), DN^4.

    As :func:`pair_point_covariance` with no shot noise: ``c_gg = D_g``, ``c_gh =
    min(D_g, D_h) / 2``, over ``n`` pixels and averaged over ``n_pairs`` pairs.

    Parameters
    ----------
    read : ndarray, (..., group)
        Dark-pair variance at every group, DN^2.
    n : ndarray, (...)
        Pixels of the estimates.
    n_pairs : int
        Dark pairs averaged.
    """
    zero = np.zeros_like(np.asarray(read, np.float64))
    return pair_point_covariance(zero, read, np.ones_like(zero), np.asarray(n) * n_pairs,
                                 clip_sigma=clip_sigma, maxiters=maxiters)


def gls_scale(x, y, pair_cov, common_cov=None, *, batch: int = 512):
    """``k`` and its standard error in ``y = k x``, by generalised least squares.

    The points of one box are ``(pair, group)``: points of different pairs are
    independent but for a part common to all of them (the subtracted dark estimate),
    so the covariance is block diagonal plus ``U common U^T`` (``U`` repeats the
    group block for every pair), inverted with the Woodbury identity one group
    block at a time.

    Parameters
    ----------
    x, y : ndarray, (box, pair, group)
        Regressor and data; a point with a NaN is left out.
    pair_cov : ndarray, (box, pair, group, group)
        Covariance of the points of one pair.
    common_cov : ndarray, (box, group, group), optional
        Covariance shared by the points of every pair.
    batch : int
        Boxes per step (bounds the memory).

    Returns
    -------
    k, err : ndarray, (box,)
        ``(x' C^-1 y) / (x' C^-1 x)`` and ``(x' C^-1 x)^(-1/2)``; NaN without points.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    nbox, _, ng = x.shape
    k = np.full(nbox, np.nan)
    err = np.full(nbox, np.nan)
    eye = np.eye(ng)
    for start in range(0, nbox, batch):
        sl = slice(start, start + batch)
        xb, yb, cb = x[sl], y[sl], np.array(pair_cov[sl], np.float64)
        diag = np.diagonal(cb, axis1=-2, axis2=-1)
        bad = ~(np.isfinite(xb) & np.isfinite(yb) & np.isfinite(diag) & (diag > 0))
        bad_any = bad[..., :, None] | bad[..., None, :]
        cb = np.where(bad_any | ~np.isfinite(cb), 0.0, cb)
        # a left-out point: no signal, no correlation, an enormous variance
        big = 1e20 * np.nanmax(np.where(bad, np.nan, diag), axis=(-2, -1), initial=1.0)
        cb = cb + np.where(bad, big[:, None, None], 0.0)[..., None] * eye
        xb = np.where(bad, 0.0, xb)
        yb = np.where(bad, 0.0, yb)
        bx = np.linalg.solve(cb, xb[..., None])[..., 0]  # (box, pair, group)
        by = np.linalg.solve(cb, yb[..., None])[..., 0]
        axx = np.einsum("bpg,bpg->b", xb, bx)
        axy = np.einsum("bpg,bpg->b", xb, by)
        if common_cov is not None:
            d = np.nan_to_num(np.asarray(common_cov[sl], np.float64))
            m = np.linalg.inv(cb).sum(axis=1)  # U' B^-1 U, (box, group, group)
            ux, uy = bx.sum(axis=1), by.sum(axis=1)  # U' B^-1 x, U' B^-1 y
            q = eye + m @ d
            # (D^-1 + M)^-1 = D (I + M D)^-1
            wx = np.einsum("bgh,bh->bg", d, np.linalg.solve(q, ux[..., None])[..., 0])
            wy = np.einsum("bgh,bh->bg", d, np.linalg.solve(q, uy[..., None])[..., 0])
            axx = axx - np.einsum("bg,bg->b", ux, wx)
            axy = axy - np.einsum("bg,bg->b", ux, wy)
        used = (~bad).sum(axis=(1, 2)) >= 1
        with np.errstate(invalid="ignore", divide="ignore"):
            k[sl] = np.where(used & (axx > 0), axy / axx, np.nan)
            err[sl] = np.where(used & (axx > 0), 1.0 / np.sqrt(axx), np.nan)
    return k, err
