"""The simple stage-1 steps on lazy ramp Datasets.

The steps are dq_init, saturation, superbias, linearity and dark_current.

Every step takes a ramp Dataset (``ramp`` float32 or raw integer (integration, group,
y, x) in DN, ``groupdq`` uint8 same dims, ``pixeldq`` uint32 (y, x), header keywords
in ``attrs``), returns a new lazy Dataset (the input is never modified, nothing is
computed) and sets the step's ``S_*`` status keyword. Reference data are numpy or
dask arrays or DataArrays with dims (y, x) (LINEARITY: (coeff, y, x); DARK:
(group, y, x) or (integration, group, y, x)), or reference Datasets holding the values
plus an optional ``dq`` variable; full-frame references are cut to the science
subarray (:func:`~daskref.algorithms.steps._reference.match_reference`).
"""

from __future__ import annotations

from functools import partial

import dask.array as da
import numpy as np
import xarray as xr

from daskref import dq
from daskref.algorithms.steps._common import mark_done
from daskref.algorithms.steps._reference import (
    reference_dataarray,
    split_reference,
    with_dq_arrays,
)
from daskref.kernels import simple as kernel

_DIMS = ("integration", "group", "y", "x")


def _flag(cond: xr.DataArray, value: int, dtype) -> xr.DataArray:
    """``value`` where ``cond`` else 0, in ``dtype`` (lazy)."""
    return xr.where(cond, dtype(value), dtype(0)).astype(dtype)


def _or_pixeldq(ds: xr.Dataset, *flags: xr.DataArray | None) -> xr.DataArray:
    """``ds.pixeldq`` ORed with every non-None flag map (y, x)."""
    out = ds["pixeldq"]
    for f in flags:
        if f is not None:
            out = out | f.astype(dq.PIXEL_DTYPE)
    out = out.astype(dq.PIXEL_DTYPE).transpose(*ds["pixeldq"].dims)
    out.attrs = ds["pixeldq"].attrs
    return out


def _ref_dq(ref_dq, ds: xr.Dataset) -> xr.DataArray | None:
    if ref_dq is None:
        return None
    return reference_dataarray(ref_dq, ds, name="reference dq").astype(dq.PIXEL_DTYPE)


def _float_ramp(ds: xr.Dataset) -> xr.DataArray:
    ramp = ds["ramp"]
    return ramp if ramp.dtype == np.float32 else ramp.astype(np.float32)


def _new_ramp(ds: xr.Dataset, values: xr.DataArray) -> xr.DataArray:
    values = values.transpose(*ds["ramp"].dims)
    values.attrs = ds["ramp"].attrs
    return values


def dq_init(ds: xr.Dataset, *, mask) -> xr.Dataset:
    """Initialise the data quality from a MASK reference.

    Parameters
    ----------
    ds : xarray.Dataset
        Ramp Dataset; ``groupdq``/``pixeldq`` are created (zeros) when absent.
    mask : array_like, xarray.DataArray or xarray.Dataset, (y, x), uint32
        The MASK reference DQ (a Dataset's ``dq`` variable is used).

    Returns
    -------
    xarray.Dataset
        ``pixeldq |= mask``, and ``groupdq |= mask & DO_NOT_USE`` in every group and
        integration (so no ramp is fit to a bad pixel); ``S_DQINIT`` = ``COMPLETE``.
    """
    if isinstance(mask, xr.Dataset):
        mask, mask_dq = split_reference(mask, ("dq", "mask"))
        mask = mask_dq if mask_dq is not None else mask
    ds = with_dq_arrays(ds)
    m = reference_dataarray(mask, ds, name="mask").astype(dq.PIXEL_DTYPE)
    out = ds.copy()
    out["pixeldq"] = _or_pixeldq(ds, m)
    dnu = (m & dq.DO_NOT_USE).astype(dq.GROUP_DTYPE)
    gdq = (ds["groupdq"] | dnu).astype(dq.GROUP_DTYPE).transpose(*ds["groupdq"].dims)
    gdq.attrs = ds["groupdq"].attrs
    out["groupdq"] = gdq
    return mark_done(out, "dq_init")


def saturation(
    ds: xr.Dataset,
    *,
    saturation=None,
    threshold: float | None = None,
    ad_floor: float | None = 0.0,
    n_pix_grow_sat: int = 0,
) -> xr.Dataset:
    """Flag saturated groups.

    Parameters
    ----------
    ds : xarray.Dataset
        Ramp Dataset (raw or float DN). ``group`` should be one chunk.
    saturation : array_like, xarray.DataArray or xarray.Dataset, (y, x), DN, optional
        Per-pixel SATURATION reference; a Dataset may carry a ``dq`` variable, which
        is ORed into ``pixeldq``.
    threshold : float, DN, optional
        A single saturation level for every pixel, instead of ``saturation``.
    ad_floor : float or None, DN
        Samples at or below this level get ``AD_FLOOR | DO_NOT_USE`` in that group
        (the pipeline's A/D floor check at 0 DN); None turns the check off.
    n_pix_grow_sat : int
        Also flag the pixels within this many pixels (a ``2n+1`` box) of a saturated
        one, in the same groups (charge migration). The pipeline's default is 1;
        daskref's is 0 (per-pixel flagging only).

    Returns
    -------
    xarray.Dataset
        ``groupdq`` with ``SATURATED`` on the first group with ``ramp >= level`` and
        every later group of that integration. Pixels whose level is NaN or that
        carry ``NO_SAT_CHECK`` (in the reference DQ or ``pixeldq``) are never
        flagged and get ``NO_SAT_CHECK`` in ``pixeldq``. ``S_SATURA`` = ``COMPLETE``.
    """
    if (saturation is None) == (threshold is None):
        raise ValueError("give exactly one of `saturation` (a reference map) or `threshold`")
    ds = with_dq_arrays(ds)
    level = saturation if saturation is not None else float(threshold)
    level, sat_dq = split_reference(level, ("saturation", "data"))
    thr = reference_dataarray(level, ds, name="saturation").astype(np.float64)
    ref_dq = _ref_dq(sat_dq, ds)
    no_check = thr.isnull() | ((ds["pixeldq"] & dq.NO_SAT_CHECK) != 0)
    if ref_dq is not None:
        no_check = no_check | ((ref_dq & dq.NO_SAT_CHECK) != 0)
    thr = thr.where(~no_check, np.inf)

    ramp = ds["ramp"].transpose(*_DIMS)
    flags = xr.apply_ufunc(
        kernel.saturation_groupdq,
        ramp,
        thr,
        kwargs={"ad_floor": ad_floor},
        dask="parallelized",
        output_dtypes=[dq.GROUP_DTYPE],
    ).transpose(*_DIMS)
    if n_pix_grow_sat > 0:
        n = int(n_pix_grow_sat)
        sat = (flags & dq.SATURATED) != 0
        data = sat.data
        if isinstance(data, da.Array):
            grown = da.map_overlap(
                partial(kernel.grow_box, n=n),
                data,
                depth={0: 0, 1: 0, 2: n, 3: n},
                boundary="none",
                dtype=bool,
                meta=np.array((), dtype=bool),
            )
        else:
            grown = kernel.grow_box(data, n)
        grown = sat.copy(data=grown) & ~no_check
        flags = flags | _flag(grown, dq.SATURATED, dq.GROUP_DTYPE)

    out = ds.copy()
    gdq = (ds["groupdq"] | flags).astype(dq.GROUP_DTYPE).transpose(*ds["groupdq"].dims)
    gdq.attrs = ds["groupdq"].attrs
    out["groupdq"] = gdq
    out["pixeldq"] = _or_pixeldq(ds, ref_dq, _flag(no_check, dq.NO_SAT_CHECK, dq.PIXEL_DTYPE))
    return mark_done(out, "saturation")


def superbias(ds: xr.Dataset, *, superbias) -> xr.Dataset:
    """Subtract the superbias from every group.

    Parameters
    ----------
    ds : xarray.Dataset
        Ramp Dataset (DN).
    superbias : array_like, xarray.DataArray or xarray.Dataset, (y, x), DN
        SUPERBIAS reference; NaN values subtract nothing. A Dataset's ``dq``
        variable is ORed into ``pixeldq``.

    Returns
    -------
    xarray.Dataset
        ``ramp`` (float32) = ramp - superbias; ``S_SUPERB`` = ``COMPLETE``.
    """
    ds = with_dq_arrays(ds)
    bias, bias_dq = split_reference(superbias, ("superbias", "data"))
    sb = reference_dataarray(bias, ds, name="superbias").astype(np.float32).fillna(0.0)
    out = ds.copy()
    out["ramp"] = _new_ramp(ds, _float_ramp(ds) - sb)
    out["pixeldq"] = _or_pixeldq(ds, _ref_dq(bias_dq, ds))
    return mark_done(out, "superbias")


def linearity(ds: xr.Dataset, *, coeffs) -> xr.Dataset:
    """Apply the classic polynomial linearity correction.

    Parameters
    ----------
    ds : xarray.Dataset
        Ramp Dataset (DN), after saturation flagging and superbias subtraction.
    coeffs : array_like, xarray.DataArray or xarray.Dataset, (coeff, y, x)
        LINEARITY coefficients ``c_k`` (``c_k`` in DN^(1-k)); a Dataset holds them as
        ``coeffs`` and may carry a ``dq`` variable, ORed into ``pixeldq``.

    Returns
    -------
    xarray.Dataset
        ``ramp`` (float32) = ``sum_k c_k ramp**k`` except on ``SATURATED`` groups and
        on pixels with any NaN coefficient, a zero linear term ``c_1`` or a
        ``NO_LIN_CORR`` flag (reference DQ or ``pixeldq``), which are left unchanged;
        the NaN/zero-term pixels get ``NO_LIN_CORR`` in ``pixeldq``.
        ``S_LINEAR`` = ``COMPLETE``.
    """
    ds = with_dq_arrays(ds)
    c, lin_dq = split_reference(coeffs, ("coeffs", "data"))
    c = reference_dataarray(c, ds, dims=("coeff", "y", "x"), name="coeffs").astype(np.float64)
    if c.sizes["coeff"] < 2:
        raise ValueError(f"linearity needs at least 2 coefficients; got {c.sizes['coeff']}")
    ref_dq = _ref_dq(lin_dq, ds)
    bad_coeffs = c.isnull().any("coeff") | (c.isel(coeff=1) == 0)
    skip = bad_coeffs | ((ds["pixeldq"] & dq.NO_LIN_CORR) != 0)
    if ref_dq is not None:
        skip = skip | ((ref_dq & dq.NO_LIN_CORR) != 0)

    corrected = xr.apply_ufunc(
        kernel.linearity_correct,
        ds["ramp"].transpose(*_DIMS),
        ds["groupdq"].transpose(*_DIMS),
        c,
        skip,
        input_core_dims=[[], [], ["coeff"], []],
        dask="parallelized",
        output_dtypes=[np.float32],
    )
    out = ds.copy()
    out["ramp"] = _new_ramp(ds, corrected)
    out["pixeldq"] = _or_pixeldq(ds, ref_dq, _flag(bad_coeffs, dq.NO_LIN_CORR, dq.PIXEL_DTYPE))
    return mark_done(out, "linearity")


def dark_current(
    ds: xr.Dataset,
    *,
    dark,
    dark_nframes: int | None = None,
    dark_groupgap: int | None = None,
) -> xr.Dataset:
    """Subtract a DARK reference group by group.

    Parameters
    ----------
    ds : xarray.Dataset
        Ramp Dataset (DN) with attrs ``NFRAMES`` and ``GROUPGAP`` (defaults 1 and 0).
    dark : array_like, xarray.DataArray or xarray.Dataset, DN
        DARK reference, dims (group, y, x), or (integration, group, y, x) for a
        MIRI-style integration-dependent dark (its last integration serves every
        later science integration). NaN values subtract nothing. A Dataset's ``dq``
        (y, x) is ORed into ``pixeldq``.
    dark_nframes, dark_groupgap : int, optional
        Readout of the dark; default to its ``NFRAMES``/``GROUPGAP`` attributes, else
        1 and 0 (frame-resolved, the usual DARK reference).

    Returns
    -------
    xarray.Dataset
        ``ramp`` (float32) minus the dark averaged to the science readout;
        ``S_DARK`` = ``COMPLETE``.

    Raises
    ------
    ValueError
        When the dark has too few groups (frames) for the science exposure, or its
        readout cannot be averaged to the science readout. (The pipeline instead
        skips the step with a warning.)

    Notes
    -----
    Science group ``g`` averages frames ``g (NFRAMES + GROUPGAP)`` ...
    ``g (NFRAMES + GROUPGAP) + NFRAMES - 1``; from a frame-resolved dark the same
    frames are averaged (mean in float64). When the dark has the science readout
    it is subtracted directly.
    """
    ds = with_dq_arrays(ds)
    value, dark_dq = split_reference(dark, ("dark", "data"))
    attrs = getattr(value, "attrs", {}) or {}
    d_nframes = int(dark_nframes if dark_nframes is not None else attrs.get("NFRAMES", 1) or 1)
    d_groupgap = int(dark_groupgap if dark_groupgap is not None else attrs.get("GROUPGAP", 0) or 0)
    nframes = int(ds.attrs.get("NFRAMES", 1) or 1)
    groupgap = int(ds.attrs.get("GROUPGAP", 0) or 0)

    dims = ("integration", "group", "y", "x") if np.ndim(value) == 4 else ("group", "y", "x")
    drk = reference_dataarray(value, ds, dims=dims, name="dark")
    drk = drk.drop_vars([c for c in drk.coords if c in ("group", "integration")])
    idx = kernel.dark_frame_indices(
        ds.sizes["group"], nframes, groupgap, drk.sizes["group"], d_nframes, d_groupgap
    )
    drk = drk.astype(np.float64).fillna(0.0)
    total = None
    for j in range(idx.shape[1]):
        part = drk.isel(group=idx[:, j])
        total = part if total is None else total + part
    averaged = (total / idx.shape[1]).astype(np.float32)
    if "integration" in averaged.dims:
        nd = averaged.sizes["integration"]
        which = np.minimum(np.arange(ds.sizes["integration"]), nd - 1)
        averaged = averaged.isel(integration=which)
    # only the dims the dark has: a 3-D (group, y, x) dark broadcasts over integrations
    averaged = averaged.assign_coords(
        {c: ds.coords[c] for c in ("group", "integration")
         if c in ds.coords and c in averaged.dims}
    )

    out = ds.copy()
    out["ramp"] = _new_ramp(ds, _float_ramp(ds) - averaged)
    out["pixeldq"] = _or_pixeldq(ds, _ref_dq(dark_dq, ds))
    return mark_done(out, "dark_current")
