"""Read-noise and superbias kernels on one pixel slab (plain numpy).

Arrays arrive with the stack axes last: ramp ``(..., integration, group)`` (any
leading pixel axes), as ``algorithms._chunks.apply_stack`` hands them over (a
transposed view of an (integration, group, y, x) slab).
"""

from __future__ import annotations

import numpy as np

from .. import dq
from ._clip_numba import pixel_differences
from .stats import clipped_std_bias, sigma_clip_stats

#: Group flags that make a group unusable as either end of a difference.
BAD_GROUP = dq.SATURATED | dq.DO_NOT_USE


def group_pairs(ngroups: int, diff_type: str) -> tuple[np.ndarray, np.ndarray]:
    """First and second group index of each difference.

    ``independent``: (0, 1), (2, 3), ... (a last unpaired group of an odd count is
    not used); ``consecutive``: (0, 1), (1, 2), ..., (G-2, G-1).
    """
    if diff_type == "independent":
        a = np.arange(0, ngroups - 1, 2)
    elif diff_type == "consecutive":
        a = np.arange(0, ngroups - 1)
    else:
        raise ValueError(
            f"group_diff_type must be 'independent' or 'consecutive', not {diff_type!r}"
        )
    return a, a + 1


def group_differences(
    ramp: np.ndarray, groupdq: np.ndarray | None, diff_type: str
) -> np.ndarray:
    """CDS differences ``ramp[b] - ramp[a]`` with excluded ones set to NaN.

    A difference is excluded when either group is SATURATED or DO_NOT_USE, or the
    later group carries JUMP_DET (a jump between the two reads).

    Parameters
    ----------
    ramp : ndarray, (..., integration, group), DN
    groupdq : ndarray of uint8, same shape, or None

    Returns
    -------
    ndarray of float32, (..., integration, difference), DN
        C-contiguous: each pixel's samples together, as the sort of the clipping
        needs them. ``apply_stack`` hands over a transposed view of an
        (integration, group, y, x) slab; the compiled loop reads it along the
        pixel axis and writes the differences in pixel order in one pass, instead
        of a gather, a subtraction and a transposing copy.
    """
    a, b = group_pairs(ramp.shape[-1], diff_type)
    lead = ramp.shape[:-2]
    nint = ramp.shape[-2]
    r3 = ramp.reshape((-1,) + ramp.shape[-2:])
    g3 = (groupdq.reshape(r3.shape) if groupdq is not None
          else np.zeros((1, 1, 1), np.uint8))
    out = np.empty((r3.shape[0], nint * a.size), np.float32)
    pixel_differences(r3, g3, groupdq is not None, a, b, int(BAD_GROUP), int(dq.JUMP_DET), out)
    return out.reshape(lead + (nint, a.size))


def _std(samples: np.ndarray, sigma: float, maxiters: int, correct: bool, block: int | None):
    """Clipped standard deviation along the last axis, optionally made unbiased."""
    n_valid = np.count_nonzero(~np.isnan(samples), axis=-1)
    # the samples are this kernel's own temporary: sorted in place
    st = sigma_clip_stats(samples, sigma=sigma, maxiters=maxiters, ddof=0, overwrite_input=True)
    std = np.sqrt(st.var)
    if correct:
        std = std / clipped_std_bias(n_valid, sigma=sigma, maxiters=maxiters, block=block)
    std = np.where(n_valid >= 2, std, np.nan)
    return std, st.n


def readnoise_kernel(
    ramp: np.ndarray,
    groupdq: np.ndarray | None,
    file_index: np.ndarray,
    *,
    method: str,
    diff_type: str,
    sigma: float,
    maxiters: int,
    correct: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """CDS read noise of each pixel of a slab.

    Parameters
    ----------
    ramp : ndarray, (..., integration, group), DN
    groupdq : ndarray of uint8 (same shape) or None
    file_index : ndarray of int, (integration,)
        Which input file each integration came from (for ``method='ramp'``).
    method : {'stack', 'ramp'}
        ``stack``: clipped std of all differences of all files; ``ramp``: clipped
        std per file, then the clipped mean of the per-file values.
    diff_type : {'independent', 'consecutive'}
    sigma, maxiters : float, int
        Sigma clipping.
    correct : bool
        Divide by the expected clipped-std bias of normal noise
        (:func:`~daskref.kernels.stats.clipped_std_bias`), so the estimate is unbiased.

    Returns
    -------
    readnoise : ndarray of float32, (...), DN
        CDS noise; NaN where fewer than 2 differences were usable.
    n_used : ndarray of int32, (...)
        Differences that survived clipping (summed over files for ``ramp``).
    """
    d = group_differences(ramp, groupdq, diff_type)
    block = d.shape[-1] if diff_type == "consecutive" else None
    if method == "stack":
        samples = d.reshape(d.shape[:-2] + (-1,))
        std, n = _std(samples, sigma, maxiters, correct, block)
        return std.astype(np.float32), n.astype(np.int32)
    if method != "ramp":
        raise ValueError(f"method must be 'stack' or 'ramp', not {method!r}")
    files = np.unique(file_index)
    per_file = np.empty(d.shape[:-2] + (files.size,), dtype=np.float64)
    n_total = np.zeros(d.shape[:-2], dtype=np.int64)
    for k, f in enumerate(files):
        sel = d[..., file_index == f, :]
        std, n = _std(sel.reshape(sel.shape[:-2] + (-1,)), sigma, maxiters, correct, block)
        per_file[..., k] = std
        n_total += n
    st = sigma_clip_stats(per_file, sigma=sigma, maxiters=maxiters)
    return st.mean.astype(np.float32), n_total.astype(np.int32)


def superbias_kernel(
    group0: np.ndarray,
    groupdq0: np.ndarray | None,
    *,
    sigma: float,
    maxiters: int,
    correct: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clipped mean and standard deviation of the 0th group across integrations.

    Parameters
    ----------
    group0 : ndarray, (..., integration), DN
    groupdq0 : ndarray of uint8, (..., integration), or None
        Group DQ of group 0; SATURATED or DO_NOT_USE samples are excluded.
    sigma, maxiters : float, int
        Sigma clipping.
    correct : bool
        Make the standard deviation unbiased for normal noise.

    Returns
    -------
    mean, std : ndarray of float32, (...), DN
    n_used : ndarray of int32, (...)
    """
    x = group0.astype(np.float64)
    if groupdq0 is not None:
        x[(groupdq0 & BAD_GROUP) != 0] = np.nan
    n_valid = np.count_nonzero(~np.isnan(x), axis=-1)
    st = sigma_clip_stats(x, sigma=sigma, maxiters=maxiters, ddof=0)
    std = np.sqrt(st.var)
    if correct:
        std = std / clipped_std_bias(n_valid, sigma=sigma, maxiters=maxiters)
    std = np.where(n_valid >= 2, std, np.nan)
    return st.mean.astype(np.float32), std.astype(np.float32), st.n.astype(np.int32)


def global_clipped_stats(values: np.ndarray, mask: np.ndarray | None, *, sigma: float,
                         maxiters: int) -> np.ndarray:
    """Clipped mean and (ddof = 0) standard deviation of all finite values.

    Returns
    -------
    ndarray, shape (2,)
        ``[mean, std]``.
    """
    v = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(v) if mask is None else (np.isfinite(v) & mask)
    st = sigma_clip_stats(v[keep][None, :], sigma=sigma, maxiters=maxiters, ddof=0)
    return np.array([st.mean[0], np.sqrt(st.var[0])])
