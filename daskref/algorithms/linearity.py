"""LINEARITY: the JWST correction polynomial of every pixel, from ramps into saturation.

The inputs are raw ramps at one or more fluxes. Per pixel
(:func:`daskref.kernels.linearity.fit_linearity`): the zero level (each
integration's own, or a SUPERBIAS), the ideal linear signal from the early groups and
the group times, and the correction ``linear = sum_k c_k measured^k`` (``c0 = 0``,
``c1 = 1``) fitted up to the pixel's own saturation onset. This is the polynomial
the jwst ``linearity`` step evaluates (Horner, ``COEFFS[0]`` the constant) on the
superbias-subtracted groups that are not SATURATED.

DQ: ``NO_LIN_CORR`` (identity coefficients ``0, 1, 0, ...``) where a pixel cannot be
fitted and on the reference pixels; ``NONLINEAR`` where the logarithm of the RMS
fractional residual of the fit (near normal where the RMS is not) exceeds the
detector's clipped mean by ``nonlinear_sigma`` clipped standard deviations.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr

from .. import dq
from ..geometry import reference_pixel_mask
from ..kernels.linearity import fit_linearity, rms_threshold_stats
from ..kernels.ramp_fit import group_times
from ._chunks import apply_stack, require_single_chunk
from .readnoise import as_ramp_dataset


def ramp_times(attrs, ngroups: int) -> np.ndarray:
    """Mean time since reset of each group's frames, s (from TGROUP, NFRAMES, GROUPGAP)."""
    try:
        tgroup = float(attrs["TGROUP"])
    except KeyError:
        raise ValueError("the ramps' TGROUP keyword is missing: the linear signal needs "
                         "the group times") from None
    return group_times(int(ngroups), tgroup, int(attrs.get("NFRAMES", 1)),
                       int(attrs.get("GROUPGAP", 0)))


def linearity(
    data: xr.Dataset | xr.DataArray,
    *,
    superbias: xr.DataArray | None = None,
    degree: int = 5,
    early_fraction: float = 0.5,
    early_degree: int = 3,
    nonlinear_sigma: float = 5.0,
    plateau_sigma: float = 5.0,
    min_plateau_groups: int = 2,
    min_rise: float = 500.0,
    iterations: int = 2,
) -> xr.Dataset:
    """Linearity correction of every pixel, as a lazy Dataset.

    Parameters
    ----------
    data : Dataset or DataArray
        Raw ramps ``ramp`` (integration, group, y, x), DN, at one or more fluxes,
        driven into saturation; ``integration`` and ``group`` single chunks. The
        attributes give the group times (TGROUP, NFRAMES, GROUPGAP).
    superbias : DataArray (y, x), DN, optional
        Zero level of every pixel; default each integration's own, from its early
        groups (a campaign without darks).
    degree : int
        Degree of the correction polynomial (``degree + 1`` coefficients).
    early_fraction : float
        Groups below this fraction of the onset give the zero level and the rate.
    early_degree : int
        Degree of the polynomial in time fitted to those groups.
    nonlinear_sigma : float
        NONLINEAR where the log of the RMS fractional residual exceeds its clipped
        mean by this many clipped standard deviations (over the fitted pixels).
    plateau_sigma, min_plateau_groups, min_rise
        The saturation plateau search, as in
        :func:`daskref.algorithms.saturation.saturation`.
    iterations : int
        Refinements of each integration's rate and zero level from all its fit
        groups through the polynomial (0: from the early groups alone).

    Returns
    -------
    xarray.Dataset
        ``coeffs`` (coeff, y, x) float32 (identity where not fitted), ``dq`` (y, x)
        uint32, ``onset`` (y, x) float32 DN (measured signal of the saturation onset
        above the zero level), ``n_points`` (y, x) int32, ``rms`` (y, x) float32
        (fractional residual of the fit).
    """
    if int(degree) < 2:
        raise ValueError(f"degree must be at least 2, not {degree}")
    if not 0.0 < early_fraction <= 1.0:
        raise ValueError(f"early_fraction must be in (0, 1], not {early_fraction}")
    ds = as_ramp_dataset(data)
    require_single_chunk(ds.ramp, ("integration", "group"), "ramp")
    ngroups = ds.sizes["group"]
    if ngroups < int(early_degree) + 3:
        raise ValueError(f"the linearity fit needs at least {int(early_degree) + 3} groups "
                         f"(early_degree {int(early_degree)}), not {ngroups}")
    t = ramp_times(ds.attrs, ngroups)
    kwargs = dict(degree=int(degree), early_fraction=float(early_fraction),
                  early_degree=int(early_degree), plateau_sigma=float(plateau_sigma),
                  min_plateau_groups=int(min_plateau_groups), min_rise=float(min_rise),
                  iterations=int(iterations))

    def func(v, *zero):
        # contiguous, as the einsum sums depend on the memory order (bit for bit)
        v = np.ascontiguousarray(v)
        coeffs, onset, n, rms = fit_linearity(v, t, zero=zero[0] if zero else None, **kwargs)
        return (coeffs.astype(np.float32), onset.astype(np.float32), n,
                rms.astype(np.float32))

    args = [ds.ramp]
    core = [["integration", "group"]]
    if superbias is not None:
        args.append(superbias)
        core.append([])
    coeffs, onset, n_points, rms = apply_stack(
        func, *args,
        input_core_dims=core,
        output_core_dims=[["coeff"], [], [], []],
        output_dtypes=[np.float32, np.float32, np.int32, np.float32],
        output_sizes={"coeff": int(degree) + 1},
    )
    coeffs = coeffs.transpose("coeff", ...)
    shape = (ds.sizes["y"], ds.sizes["x"])
    ref = reference_pixel_mask(ds.attrs, shape)
    if isinstance(rms.data, da.Array):
        ref = da.from_array(ref, chunks=rms.data.chunks)
    if "pixeldq" in ds:
        ref = ref | ((ds.pixeldq.data & np.uint32(dq.REFERENCE_PIXEL)) != 0)
    unfit = ~np.isfinite(coeffs.data).all(axis=0) | ref
    identity = np.zeros(int(degree) + 1, np.float32)
    identity[1] = 1.0
    coeffs = coeffs.copy(data=np.where(unfit[None], identity[:, None, None], coeffs.data))
    # the RMS of a pixel's residuals is chi-like (skewed): its logarithm is near normal
    with np.errstate(divide="ignore", invalid="ignore"):
        log_rms = np.log(rms.data)
    stats = _stats(log_rms, ~unfit, nonlinear_sigma)
    nonlinear = ~unfit & (log_rms > stats[0] + float(nonlinear_sigma) * stats[1])
    flags = (np.where(unfit, np.uint32(dq.NO_LIN_CORR), np.uint32(0))
             | np.where(nonlinear, np.uint32(dq.NONLINEAR), np.uint32(0))).astype(np.uint32)
    params = {"degree": int(degree), "early_fraction": float(early_fraction),
              "early_degree": int(early_degree), "nonlinear_sigma": float(nonlinear_sigma),
              "plateau_sigma": float(plateau_sigma),
              "min_plateau_groups": int(min_plateau_groups), "min_rise": float(min_rise),
              "iterations": int(iterations),
              "zero_level": "superbias" if superbias is not None else "ramps"}
    attrs = {k: v for k, v in ds.attrs.items() if k != "parameters"}
    attrs.update(reftype="LINEARITY", parameters=params)
    out = {
        "coeffs": coeffs.assign_attrs(long_name="correction coefficients, measured DN -> "
                                      "linear DN (COEFFS[k] multiplies DN**k)"),
        "dq": rms.copy(data=flags),
        "onset": onset.assign_attrs(units="DN", long_name="saturation onset above zero"),
        "n_points": n_points,
        "rms": rms.assign_attrs(long_name="RMS fractional residual above 10 % of onset"),
    }
    return xr.Dataset(out, attrs=attrs)


def _stats(values, mask, sigma):
    """``[mean, std]`` clipped over the masked finite values (lazy for dask)."""
    if not isinstance(values, da.Array):
        return rms_threshold_stats(values, mask, sigma=float(sigma))
    flat = values.reshape(-1).rechunk(-1)
    m = da.asarray(mask).reshape(-1).rechunk(-1)
    return da.map_blocks(rms_threshold_stats, flat, m, sigma=float(sigma), chunks=(2,),
                         dtype=np.float64)
