"""SUPERBIAS: clipped mean of the 0th group of every integration of every dark."""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr
from scipy.ndimage import median_filter

from .. import dq
from ..geometry import reference_pixel_mask
from ..kernels.readnoise import global_clipped_stats, superbias_kernel
from ._chunks import apply_stack, require_single_chunk
from .readnoise import as_ramp_dataset

UNRELIABLE = dq.DO_NOT_USE | dq.UNRELIABLE_BIAS


def superbias(
    data: xr.Dataset | xr.DataArray,
    *,
    clipping_sigma: float = 3.0,
    max_clipping_iters: int = 3,
    bad_clipping_sigma: float = 3.0,
    bad_max_clipping_iters: int = 3,
    bad_sigma_threshold: float = 5.0,
    save_filled: bool = False,
    box_width: int = 3,
    bias_correction: bool = True,
) -> xr.Dataset:
    """Superbias (mean reset level) of every pixel, as a lazy Dataset.

    Parameters
    ----------
    data : Dataset or DataArray
        Stack of dark ramps, ``ramp`` (integration, group, y, x) in DN, optionally
        ``groupdq`` and ``pixeldq``; ``integration`` must be a single chunk.
    clipping_sigma, max_clipping_iters : float, int
        Sigma clipping of each pixel's group-0 values across all integrations.
    bad_clipping_sigma, bad_max_clipping_iters, bad_sigma_threshold : float, int, float
        A pixel is UNRELIABLE_BIAS (and DO_NOT_USE) when its error exceeds
        ``m + bad_sigma_threshold * s``, with ``m``, ``s`` the clipped mean and
        standard deviation of the error over the whole map, or its error is not
        finite (the jwst_reffiles rule).
    save_filled : bool
        Also return ``superbias_filled``: the superbias with pixels that stand out
        from their ``box_width`` x ``box_width`` median by more than
        ``bad_sigma_threshold`` clipped standard deviations replaced by that median.
    box_width : int
        Median-filter box for ``save_filled``, pixels (odd).
    bias_correction : bool
        Make the error (a clipped standard deviation) unbiased for normal noise.

    Returns
    -------
    xarray.Dataset
        ``superbias`` (y, x) float32 DN, ``err`` (y, x) float32 DN (clipped standard
        deviation of the group-0 values), ``dq`` (y, x) uint32 (DO_NOT_USE |
        UNRELIABLE_BIAS), ``n_used`` (y, x) int32, optionally ``superbias_filled``.

    Notes
    -----
    Group-0 values flagged SATURATED or DO_NOT_USE in ``groupdq`` are excluded.
    Every integration of every input is used (jwst_reffiles used only the first).
    """
    ds = as_ramp_dataset(data)
    require_single_chunk(ds.ramp, ("integration",), "ramp")
    g0 = ds.ramp.isel(group=0)
    kwargs = dict(sigma=float(clipping_sigma), maxiters=int(max_clipping_iters),
                  correct=bool(bias_correction))
    args = [g0]
    if "groupdq" in ds:
        args.append(ds.groupdq.isel(group=0))

        def func(v, g):
            return superbias_kernel(v, g, **kwargs)
    else:
        def func(v):
            return superbias_kernel(v, None, **kwargs)
    sb, err, n_used = apply_stack(
        func, *args,
        input_core_dims=[["integration"]] * len(args),
        output_core_dims=[[], [], []],
        output_dtypes=[np.float32, np.float32, np.int32],
    )
    stats = _global_stats(err.data, None, bad_clipping_sigma, bad_max_clipping_iters)
    threshold = stats[0] + bad_sigma_threshold * stats[1]
    bad = ~(err.data <= threshold)  # also true where err is NaN
    dq_map = err.copy(data=np.where(bad, np.uint32(UNRELIABLE), np.uint32(0)).astype(np.uint32))
    sb.attrs = {"units": "DN", "long_name": "superbias"}
    err.attrs = {"units": "DN", "long_name": "clipped standard deviation of group 0"}
    out = {"superbias": sb, "err": err, "dq": dq_map, "n_used": n_used}
    if save_filled:
        out["superbias_filled"] = _filled(sb, ds, box_width, bad_clipping_sigma,
                                          bad_max_clipping_iters, bad_sigma_threshold)
    params = {
        "clipping_sigma": float(clipping_sigma), "max_clipping_iters": int(max_clipping_iters),
        "bad_clipping_sigma": float(bad_clipping_sigma),
        "bad_max_clipping_iters": int(bad_max_clipping_iters),
        "bad_sigma_threshold": float(bad_sigma_threshold), "save_filled": bool(save_filled),
        "box_width": int(box_width), "bias_correction": bool(bias_correction),
    }
    attrs = {k: v for k, v in ds.attrs.items() if k != "parameters"}
    attrs.update(reftype="SUPERBIAS", parameters=params)
    return xr.Dataset(out, attrs=attrs)


def _global_stats(values, mask, sigma, maxiters):
    """``[mean, std]`` of the clipped finite values of a whole 2-D map (lazy for dask)."""
    if not isinstance(values, da.Array):
        return global_clipped_stats(values, mask, sigma=float(sigma), maxiters=int(maxiters))
    flat = values.reshape(-1).rechunk(-1)
    args = [flat, None if mask is None else da.asarray(mask).reshape(-1).rechunk(-1)]
    return da.map_blocks(global_clipped_stats, *args, sigma=float(sigma),
                         maxiters=int(maxiters), chunks=(2,), dtype=np.float64)


def _median_smooth(block: np.ndarray, size: int) -> np.ndarray:
    return median_filter(block, size=size, mode="nearest")


def _filled(sb: xr.DataArray, ds: xr.Dataset, box_width: int, sigma, maxiters, threshold):
    if box_width < 1 or box_width % 2 == 0:
        raise ValueError(f"box_width must be a positive odd number, not {box_width}")
    lazy = isinstance(sb.data, da.Array)
    ref = reference_pixel_mask(ds.attrs, sb.shape)
    if lazy:
        ref = da.from_array(ref, chunks=sb.data.chunks)
    if "pixeldq" in ds:
        ref = ref | ((ds.pixeldq.data & np.uint32(dq.REFERENCE_PIXEL)) != 0)
    science = ~ref
    # Non-finite pixels take the clipped mean so the median filter sees numbers.
    level = _global_stats(sb.data, science, sigma, maxiters)[0].astype(np.float32)
    clean = np.where(np.isfinite(sb.data), sb.data, level)
    if lazy:
        smooth = da.map_overlap(_median_smooth, clean, depth=box_width // 2, boundary="none",
                                size=box_width, dtype=np.float32)
    else:
        smooth = _median_smooth(clean, box_width)
    diff = clean - smooth
    stats = _global_stats(diff, science, sigma, maxiters)
    flag = science & ((diff > stats[0] + threshold * stats[1]) | ~np.isfinite(sb.data))
    filled = np.where(flag, smooth, clean).astype(np.float32)
    return sb.copy(data=filled).assign_attrs(units="DN", long_name="filled superbias")
