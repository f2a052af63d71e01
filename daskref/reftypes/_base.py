"""What every reference type shares: provenance HISTORY and the write step."""

from __future__ import annotations

import os
from collections.abc import Mapping

import astropy
import dask
import numpy as np
import xarray as xr

from .. import __version__
from ..io.crds import CrdsMeta, crds_header, validate_description, write_reference


def provenance(ds: xr.Dataset, function: str) -> list[str]:
    """HISTORY entries: software and versions, the call with its parameters, the inputs."""
    params = ds.attrs.get("parameters", {})
    call = ", ".join(f"{k}={v!r}" for k, v in params.items())
    inputs = list(ds.attrs.get("inputs", []))
    lines = [
        f"Created by daskref {__version__}: {function}({call}).",
        f"Software: daskref {__version__}, numpy {np.__version__}, dask {dask.__version__}, "
        f"xarray {xr.__version__}, astropy {astropy.__version__}.",
    ]
    if ds.attrs.get("prep_steps") is not None or ds.attrs.get("prep_references"):
        refs = ds.attrs.get("prep_references") or {}
        steps = ",".join(ds.attrs.get("prep_steps") or []) or "none"
        used = ", ".join(f"{k}={v}" for k, v in sorted(refs.items())) or "none"
        lines.append(f"Calibration of the inputs: steps run {steps}; references {used}.")
    lines.append(f"DATA USED ({len(inputs)} files):")
    lines += [os.path.basename(str(p)) for p in inputs]
    return lines


def description(ds: xr.Dataset, template: str, meta: CrdsMeta) -> str:
    """DESCRIP: the user's, or the type's template filled from the dataset."""
    text = meta.description or template.format(n_inputs=len(ds.attrs.get("inputs", [])) or 1)
    return validate_description(text)


def write_product(
    ds: xr.Dataset,
    path,
    meta: CrdsMeta,
    *,
    reftype: str,
    datamodel: str,
    function: str,
    template: str,
    images,
    dq_def=None,
    use_readpatt: bool = True,
    extra: Mapping | None = None,
):
    """Write a computed product as a CRDS reference file (``extra``: more keywords)."""
    shape = images[0][1].shape[-2:]
    header = crds_header(
        ds.attrs, reftype=reftype, datamodel=datamodel, meta=meta,
        description=description(ds, template, meta), shape=shape,
        use_readpatt=use_readpatt, filename=os.path.basename(str(path)),
    )
    header.update(extra or {})
    history = provenance(ds, function) + list(meta.history)
    return write_reference(path, header, history, images, dq_def)


def parameter_keywords(params: Mapping, names: Mapping) -> dict:
    """Header keywords ``{KEY: (value, parameter name)}`` of the parameters present."""
    return {key: (params[name], name) for name, key in names.items()
            if params.get(name) is not None}


def check_computed(ds: xr.Dataset, names: Mapping | list) -> None:
    """Refuse to write a product whose variables are still lazy."""
    lazy = [n for n in names if ds[n].chunks is not None]
    if lazy:
        raise ValueError(f"compute the product before writing it (lazy: {lazy})")


def ancillary_path(path, suffix: str):
    """Where a file beside a reference file goes: ``<name>_<suffix>.fits``."""
    from pathlib import Path

    path = Path(path)
    return path.with_name(path.name.removesuffix(".fits") + f"_{suffix}.fits")


def write_ancillary(ds: xr.Dataset, path, suffix: str, filetype: str, function: str,
                    images) -> os.PathLike:
    """Write a plain FITS file beside a reference file (not a reference file itself).

    Parameters
    ----------
    ds : xarray.Dataset
        The computed product (for the provenance HISTORY).
    path : path-like
        The reference file's path; the ancillary file is :func:`ancillary_path`.
    suffix, filetype : str
        Name suffix and FILETYPE keyword.
    function : str
        The algorithm's name, for the HISTORY.
    images : sequence of (extname, array, bunit)
        The first becomes the primary HDU, the others image extensions.

    Returns
    -------
    pathlib.Path
    """
    from astropy.io import fits

    from ..io.exposure_writer import atomic_path

    out = ancillary_path(path, suffix)
    hdus = []
    for k, (name, array, bunit) in enumerate(images):
        hdu = (fits.PrimaryHDU if k == 0 else fits.ImageHDU)(np.ascontiguousarray(array))
        hdu.header["EXTNAME"] = name
        if bunit:
            hdu.header["BUNIT"] = bunit
        hdus.append(hdu)
    primary = hdus[0].header
    primary["FILETYPE"] = filetype
    for key in ("INSTRUME", "DETECTOR", "SUBARRAY", "SUBSTRT1", "SUBSTRT2"):
        if key in ds.attrs:
            primary[key] = ds.attrs[key]
    for line in provenance(ds, function):
        primary.add_history(line[:70])
    with atomic_path(out) as tmp:
        fits.HDUList(hdus).writeto(tmp)
    return out


def open_raw(inputs, chunk_mb: float | None = None, rt=None):
    """The raw stack of a type that uses ramps as they are.

    Paths are opened lazily (:func:`daskref.io.open_stack`; with the type ``rt``
    that needs the group time, every input must have a positive TGROUP); an opened
    stack or a DataArray is passed through.
    """
    from ..io.fits import open_stack
    from ._inputs import group_time_for

    if isinstance(inputs, (xr.Dataset, xr.DataArray)):
        return inputs
    why = group_time_for(rt) if rt is not None else None
    return open_stack(inputs, chunk_mb=chunk_mb, group_time=why)
