"""DARK: the dark signal of every group and pixel from a stack of calibrated dark ramps."""

from __future__ import annotations

from typing import Literal

import dask.array as da
import numpy as np
import xarray as xr

from .. import dq
from ..geometry import is_miri, reference_pixel_mask
from ..kernels.dark import count_dtype, dark_kernel
from ..kernels.ramp_fit import group_times
from ..kernels.readnoise import global_clipped_stats
from ._chunks import apply_stack, require_single_chunk
from .readnoise import as_ramp_dataset

#: DQ of a pixel whose dark had to be filled from its fitted rate in some groups.
FILLED = dq.UNRELIABLE_DARK
#: DQ of a pixel with no usable sample at all (its dark is 0).
UNMEASURED = dq.UNRELIABLE_DARK | dq.DO_NOT_USE


def dark_planes(ds: xr.Dataset) -> tuple[np.ndarray, int]:
    """Output plane of each integration and the number of planes.

    Near-IR darks have one plane. MIRI darks have the first integration of every
    exposure apart from the later ones (the reset anomaly differs), so two planes
    when the inputs have 2 or more integrations, one otherwise.
    """
    nint = ds.sizes["integration"]
    if not is_miri(ds.attrs):
        return np.zeros(nint, dtype=np.intp), 1
    if "int_in_file" in ds.coords:
        first = np.asarray(ds["int_in_file"].values) == 0
    else:
        first = np.arange(nint) == 0
    if first.all():
        return np.zeros(nint, dtype=np.intp), 1
    return np.where(first, 0, 1).astype(np.intp), 2


def dark(
    data: xr.Dataset | xr.DataArray,
    *,
    stat_to_use: Literal["mean", "median"] = "mean",
    sigma_clip_inputs: bool = True,
    sigma_threshold: float = 3.0,
    max_clipping_iters: int = 5,
    gain=None,
) -> xr.Dataset:
    """The DARK reference data of a stack of calibrated dark ramps, as a lazy Dataset.

    Parameters
    ----------
    data : Dataset or DataArray
        ``ramp`` (integration, group, y, x), DN, after superbias subtraction (and
        refpix, linearity, jump: see :func:`daskref.dark`), optionally ``groupdq``;
        ``integration`` and ``group`` single chunks, ``y``/``x`` chunked freely.
        Attributes: ``TGROUP``/``TFRAME``, ``NFRAMES``, ``GROUPGAP`` (group times).
    stat_to_use : {'mean', 'median'}
        Statistic of each (group, pixel) over every integration of every input.
    sigma_clip_inputs : bool
        Sigma-clip the samples before taking the statistic.
    sigma_threshold, max_clipping_iters : float, int
        The clipping (about the median, astropy semantics).
    gain : float or DataArray (y, x), e-/DN, optional
        For the average dark current in e-/s (``avdrkcur``); without it, that
        variable is left out.

    Returns
    -------
    xarray.Dataset
        ``sci`` and ``err`` (plane, group, y, x) float32, DN: the dark signal and
        its 1-sigma uncertainty (the standard error of the statistic, unbiased for
        normal noise; not the sample scatter); ``dq`` (y, x) uint32; ``n_used``
        (plane, group, y, x) int16 (int32 beyond 32767 integrations), the samples
        behind each value; ``dark_rate``
        (y, x) float32, DN/s; ``avdrkcur`` (y, x) float32, e-/s, and its science-
        pixel clipped mean ``avdrkcur_mean`` (0-d), when a gain is given.
        ``plane`` has length 1 (near-IR, or MIRI with one integration per input)
        or 2 (MIRI: first integrations, later integrations).

    Notes
    -----
    Excluded samples: the group of an integration's first JUMP_DET and all later
    groups, and SATURATED groups (:func:`daskref.kernels.dark.usable_samples`).
    Where no sample of a group survives, the group is filled from the pixel's dark
    rate fitted to its measured groups and the pixel gets ``UNRELIABLE_DARK``; with
    no measured group at all, the dark is 0 and ``UNRELIABLE_DARK | DO_NOT_USE``.
    """
    ds = as_ramp_dataset(data)
    require_single_chunk(ds.ramp, ("integration", "group"), "ramp")
    if stat_to_use not in ("mean", "median"):
        raise ValueError(f"stat_to_use must be 'mean' or 'median', not {stat_to_use!r}")
    attrs = ds.attrs
    if "TGROUP" not in attrs and "TFRAME" not in attrs:
        raise ValueError("the dark needs group times: attrs TGROUP or TFRAME (s) missing")
    ngroups = ds.sizes["group"]
    nframes, groupgap = int(attrs.get("NFRAMES", 1)), int(attrs.get("GROUPGAP", 0))
    tgroup = float(attrs.get("TGROUP") or float(attrs["TFRAME"]) * (nframes + groupgap))
    times = group_times(ngroups, tgroup, nframes, groupgap)
    fit_groups = np.ones(ngroups, bool)
    if is_miri(attrs) and ngroups > 3:  # firstframe/lastframe groups stay out of the rate
        fit_groups[[0, -1]] = False
    plane_index, nplanes = dark_planes(ds)
    kwargs = dict(nplanes=nplanes, stat=stat_to_use, clip=bool(sigma_clip_inputs),
                  sigma=float(sigma_threshold), maxiters=int(max_clipping_iters))
    core = ["integration", "group"]
    args = [ds.ramp] + ([ds.groupdq] if "groupdq" in ds else [])

    def func(ramp, groupdq=None):
        return dark_kernel(ramp, groupdq, plane_index, times, fit_groups, **kwargs)

    sci, err, n_used, rate, filled = apply_stack(
        func, *args,
        input_core_dims=[core] * len(args),
        output_core_dims=[["plane", "group"]] * 3 + [[], []],
        output_dtypes=[np.float32, np.float32, count_dtype(ds.sizes["integration"]),
                       np.float32, np.uint8],
        output_sizes={"plane": nplanes},
    )
    dims4 = ("plane", "group", "y", "x")
    sci = sci.transpose(*dims4).assign_attrs(units="DN", long_name="dark signal")
    err = err.transpose(*dims4).assign_attrs(units="DN", long_name="uncertainty of the dark")
    n_used = n_used.transpose(*dims4).assign_attrs(long_name="samples used")
    dq_map = xr.where(filled == 2, np.uint32(UNMEASURED),
                      xr.where(filled == 1, np.uint32(FILLED), np.uint32(0))).astype(np.uint32)
    out = {"sci": sci, "err": err, "dq": dq_map, "n_used": n_used,
           "dark_rate": rate.assign_attrs(units="DN/s", long_name="fitted dark rate")}
    params = {"stat_to_use": stat_to_use, "sigma_clip_inputs": bool(sigma_clip_inputs),
              "sigma_threshold": float(sigma_threshold),
              "max_clipping_iters": int(max_clipping_iters)}
    new_attrs = {k: v for k, v in attrs.items() if k != "parameters"}
    if gain is not None:
        gain_map = gain if isinstance(gain, xr.DataArray) else xr.DataArray(float(gain))
        avdrk = (rate * gain_map).astype(np.float32).assign_attrs(
            units="electrons/s", long_name="average dark current")
        out["avdrkcur"] = avdrk
        science = ~reference_pixel_mask(attrs, (ds.sizes["y"], ds.sizes["x"]))
        out["avdrkcur_mean"] = xr.DataArray(_clipped_mean(avdrk.data, science)).assign_attrs(
            units="electrons/s", long_name="clipped mean dark current of the science pixels")
        params["gain"] = float(gain) if not isinstance(gain, xr.DataArray) else "map"
    new_attrs.update(reftype="DARK", parameters=params)
    return xr.Dataset(out, attrs=new_attrs)


def _clipped_mean(values, mask: np.ndarray):
    """3-sigma clipped mean of the finite values under ``mask`` (0-d; lazy for dask)."""
    if not isinstance(values, da.Array):
        return np.float64(global_clipped_stats(values, mask, sigma=3.0, maxiters=5)[0])
    flat = values.reshape(-1).rechunk(-1)
    stats = da.map_blocks(global_clipped_stats, flat, mask.reshape(-1), sigma=3.0, maxiters=5,
                          chunks=(2,), dtype=np.float64)
    return stats[0]
