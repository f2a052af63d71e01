"""Compiled loops of the simple stage-1 kernels (numba), bit for bit the numpy ones.

The numpy versions evaluate over whole slabs with float64 temporaries (linearity:
one per Horner step, the coefficients read through a strided view; saturation: a
comparison, a running OR and two flag arrays); these loops make one pass over the
samples (``tests/kernels/test_simple_numba.py`` compares bytes).
"""

from __future__ import annotations

import numba
import numpy as np

from .. import dq

_JIT = dict(cache=True, nogil=True, error_model="numpy")


@numba.njit(**_JIT)
def linearity_block(data, groupdq, coeffs, skip, out):
    """``out = sum_k coeffs[y, x, k] * data**k`` (Horner, float64, rounded to float32).

    Parameters
    ----------
    data : ndarray, (integration, group, y, x), DN, any strides
    groupdq : ndarray of uint8, same shape
        ``SATURATED`` samples are copied unchanged.
    coeffs : ndarray of float64, (y, x, coeff)
    skip : ndarray of bool, (y, x)
        Pixels copied unchanged.
    out : ndarray of float32, (integration, group, y, x)
    """
    nint, ngroup, ny, nx = data.shape
    ncoeff = coeffs.shape[2]
    for yy in range(ny):
        for i in range(nint):
            for g in range(ngroup):
                for xx in range(nx):
                    v = data[i, g, yy, xx]
                    if skip[yy, xx] or (groupdq[i, g, yy, xx] & dq.SATURATED) != 0:
                        out[i, g, yy, xx] = np.float32(v)
                        continue
                    x = np.float64(v)
                    r = coeffs[yy, xx, ncoeff - 1]
                    for k in range(ncoeff - 2, -1, -1):
                        r = r * x
                        r = r + coeffs[yy, xx, k]
                    out[i, g, yy, xx] = np.float32(r)


@numba.njit(**_JIT)
def saturation_block(data, threshold, use_floor, ad_floor, out):
    """Group flags of saturation and the A/D floor.

    ``SATURATED`` from the first sample at or above ``threshold`` on, and
    ``AD_FLOOR | DO_NOT_USE`` on samples at or below ``ad_floor`` (when ``use_floor``).

    Parameters
    ----------
    data : ndarray, (integration, group, y, x), DN, any strides
    threshold : ndarray of float64, (y, x), DN
    use_floor : bool
    ad_floor : float, DN
    out : ndarray of uint8, (integration, group, y, x)
    """
    nint, ngroup, ny, nx = data.shape
    low_flags = np.uint8(dq.AD_FLOOR | dq.DO_NOT_USE)
    running = np.empty(nx, np.bool_)
    for i in range(nint):
        for yy in range(ny):
            running[:] = False
            for g in range(ngroup):
                for xx in range(nx):
                    v = np.float64(data[i, g, yy, xx])
                    running[xx] = running[xx] or v >= threshold[yy, xx]
                    f = np.uint8(dq.SATURATED) if running[xx] else np.uint8(0)
                    if use_floor and v <= ad_floor:
                        f |= low_flags
                    out[i, g, yy, xx] = f
