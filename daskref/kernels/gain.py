"""Numpy kernels of the photon-transfer GAIN: box statistics and the PTC fit.

For a pair of flats ``a``, ``b`` of one level and a group ``g``, with ``X = v[g] -
v[0]`` (the reset level and its kTC offset cancel), the mean signal of a box of
pixels is the mean of ``(Xa + Xb) / 2`` and its variance ``var(Xa - Xb) / 2`` (the
pixel-to-pixel response cancels in the difference). The same for a pair of darks
gives the read-noise (and dark) part, which is subtracted. The variance is
sigma-clipped (``clip_sigma``, corrected for the clipping and small-sample bias of
:func:`daskref.kernels.stats.clipped_std_bias`), so cosmic rays do not raise it.

Photon transfer: ``var = c0 + m / gain + c2 m^2 + c3 m^3`` over every level and
group of an amplifier (``fit_degree`` 3 by default: a detector read ``f(s)`` low by a
quadratic and a cubic term has ``var = f'(s)^2 s / gain`` against ``m = f(s)``,
which a quadratic absorbs only to a few per cent). Each box then takes its
amplifier's curve shape and fits only its scale: ``var - c0 = k (m + r2 m^2 + r3
m^3)``, ``gain_box = 1 / k``.
"""

from __future__ import annotations

import numpy as np

from .stats import clipped_std_bias, sigma_clip_stats


def box_stats(a: np.ndarray, b: np.ndarray, valid: np.ndarray, *, box_size: int,
              clip_sigma: float = 3.0, maxiters: int = 3):
    """Mean and variance of a pair's half-sum and half-difference in every box.

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

    Returns
    -------
    mean, var : ndarray float64, (..., y // box_size, ceil(x / box_size))
        DN and DN^2 (NaN with fewer than 8 pixels).
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
        arr = np.where(valid, arr, np.nan)
        if pad:
            width = [(0, 0)] * (arr.ndim - 1) + [(0, pad)]
            arr = np.pad(arr, width, constant_values=np.nan)
        shape = arr.shape[:-2] + (ny // bs, bs, nbx, bs)
        arr = arr.reshape(shape)
        arr = np.moveaxis(arr, -3, -2)  # (..., by, bx, bs, bs)
        return arr.reshape(arr.shape[:-2] + (bs * bs,))

    diff = sigma_clip_stats(boxes(a - b), sigma=clip_sigma, maxiters=maxiters, ddof=0)
    half = sigma_clip_stats(boxes(0.5 * (a + b)), sigma=clip_sigma, maxiters=maxiters)
    n0 = np.isfinite(boxes(a - b)).sum(axis=-1)
    factor = clipped_std_bias(n0, sigma=clip_sigma, maxiters=maxiters)
    with np.errstate(invalid="ignore"):
        var = diff.var / factor**2 / 2.0
    ok = n0 >= 8
    return np.where(ok, half.mean, np.nan), np.where(ok, var, np.nan)


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


def box_gains(mean: np.ndarray, var: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """Gain of every box from its points and its amplifier's PTC shape, e-/DN.

    Parameters
    ----------
    mean, var : ndarray, (point, box)
        The boxes' points (NaN ignored).
    coeffs : ndarray, (degree + 1,) or (degree + 1, box)
        The amplifier fit of each box (:func:`fit_ptc`).

    Returns
    -------
    ndarray float64, (box,)
        ``1 / k`` of ``var - c0 = k (m + (c2 / c1) m^2 + ...)``; NaN where not fitted.
    """
    coeffs = np.asarray(coeffs, np.float64)
    if coeffs.ndim == 1:
        coeffs = coeffs[:, None]
    c0, c1 = coeffs[0], coeffs[1]
    shape = np.zeros_like(mean, dtype=np.float64)
    for k in range(coeffs.shape[0] - 1, 0, -1):
        shape = shape * mean + coeffs[k] / c1
    shape = shape * mean  # m + (c2/c1) m^2 + ...
    y = var - c0
    ok = np.isfinite(shape) & np.isfinite(y)
    sxy = np.where(ok, shape * y, 0.0).sum(axis=0)
    sxx = np.where(ok, shape * shape, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok.sum(axis=0) >= 2, sxx / sxy, np.nan)
