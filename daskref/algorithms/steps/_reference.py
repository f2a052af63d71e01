"""Bring reference data to the science data's frame: subarray cut-outs, dims, chunks.

Reference files (SUPERBIAS, SATURATION, LINEARITY, DARK, MASK, GAIN, READNOISE) are
usually full frame, while a science exposure may be a subarray window into the full
frame, described by the 1-based ``SUBSTRT1`` (x) / ``SUBSTRT2`` (y) origin and the
``SUBSIZE1`` x ``SUBSIZE2`` size in its header attributes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import dask.array as da
import numpy as np
import xarray as xr

from daskref import dq
from daskref.geometry import full_frame_shape

#: Names under which a reference product stores its DQ array.
DQ_NAMES = ("dq", "DQ", "mask", "pixeldq")


def _origin(attrs: Mapping) -> tuple[int, int] | None:
    """0-based ``(y0, x0)`` full-frame origin from ``SUBSTRT2``/``SUBSTRT1``, or None."""
    if "SUBSTRT1" not in attrs or "SUBSTRT2" not in attrs:
        return None
    return int(attrs["SUBSTRT2"]) - 1, int(attrs["SUBSTRT1"]) - 1


def reference_window(ref_shape: tuple[int, ...], ref_attrs: Mapping,
                     ds: xr.Dataset | xr.DataArray | Mapping) -> tuple[int, int]:
    """0-based ``(y0, x0)`` of the science window inside a reference array.

    Parameters
    ----------
    ref_shape : tuple of int
        Shape of the reference, (..., y, x).
    ref_attrs : mapping
        The reference's header attributes (``SUBSTRT1``/``SUBSTRT2`` when it is a
        subarray itself).
    ds : xarray.Dataset or DataArray
        Science data with ``y``/``x`` dims and ``SUBSTRT1``/``SUBSTRT2`` attributes.

    Returns
    -------
    (int, int)
        ``(0, 0)`` when the reference already has the science shape.

    Raises
    ------
    ValueError
        When the science window cannot be located inside the reference (no
        subarray keywords, reference neither full frame nor a subarray with known
        origin, or the window falls outside it). The message names both shapes.
    """
    attrs = ds.attrs
    shape = (int(ds.sizes["y"]), int(ds.sizes["x"]))
    ref_shape = tuple(int(n) for n in ref_shape)
    if len(ref_shape) < 2:
        raise ValueError(f"reference must have at least 2 dims (..., y, x); got shape {ref_shape}")
    if ref_shape[-2:] == shape:
        return 0, 0
    sci_origin = _origin(attrs)
    if sci_origin is None:
        raise ValueError(
            f"reference shape {ref_shape} does not match the science data (y, x) = {shape}, "
            "and the data have no SUBSTRT1/SUBSTRT2 attributes to locate the subarray"
        )
    ref_origin = _origin(ref_attrs or {})
    if ref_origin is None:
        full = full_frame_shape(attrs)
        if ref_shape[-2:] != full:
            raise ValueError(
                f"reference shape {ref_shape} matches neither the science data (y, x) = {shape} "
                f"nor the full frame {full} of {attrs.get('INSTRUME', 'this detector')}; "
                "give a matching reference or one with SUBSTRT1/SUBSTRT2 attributes"
            )
        ref_origin = (0, 0)
    y0 = sci_origin[0] - ref_origin[0]
    x0 = sci_origin[1] - ref_origin[1]
    if y0 < 0 or x0 < 0 or y0 + shape[0] > ref_shape[-2] or x0 + shape[1] > ref_shape[-1]:
        raise ValueError(
            f"science window (y, x) = {shape} at full-frame origin {sci_origin} (0-based) lies "
            f"outside the reference of shape {ref_shape} at origin {ref_origin}"
        )
    return y0, x0


def aligned_rows(ref_shape: tuple[int, ...], ref_attrs: Mapping,
                 ds: xr.Dataset) -> tuple[int, ...] | None:
    """Row slabs for reading a reference so its slabs line up with the ramp's.

    Reading a reference in the science ramp's own row slabs (shifted by the subarray
    origin) gives every ramp slab its own small reference reads: no task then
    depends on a large reference slab shared by many ramp slabs, so the scheduler
    can finish one slab at a time and memory stays bounded by the chunk size.

    Parameters
    ----------
    ref_shape, ref_attrs
        As for :func:`reference_window`.
    ds : xarray.Dataset
        The ramp Dataset (``ramp`` dask-backed, dims (integration, group, y, x)).

    Returns
    -------
    tuple of int or None
        Row-chunk sizes summing to the reference's ``y`` size; None when the ramp is
        not a dask array.
    """
    ramp = ds["ramp"].data
    if not isinstance(ramp, da.Array):
        return None
    y0, _ = reference_window(ref_shape, ref_attrs, ds)
    after = int(ref_shape[-2]) - y0 - int(ds.sizes["y"])
    rows = (y0,) + tuple(int(c) for c in ramp.chunks[-2]) + (after,)
    return tuple(r for r in rows if r > 0)


def match_reference(ref, ds: xr.Dataset | xr.DataArray | Mapping):
    """Cut the window of a reference array that matches the science data.

    Parameters
    ----------
    ref : numpy.ndarray, dask.array.Array or xarray.DataArray, dims (..., y, x)
        Reference data, either already the size of the science data, full frame,
        or a larger subarray whose origin is given by its own ``SUBSTRT1``/``SUBSTRT2``
        attributes (DataArray only).
    ds : xarray.Dataset or DataArray
        Science data with ``y``/``x`` dims and header attributes ``SUBSTRT1``,
        ``SUBSTRT2`` (1-based origin of the data in the full frame).

    Returns
    -------
    Same type as ``ref``, dims (..., y, x)
        ``ref`` itself when its last two axes already have the science shape,
        otherwise the window ``ref[..., y0:y0 + ny, x0:x0 + nx]``.

    Raises
    ------
    ValueError
        See :func:`reference_window`.
    """
    shape = (int(ds.sizes["y"]), int(ds.sizes["x"]))
    ref_shape = tuple(int(n) for n in np.shape(ref))
    y0, x0 = reference_window(ref_shape, getattr(ref, "attrs", {}) or {}, ds)
    if ref_shape[-2:] == shape:
        return ref
    return ref[..., y0 : y0 + shape[0], x0 : x0 + shape[1]]


def split_reference(ref, value_names: Iterable[str]):
    """Separate a reference product into its value array and its DQ array.

    Parameters
    ----------
    ref : xarray.Dataset, xarray.DataArray, numpy or dask array, or scalar
        A Dataset is searched for the first of ``value_names`` (else its only
        non-DQ data variable) and for a DQ variable (``dq``, ``mask``, ...).
    value_names : iterable of str
        Conventional names of the value variable, e.g. ``("superbias", "data")``.

    Returns
    -------
    value, dq_or_none
        The value array (unchanged when ``ref`` is not a Dataset) and the DQ array
        or None.
    """
    if not isinstance(ref, xr.Dataset):
        return ref, None
    dq_arr = next((ref[n] for n in DQ_NAMES if n in ref.data_vars), None)
    names = list(value_names)
    value = next((ref[n] for n in names if n in ref.data_vars), None)
    if value is None:
        others = [n for n in ref.data_vars if n not in DQ_NAMES and not str(n).endswith("err")]
        if len(others) != 1:
            raise ValueError(
                f"cannot tell the reference values apart in a Dataset with variables "
                f"{list(ref.data_vars)}; name them one of {names}"
            )
        value = ref[others[0]]
    value = value.copy()
    value.attrs = {**ref.attrs, **value.attrs}
    return value, dq_arr


def reference_dataarray(
    ref, ds: xr.Dataset, dims: tuple[str, ...] = ("y", "x"), name: str = "reference"
) -> xr.DataArray:
    """Wrap a reference as a DataArray aligned with the science data.

    The science window is cut out (:func:`match_reference`), the array gets
    ``dims`` (the last two are ``y``, ``x``), the science ``y``/``x`` coordinates
    replace its own (so arithmetic never aligns away pixels), and it is chunked
    like the science ramp along ``y``/``x`` when the ramp is dask-backed.

    Parameters
    ----------
    ref : scalar, numpy.ndarray, dask.array.Array or xarray.DataArray
        Reference values, dims ``dims`` (a scalar is broadcast to (y, x)).
    ds : xarray.Dataset
        The ramp Dataset (``ramp`` with dims (integration, group, y, x)).
    dims : tuple of str
        Dimension names to give the reference; must end with ``("y", "x")``.
    name : str
        Used in error messages.

    Returns
    -------
    xarray.DataArray, dims ``dims``
    """
    if np.ndim(ref) == 0:
        ref = np.full((ds.sizes["y"], ds.sizes["x"]), ref)
        dims = ("y", "x")
    if np.ndim(ref) != len(dims):
        raise ValueError(f"{name} must have dims {dims}; got an array of shape {np.shape(ref)}")
    ref = match_reference(ref, ds)
    if isinstance(ref, xr.DataArray):
        ref = ref.rename(dict(zip(ref.dims, dims, strict=True))) if ref.dims != dims else ref
        ref = ref.drop_vars([c for c in ref.coords if set(ref[c].dims) & {"y", "x"}])
    else:
        ref = xr.DataArray(ref, dims=dims)
    ref = ref.assign_coords({c: ds.coords[c] for c in ("y", "x") if c in ds.coords})
    ramp = ds["ramp"].data
    if isinstance(ramp, da.Array):
        ychunks, xchunks = ramp.chunks[-2], ramp.chunks[-1]
        chunks = {d: -1 for d in dims[:-2]} | {"y": ychunks, "x": xchunks}
        ref = ref.chunk(chunks)
    return ref


def with_dq_arrays(ds: xr.Dataset) -> xr.Dataset:
    """Return ``ds`` with ``groupdq`` (uint8) and ``pixeldq`` (uint32), zeros when absent.

    Parameters
    ----------
    ds : xarray.Dataset
        Ramp Dataset with ``ramp`` dims (integration, group, y, x).

    Returns
    -------
    xarray.Dataset
        A shallow copy; existing DQ arrays are kept (cast to the JWST dtypes).
    """
    out = ds.copy()
    ramp = ds["ramp"]
    if "groupdq" not in ds:
        out["groupdq"] = xr.zeros_like(ramp, dtype=dq.GROUP_DTYPE)
    elif ds["groupdq"].dtype != dq.GROUP_DTYPE:
        out["groupdq"] = ds["groupdq"].astype(dq.GROUP_DTYPE)
    if "pixeldq" not in ds:
        out["pixeldq"] = xr.zeros_like(
            ramp.isel(integration=0, group=0, drop=True), dtype=dq.PIXEL_DTYPE
        )
    elif ds["pixeldq"].dtype != dq.PIXEL_DTYPE:
        out["pixeldq"] = ds["pixeldq"].astype(dq.PIXEL_DTYPE)
    return out
