"""Jump detection (cosmic rays) on a lazy ramp Dataset."""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr

from daskref import dq
from daskref.algorithms._chunks import require_single_chunk
from daskref.algorithms.steps._common import STEP_KEYWORDS, mark_done
from daskref.algorithms.steps._reference import (
    reference_dataarray,
    split_reference,
    with_dq_arrays,
)
from daskref.kernels import jump as kernel

_DIMS = ("integration", "group", "y", "x")


def jump(
    ds: xr.Dataset,
    *,
    readnoise,
    gain,
    rejection_threshold: float = 4.0,
    three_group_rejection_threshold: float = 6.0,
    four_group_rejection_threshold: float = 5.0,
    flag_4_neighbors: bool = True,
    max_jump_to_flag_neighbors: float = 1000.0,
    min_jump_to_flag_neighbors: float = 10.0,
) -> xr.Dataset:
    """Flag cosmic-ray jumps in ``groupdq`` with the two-point difference method.

    Parameters
    ----------
    ds : xarray.Dataset
        Ramp Dataset: ``ramp`` (integration, group, y, x) in DN, ``groupdq`` uint8
        (same dims), ``pixeldq`` uint32 (y, x); attrs with ``NFRAMES`` (default 1).
        ``group`` must be a single chunk; ``y``/``x``/``integration`` may be split.
    readnoise : float, array_like or xarray.DataArray, (y, x), DN
        CDS read noise (READNOISE reference convention); a READNOISE Dataset with a
        ``readnoise`` (or single) variable is accepted. Full-frame references are cut
        to the data's subarray.
    gain : float, array_like or xarray.DataArray, (y, x), e-/DN
        Gain; pixels with a NaN or non-positive gain are not searched and get
        ``NO_GAIN_VALUE | DO_NOT_USE`` in ``pixeldq``.
    rejection_threshold : float
        Threshold (sigma) for ramps with at least 4 usable differences.
    three_group_rejection_threshold : float
        Threshold (sigma) when only 2 differences (3 groups) are usable.
    four_group_rejection_threshold : float
        Threshold (sigma) when only 3 differences (4 groups) are usable.
    flag_4_neighbors : bool
        Also flag the four side neighbours of jumps in the same group.
    max_jump_to_flag_neighbors, min_jump_to_flag_neighbors : float
        Only jumps with ``min < ratio < max`` (sigma) have their neighbours flagged.

    Returns
    -------
    xarray.Dataset
        A new lazy Dataset: ``groupdq`` with ``JUMP_DET`` added, ``pixeldq`` with the
        bad-gain flags, everything else unchanged; ``S_JUMP`` = ``COMPLETE`` (or
        ``SKIPPED`` when there are fewer than 3 groups, as the pipeline does).

    Notes
    -----
    See :mod:`daskref.kernels.jump` for the statistics. Detection is per pixel and
    runs blockwise; flagging neighbours runs with a one-pixel halo
    (``dask.array.map_overlap``), so the result does not depend on the chunking and
    equals the in-memory result.

    References
    ----------
    JWST pipeline documentation, ``jump`` step; stcal two-point difference algorithm.
    """
    ds = with_dq_arrays(ds)
    if ds.sizes["group"] < 3:
        out = ds.copy()
        out.attrs = dict(ds.attrs)
        out.attrs[STEP_KEYWORDS["jump"]] = "SKIPPED"
        return out
    require_single_chunk(ds["ramp"], ["group"])
    require_single_chunk(ds["groupdq"], ["group"], name="groupdq")

    readnoise, _ = split_reference(readnoise, ("readnoise", "data"))
    gain, _ = split_reference(gain, ("gain", "data"))
    rn = reference_dataarray(readnoise, ds, name="readnoise").astype(np.float32)
    gn = reference_dataarray(gain, ds, name="gain").astype(np.float32)

    ramp = ds["ramp"].transpose(*_DIMS)
    gdq = ds["groupdq"].transpose(*_DIMS)
    kwargs = dict(
        nframes=int(ds.attrs.get("NFRAMES", 1) or 1),
        rejection_threshold=float(rejection_threshold),
        three_group_rejection_threshold=float(three_group_rejection_threshold),
        four_group_rejection_threshold=float(four_group_rejection_threshold),
        flag_4_neighbors=bool(flag_4_neighbors),
        max_jump_to_flag_neighbors=float(max_jump_to_flag_neighbors),
        min_jump_to_flag_neighbors=float(min_jump_to_flag_neighbors),
    )
    packed = xr.apply_ufunc(
        kernel.detect_jumps_packed,
        ramp,
        gdq,
        rn,
        gn,
        kwargs=kwargs,
        dask="parallelized",
        output_dtypes=[np.uint16],
    ).transpose(*_DIMS)
    data = packed.data
    if isinstance(data, da.Array):
        new = da.map_overlap(
            kernel.unpack_and_flag_neighbors,
            data,
            depth={0: 0, 1: 0, 2: 1, 3: 1},
            boundary="none",
            dtype=dq.GROUP_DTYPE,
            meta=np.array((), dtype=dq.GROUP_DTYPE),
        )
    else:
        new = kernel.unpack_and_flag_neighbors(data)

    out = ds.copy()
    out["groupdq"] = gdq.copy(data=new).transpose(*ds["groupdq"].dims)
    good_gain = xr.apply_ufunc(kernel.valid_gain, gn, dask="parallelized", output_dtypes=[bool])
    flag = np.uint32(dq.NO_GAIN_VALUE | dq.DO_NOT_USE)
    out["pixeldq"] = ds["pixeldq"] | xr.where(good_gain, np.uint32(0), flag).astype(dq.PIXEL_DTYPE)
    out["pixeldq"].attrs = ds["pixeldq"].attrs
    return mark_done(out, "jump")
