"""One-chunk numpy kernels of the simple stage-1 steps (saturation, linearity, dark).

Arrays are ``(integration, group, y, x)``; pixel maps are ``(y, x)`` or anything that
broadcasts to the ramp. No xarray, no dask.
"""

from __future__ import annotations

import numpy as np

from daskref import dq
from daskref.kernels._groups import running_or


def saturation_groupdq(data: np.ndarray, threshold, *, ad_floor: float | None = 0.0) -> np.ndarray:
    """Group flags from comparing samples with a saturation level.

    Parameters
    ----------
    data : numpy.ndarray, (integration, group, y, x), DN
    threshold : array_like, (y, x), DN
        Saturation level; ``+inf`` (or NaN) disables the check for a pixel.
    ad_floor : float or None, DN
        Samples at or below this value get ``AD_FLOOR | DO_NOT_USE`` (that group
        only); None disables the floor check.

    Returns
    -------
    numpy.ndarray of uint8, (integration, group, y, x)
        ``SATURATED`` on the first group with ``data >= threshold`` and on every
        later group of that integration, plus the A/D floor flags.
    """
    from ._simple_numba import saturation_block

    data = np.asarray(data)
    ny, nx = data.shape[-2:]
    if data.ndim == 4 and data.dtype.kind in "fiu":
        out = np.empty(data.shape, np.uint8)
        thr = np.broadcast_to(np.asarray(threshold, np.float64).reshape(
            np.shape(threshold)[-2:]), (ny, nx))
        saturation_block(data, thr, ad_floor is not None,
                         0.0 if ad_floor is None else float(ad_floor), out)
        return out
    return saturation_groupdq_numpy(data, threshold, ad_floor=ad_floor)


def saturation_groupdq_numpy(data: np.ndarray, threshold, *, ad_floor: float | None = 0.0):
    """Vectorised numpy version of :func:`saturation_groupdq` (the reference)."""
    data = np.asarray(data)
    with np.errstate(invalid="ignore"):
        sat = data >= np.asarray(threshold)
    sat = running_or(sat)
    flags = np.where(sat, np.uint8(dq.SATURATED), np.uint8(0))
    if ad_floor is not None:
        with np.errstate(invalid="ignore"):
            low = data <= ad_floor
        flags |= np.where(low, np.uint8(dq.AD_FLOOR | dq.DO_NOT_USE), np.uint8(0))
    return flags


def grow_box(mask: np.ndarray, n: int) -> np.ndarray:
    """OR of ``mask`` over a ``(2n+1) x (2n+1)`` box along the last two axes (no wrap)."""
    out = mask.copy()
    ny, nx = mask.shape[-2:]
    for dy in range(-n, n + 1):
        for dx in range(-n, n + 1):
            if dy == 0 and dx == 0:
                continue
            ys_dst = slice(max(dy, 0), ny + min(dy, 0))
            ys_src = slice(max(-dy, 0), ny + min(-dy, 0))
            xs_dst = slice(max(dx, 0), nx + min(dx, 0))
            xs_src = slice(max(-dx, 0), nx + min(-dx, 0))
            out[..., ys_dst, xs_dst] |= mask[..., ys_src, xs_src]
    return out


def apply_polynomial(data: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """Evaluate ``sum_k coeffs[..., k] * data**k`` (Horner, float64).

    Parameters
    ----------
    data : numpy.ndarray, DN
    coeffs : numpy.ndarray, coefficients on the last axis, broadcasting with ``data``.

    Returns
    -------
    numpy.ndarray of float64
    """
    x = np.asarray(data, dtype=np.float64)
    c = np.asarray(coeffs, dtype=np.float64)
    result = np.broadcast_to(c[..., -1], np.broadcast_shapes(x.shape, c.shape[:-1])).copy()
    for k in range(c.shape[-1] - 2, -1, -1):
        result *= x
        result += c[..., k]
    return result


def linearity_correct(
    data: np.ndarray, groupdq: np.ndarray, coeffs: np.ndarray, skip: np.ndarray
) -> np.ndarray:
    """Apply the classic polynomial linearity correction.

    Parameters
    ----------
    data : numpy.ndarray, (integration, group, y, x), DN
    groupdq : numpy.ndarray of uint8, same shape
        Groups flagged ``SATURATED`` are left unchanged.
    coeffs : numpy.ndarray, (y, x, coeff)
        Correction coefficients ``c_k``: ``F_c = sum_k c_k F**k``.
    skip : numpy.ndarray of bool, (y, x)
        Pixels left unchanged (``NO_LIN_CORR``).

    Returns
    -------
    numpy.ndarray of float32, (integration, group, y, x)
    """
    from ._simple_numba import linearity_block

    data = np.asarray(data)
    if data.ndim == 4 and data.dtype.kind in "fiu":
        ny, nx = data.shape[-2:]
        c = np.asarray(coeffs, np.float64)
        c = np.broadcast_to(c.reshape(c.shape[-3:]), (ny, nx, c.shape[-1]))
        sk = np.broadcast_to(np.asarray(skip, bool).reshape(np.shape(skip)[-2:]), (ny, nx))
        out = np.empty(data.shape, np.float32)
        linearity_block(data, np.asarray(groupdq), c, sk, out)
        return out
    return linearity_correct_numpy(data, groupdq, coeffs, skip)


def linearity_correct_numpy(data, groupdq, coeffs, skip) -> np.ndarray:
    """Vectorised numpy version of :func:`linearity_correct` (the reference)."""
    data = np.asarray(data)
    safe = np.where(np.asarray(skip)[..., None], 0.0, coeffs)
    corrected = apply_polynomial(data, safe).astype(np.float32)
    keep = ((np.asarray(groupdq) & dq.SATURATED) != 0) | np.asarray(skip)
    return np.where(keep, data.astype(np.float32), corrected)


def dark_frame_indices(
    ngroups: int,
    nframes: int,
    groupgap: int,
    dark_ngroups: int,
    dark_nframes: int = 1,
    dark_groupgap: int = 0,
) -> np.ndarray:
    """Dark-reference groups to average for each science group.

    Science group ``g`` (0-based) averages the frames ``g * (nframes + groupgap)``
    to ``g * (nframes + groupgap) + nframes - 1``. A dark taken with the same
    ``nframes``/``groupgap`` is used group by group; a frame-resolved dark
    (``dark_nframes`` = 1) provides frame ``f`` as its group ``f / (1 + dark_groupgap)``.

    Returns
    -------
    numpy.ndarray of int, (ngroups, nframes) or (ngroups, 1)
        Dark group indices whose mean matches each science group.

    Raises
    ------
    ValueError
        When the dark has too few groups, or its readout cannot be averaged to the
        science readout (a frame-averaged dark with another pattern, or a needed
        frame that the dark skipped).
    """
    if nframes == dark_nframes and groupgap == dark_groupgap:
        if ngroups > dark_ngroups:
            raise ValueError(
                f"the dark has {dark_ngroups} groups but the science exposure needs {ngroups} "
                f"(NFRAMES={nframes}, GROUPGAP={groupgap})"
            )
        return np.arange(ngroups)[:, None]
    if dark_nframes != 1:
        raise ValueError(
            f"cannot rebuild science groups (NFRAMES={nframes}, GROUPGAP={groupgap}) from a "
            f"frame-averaged dark (NFRAMES={dark_nframes}, GROUPGAP={dark_groupgap}); "
            "use a frame-resolved dark (NFRAMES=1) or one with the science readout"
        )
    frames = (np.arange(ngroups) * (nframes + groupgap))[:, None] + np.arange(nframes)[None, :]
    step = 1 + dark_groupgap
    if dark_groupgap and np.any(frames % step):
        raise ValueError(
            f"the dark skips frames (GROUPGAP={dark_groupgap}) that the science groups "
            f"(NFRAMES={nframes}, GROUPGAP={groupgap}) average"
        )
    idx = frames // step
    if idx.max() >= dark_ngroups:
        raise ValueError(
            f"the dark has {dark_ngroups} groups (frames) but the science exposure "
            f"(NGROUPS={ngroups}, NFRAMES={nframes}, GROUPGAP={groupgap}) needs "
            f"{int(idx.max()) + 1}"
        )
    return idx
