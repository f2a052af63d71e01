"""READNOISE: CDS noise per pixel from a stack of dark ramps."""

from __future__ import annotations

from typing import Literal

import dask.array as da
import numpy as np
import xarray as xr

from ..geometry import is_miri
from ..kernels.readnoise import global_clipped_stats, readnoise_kernel
from ._chunks import apply_stack, require_single_chunk

#: NIRCam detectors whose maps are flipped along x to reach detector coordinates.
NIRCAM_XFLIP = {"NRCA1", "NRCA3", "NRCALONG", "NRCB2", "NRCB4"}


def as_ramp_dataset(data: xr.Dataset | xr.DataArray) -> xr.Dataset:
    """Accept a ramp DataArray or a Dataset with a ``ramp`` variable."""
    if isinstance(data, xr.DataArray):
        return data.to_dataset(name="ramp").assign_attrs(data.attrs)
    if "ramp" not in data:
        raise ValueError("expected a Dataset with a 'ramp' variable (integration, group, y, x)")
    return data


def group_range(attrs, ngroups: int, drop_first_groups: int | None, drop_last_groups: int | None):
    """Groups kept after dropping the first/last ones (MIRI default: 5 and 1)."""
    miri = is_miri(attrs)
    first = (5 if miri else 0) if drop_first_groups is None else int(drop_first_groups)
    last = (1 if miri else 0) if drop_last_groups is None else int(drop_last_groups)
    if first < 0 or last < 0:
        raise ValueError("drop_first_groups and drop_last_groups must be >= 0")
    if ngroups - first - last < 2:
        raise ValueError(
            f"{ngroups} groups minus drop_first_groups={first} and drop_last_groups={last} "
            "leaves fewer than 2 groups to difference"
        )
    return first, ngroups - last


def readnoise(
    data: xr.Dataset | xr.DataArray,
    *,
    method: Literal["stack", "ramp"] = "stack",
    group_diff_type: Literal["independent", "consecutive"] = "independent",
    clipping_sigma: float = 3.0,
    max_clipping_iters: int = 3,
    single_value: bool = False,
    drop_first_groups: int | None = None,
    drop_last_groups: int | None = None,
    bias_correction: bool = True,
) -> xr.Dataset:
    """CDS read noise of every pixel, as a lazy Dataset.

    Parameters
    ----------
    data : Dataset or DataArray
        Stack of dark ramps: ``ramp`` (integration, group, y, x) in DN, optionally
        ``groupdq`` (same dims) and a ``file`` coordinate along ``integration``
        (from :func:`daskref.io.open_stack`). ``integration`` and ``group`` must be
        single chunks; ``y``/``x`` may be chunked freely.
    method : {'stack', 'ramp'}
        ``stack``: sigma-clipped standard deviation of all group differences of all
        integrations and files; ``ramp``: the same per file, then the clipped mean of
        the per-file values.
    group_diff_type : {'independent', 'consecutive'}
        Differences of disjoint group pairs (1-0, 3-2, ...; an unpaired last group is
        not used) or of every consecutive pair.
    clipping_sigma, max_clipping_iters : float, int
        Iterative sigma clipping about the median (astropy ``sigma_clip`` semantics).
    single_value : bool
        Replace the map by one number: the clipped mean over the whole map, or for
        NIRCam full frame the first output (512 columns, in detector coordinates).
    drop_first_groups, drop_last_groups : int, optional
        Groups left out at the start/end of each integration. Default 5 and 1 for
        MIRI (reset and last-frame effects), else 0.
    bias_correction : bool
        Divide the clipped standard deviation by its expected value for normal noise
        of the same sample count (small-sample and clipping bias: about 1.5 % for
        3-sigma clipping), so the estimate is unbiased.

    Returns
    -------
    xarray.Dataset
        ``readnoise`` (y, x) float32, CDS noise in DN (noise of one read is this
        over sqrt(2)); ``n_used`` (y, x) int32, differences used. Attributes carry the
        input header values, ``inputs`` and ``parameters``. Nothing is computed.

    Notes
    -----
    A difference is excluded when either of its groups is flagged SATURATED or
    DO_NOT_USE in ``groupdq``, or its later group is flagged JUMP_DET.
    """
    ds = as_ramp_dataset(data)
    require_single_chunk(ds.ramp, ("integration", "group"), "ramp")
    g0, g1 = group_range(ds.attrs, ds.sizes["group"], drop_first_groups, drop_last_groups)
    sub = ds.isel(group=slice(g0, g1))
    if "exposure" in ds.coords:
        file_index = np.asarray(ds["exposure"].values)
    elif "file" in ds.coords:
        _, file_index = np.unique(ds["file"].values, return_inverse=True)
    else:
        file_index = np.zeros(ds.sizes["integration"], dtype=int)
    kwargs = dict(method=method, diff_type=group_diff_type, sigma=float(clipping_sigma),
                  maxiters=int(max_clipping_iters), correct=bool(bias_correction))
    if method not in ("stack", "ramp"):
        raise ValueError(f"method must be 'stack' or 'ramp', not {method!r}")
    core = ["integration", "group"]
    args = [sub.ramp]
    if "groupdq" in sub:
        require_single_chunk(sub.groupdq, core, "groupdq")
        args.append(sub.groupdq)

        def func(r, g):
            return readnoise_kernel(r, g, file_index, **kwargs)
    else:
        def func(r):
            return readnoise_kernel(r, None, file_index, **kwargs)
    rn, n_used = apply_stack(
        func, *args,
        input_core_dims=[core] * len(args),
        output_core_dims=[[], []],
        output_dtypes=[np.float32, np.int32],
    )
    if single_value:
        rn = _single_value(rn, ds.attrs, clipping_sigma, max_clipping_iters)
    rn.attrs = {"units": "DN", "long_name": "CDS read noise"}
    params = {
        "method": method, "group_diff_type": group_diff_type,
        "clipping_sigma": float(clipping_sigma), "max_clipping_iters": int(max_clipping_iters),
        "single_value": bool(single_value), "drop_first_groups": g0,
        "drop_last_groups": ds.sizes["group"] - g1, "bias_correction": bool(bias_correction),
    }
    attrs = {k: v for k, v in ds.attrs.items() if k != "parameters"}
    attrs.update(reftype="READNOISE", parameters=params)
    return xr.Dataset({"readnoise": rn, "n_used": n_used}, attrs=attrs)


def single_value_region(attrs, nx: int) -> slice:
    """Columns averaged by ``single_value``.

    NIRCam FULL/GENERIC: the first 512-column output in detector coordinates (the
    last quarter of the columns for the detectors read out along -x); otherwise
    every column.
    """
    if str(attrs.get("INSTRUME", "")).upper() == "NIRCAM" and str(
        attrs.get("SUBARRAY", "FULL")
    ).upper() in ("FULL", "GENERIC"):
        if nx % 4:
            raise ValueError(f"single_value needs a width divisible by 4, not {nx}")
        q = nx // 4
        if str(attrs.get("DETECTOR", "")).upper() in NIRCAM_XFLIP:
            return slice(nx - q, nx)
        return slice(0, q)
    return slice(0, nx)


def _single_value(rn: xr.DataArray, attrs, sigma, maxiters) -> xr.DataArray:
    region = rn.isel(x=single_value_region(attrs, rn.sizes["x"])).data
    if not isinstance(region, da.Array):  # eager input, eager result
        value = global_clipped_stats(region, None, sigma=float(sigma), maxiters=int(maxiters))[0]
        return rn.copy(data=np.full(rn.shape, value, dtype=np.float32))
    flat = region.reshape(-1).rechunk(-1)
    stats = da.map_blocks(
        global_clipped_stats, flat, None, sigma=float(sigma), maxiters=int(maxiters),
        chunks=(2,), dtype=np.float64,
    )
    value = stats[0].astype(np.float32)
    data = da.broadcast_to(value, rn.shape, chunks=rn.data.chunks)
    return rn.copy(data=data)
