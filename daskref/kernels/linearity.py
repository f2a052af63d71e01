"""Numpy kernels of the LINEARITY fit: measured signal -> ideal linear signal.

Per pixel, from raw ramps at one or more fluxes (``(..., integration, group)`` DN)
and the groups' mean times since reset ``t`` (s):

1. each integration's plateau and the pixel's saturation level ``L`` (raw DN), as in
   :mod:`daskref.kernels.saturation`; the groups of the fit are those before the
   plateau and more than the plateau tolerance below ``L``: each pixel is fitted up
   to its own onset, not to a global group count;
2. a first zero level per integration, ``z0 = v0 - (v1 - v0) t0 / (t1 - t0)`` (or
   the SUPERBIAS), and the onset in measured signal ``M = L - median(z0)`` (without
   a plateau: the largest signal seen);
3. per integration, a polynomial in time of degree ``early_degree`` fitted to the
   *early* groups, those below ``early_fraction x M``: its constant is the zero
   level ``z`` (unless the SUPERBIAS is given) and its linear term the initial rate
   ``r`` (DN/s). A ramp of constant flux read through a polynomial non-linearity is
   a polynomial in time, so this rate is free of the curvature the early groups
   already show; integrations with fewer than ``early_degree + 2`` early groups
   (the brightest, saturated within a few groups) give no rate and are left out;
4. per group, the measured signal ``m = v - z`` and the ideal linear signal ``s = r
   t``; the JWST correction ``s = m + sum_{k=2..degree} c_k m^k`` (constant 0 and
   linear term 1 by construction: ``s`` and ``m`` agree as the signal tends to
   zero) is a linear least-squares fit of ``s - m`` over every fit group of every
   integration, on ``m / M`` for conditioning; then, ``iterations`` times, each
   integration's rate and zero level again from all its fit groups (``P(v - z) = r
   t``, linearised in ``z``), which uses every group instead of the few early ones
   and so lowers the noise of ``s``, and the polynomial again;
5. the RMS of the fractional residual ``(s - P(m)) / s`` over the groups above 10 %
   of the onset, for the NONLINEAR test.

A pixel whose ramps never rise above ``min_rise`` or have too few fit groups gets
NaN coefficients (the caller writes the identity and NO_LIN_CORR).
"""

from __future__ import annotations

import numpy as np

from .readnoise import global_clipped_stats
from .saturation import finite_median, plateaus

#: Residuals below this fraction of the onset are left out of the RMS (read noise
#: dominates there).
RMS_FROM = 0.1
#: An integration whose residual RMS exceeds the median of the pixel's integrations by
#: this factor is left out of the fit (a cosmic ray's step).
OUTLIER_FACTOR = 4.0


def _solve(normal: np.ndarray, rhs: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Batched ``normal @ x = rhs``; the identity where ``ok`` is False (x = 0 there)."""
    eye = np.eye(normal.shape[-1])
    normal = np.where(ok[..., None, None], normal, eye)
    rhs = np.where(ok[..., None], rhs, 0.0)
    # a well-posed but badly scaled system is still solvable; a singular one is not
    det_ok = np.abs(np.linalg.det(normal)) > 1e-300
    normal = np.where(det_ok[..., None, None], normal, eye)
    x = np.linalg.solve(normal, rhs[..., None])[..., 0]
    return np.where((ok & det_ok)[..., None], x, np.nan)


def _normal_equations(w: np.ndarray, basis: np.ndarray, y: np.ndarray, naxes: int):
    """``sum w b_k b_l`` and ``sum w y b_k`` over the last ``naxes`` axes of ``w``.

    ``basis`` is ``w``'s shape plus a last (term) axis. Matrix products: much faster
    than a three-operand einsum.
    """
    lead = w.shape[: w.ndim - naxes]
    b = basis.reshape(lead + (-1, basis.shape[-1]))
    wb = w.reshape(lead + (-1, 1)) * b
    normal = np.matmul(np.swapaxes(wb, -1, -2), b)
    rhs = np.matmul(np.swapaxes(wb, -1, -2), y.reshape(lead + (-1, 1)))[..., 0]
    return normal, rhs


def rms_threshold_stats(rms: np.ndarray, fitted: np.ndarray, *, sigma: float) -> np.ndarray:
    """``[mean, std]`` of the fitted pixels' residual RMS, clipped (NaN with none)."""
    keep = np.asarray(fitted) & np.isfinite(rms)
    if not keep.any():
        return np.array([np.nan, np.nan])
    return global_clipped_stats(rms, keep, sigma=float(sigma), maxiters=5)


def evaluate(coeffs: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``sum_k coeffs[..., k] m^k`` (Horner), coefficients on the last axis."""
    out = np.zeros(np.broadcast_shapes(coeffs.shape[:-1], m.shape), np.float64)
    for k in range(coeffs.shape[-1] - 1, -1, -1):
        out = out * m + coeffs[..., k]
    return out


def fit_linearity(
    v: np.ndarray,
    t: np.ndarray,
    *,
    zero: np.ndarray | None = None,
    degree: int = 5,
    early_fraction: float = 0.5,
    early_degree: int = 3,
    plateau_sigma: float = 5.0,
    min_plateau_groups: int = 2,
    min_rise: float = 500.0,
    iterations: int = 2,
):
    """Fit the linearity correction of every pixel.

    Parameters
    ----------
    v : ndarray, (..., integration, group), DN
        Raw ramps (at least 3 groups).
    t : ndarray, (group,), s
        Mean time since reset of each group's frames.
    zero : ndarray, (...), DN, optional
        Zero level (a SUPERBIAS); default each integration's own, from its early
        groups.
    degree : int
        Degree of the correction polynomial (at least 2).
    early_fraction : float
        Early groups lie below this fraction of the onset.
    early_degree : int
        Degree of the polynomial in time of the early groups (at least 1).
    plateau_sigma, min_plateau_groups, min_rise
        The plateau search (:func:`daskref.kernels.saturation.plateaus`).
    iterations : int
        Refinements of every integration's rate (and zero level) from all its fit
        groups through the polynomial (0: the early groups alone).

    Returns
    -------
    coeffs : ndarray float64, (..., degree + 1)
        ``[0, 1, c2, ..., c_degree]`` (measured DN -> linear DN), NaN where the
        pixel cannot be fitted.
    onset : ndarray float64, (...)
        Measured signal of the onset above the zero level, DN (NaN without a plateau).
    n_points : ndarray int32, (...)
        Groups in the fit.
    rms : ndarray float64, (...)
        RMS of the fractional residual above 10 % of the onset (NaN without any).
    """
    v = np.asarray(v, np.float64)
    t = np.asarray(t, np.float64)
    degree, early_degree = int(degree), int(early_degree)
    if degree < 2:
        raise ValueError(f"degree must be at least 2, not {degree}")
    if early_degree < 1:
        raise ValueError(f"early_degree must be at least 1, not {early_degree}")
    ngroups = v.shape[-1]
    start, level, tol = plateaus(v, plateau_sigma=plateau_sigma,
                                 min_plateau_groups=min_plateau_groups, min_rise=min_rise)
    sat = finite_median(level)
    g = np.arange(ngroups)
    usable = g < start[..., None]
    has_sat = np.isfinite(sat)
    usable &= ~has_sat[..., None, None] | (v < (sat - tol)[..., None, None])
    if zero is None:
        z0 = v[..., 0] - (v[..., 1] - v[..., 0]) * t[0] / (t[1] - t[0])
    else:
        z0 = np.broadcast_to(np.asarray(zero, np.float64)[..., None], v.shape[:-1])
    with np.errstate(all="ignore"):
        top = np.where(usable, v - z0[..., None], -np.inf).max(axis=(-2, -1))
        onset = np.where(has_sat, sat - np.median(z0, axis=-1), np.nan)
    scale = np.where(has_sat, onset, top)
    scale = np.where(np.isfinite(scale) & (scale > float(min_rise)), scale, np.nan)
    early = usable & (v - z0[..., None] <= float(early_fraction) * scale[..., None, None])

    # 3. zero level and initial rate of each integration from its early groups
    tau = t / t[-1]
    powers = np.arange(0 if zero is None else 1, early_degree + 1)
    x = tau[:, None] ** powers[None, :]  # (group, term)
    y = v if zero is None else v - z0[..., None]
    w = early.astype(np.float64)
    normal = np.einsum("...g,gk,gl->...kl", w, x, x)
    rhs = np.einsum("...g,...g,gk->...k", w, y, x)
    n_early = early.sum(axis=-1)
    ok_int = n_early >= powers.size + 1
    a = _solve(normal, rhs, ok_int)
    if zero is None:
        z, rate = a[..., 0], a[..., 1] / t[-1]
    else:
        z, rate = z0, a[..., 0] / t[-1]
    ok_int &= np.isfinite(rate) & (rate > 0)

    # 4. the correction polynomial over every fit group of the usable integrations,
    # then (``iterations`` times) each integration's rate and zero level again from
    # all its fit groups through the polynomial, and the polynomial again
    k = np.arange(2, degree + 1)
    unit = np.where(np.isfinite(scale), scale, 1.0)
    for it in range(int(iterations) + 1):
        points = usable & ok_int[..., None]
        m = v - np.where(ok_int, z, 0.0)[..., None]
        s = np.where(ok_int, rate, 0.0)[..., None] * t
        basis = (m / unit[..., None, None])[..., None] ** k  # (..., integration, group, term)
        wp = points.astype(np.float64)
        normal, rhs = _normal_equations(wp, basis, s - m, 2)
        n_points = points.sum(axis=(-2, -1))
        ok = np.isfinite(scale) & (n_points >= k.size + 2)
        b = _solve(normal, rhs, ok)
        if it == 0:
            # an integration whose residuals stand out from the pixel's others (a
            # cosmic ray's step, a telegraph jump) is left out from here on
            resid = np.where(points, s - m - np.einsum("...igk,...k->...ig", basis,
                                                       np.where(ok[..., None], b, 0.0)), 0.0)
            with np.errstate(all="ignore"):
                int_rms = np.sqrt((resid**2).sum(axis=-1) / points.sum(axis=-1))
            int_rms = np.where(ok_int, int_rms, np.nan)
            typical = finite_median(int_rms)
            n_int = np.isfinite(int_rms).sum(axis=-1)
            with np.errstate(invalid="ignore"):
                odd = (int_rms > OUTLIER_FACTOR * typical[..., None]) & (n_int >= 3)[..., None]
            ok_int &= ~odd
            points = usable & ok_int[..., None]
            wp = points.astype(np.float64)
            normal, rhs = _normal_equations(wp, basis, s - m, 2)
            n_points = points.sum(axis=(-2, -1))
            ok = np.isfinite(scale) & (n_points >= k.size + 2)
            b = _solve(normal, rhs, ok)
        if it == int(iterations):
            break
        # P(v - z) = r t, linearised in z: P(m) = r t + P'(m) dz, per integration
        bb = np.where(ok[..., None], b, 0.0)
        xs = m / unit[..., None, None]
        lin = m + np.einsum("...igk,...k->...ig", basis, bb)
        slope = 1.0 + np.einsum("...igk,...k->...ig", k * xs[..., None] ** (k - 1),
                                bb) / unit[..., None, None]
        w = points.astype(np.float64)
        if zero is None:
            cols = np.stack([np.broadcast_to(t, lin.shape), slope], axis=-1)
        else:
            cols = np.broadcast_to(t, lin.shape)[..., None]
        normal, rhs = _normal_equations(w, cols, lin, 1)
        a = _solve(normal, rhs, ok_int & ok[..., None])
        refit = np.isfinite(a[..., 0]) & (a[..., 0] > 0)
        rate = np.where(refit, a[..., 0], rate)
        if zero is None:
            z = np.where(refit, z + a[..., 1], z)
    with np.errstate(all="ignore"):
        c = b / unit[..., None] ** k
        zmed = finite_median(np.where(ok_int, z, np.nan))
        onset = np.where(has_sat & np.isfinite(zmed), sat - zmed, onset)
    coeffs = np.concatenate([np.zeros(c.shape[:-1] + (1,)), np.ones(c.shape[:-1] + (1,)), c],
                            axis=-1)
    coeffs = np.where(ok[..., None], coeffs, np.nan)

    # 5. fractional residuals above 10 % of the onset
    with np.errstate(all="ignore"):
        resid = (s - evaluate(coeffs[..., None, None, :], m)) / s
        far = points & (m > RMS_FROM * scale[..., None, None]) & ok[..., None, None]
        n_far = far.sum(axis=(-2, -1))
        rms = np.sqrt(np.where(far, resid * resid, 0.0).sum(axis=(-2, -1)) / n_far)
    rms = np.where(n_far > 0, rms, np.nan)
    return coeffs, onset, n_points.astype(np.int32), rms
