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
        f"DATA USED ({len(inputs)} files):",
    ]
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
):
    """Write a computed product as a CRDS reference file."""
    shape = images[0][1].shape[-2:]
    header = crds_header(
        ds.attrs, reftype=reftype, datamodel=datamodel, meta=meta,
        description=description(ds, template, meta), shape=shape,
        use_readpatt=use_readpatt, filename=os.path.basename(str(path)),
    )
    history = provenance(ds, function) + list(meta.history)
    return write_reference(path, header, history, images, dq_def)


def check_computed(ds: xr.Dataset, names: Mapping | list) -> None:
    """Refuse to write a product whose variables are still lazy."""
    lazy = [n for n in names if ds[n].chunks is not None]
    if lazy:
        raise ValueError(f"compute the product before writing it (lazy: {lazy})")
