"""The Python API: build lazy products from files or arrays, compute and write them once.

Examples
--------
>>> import daskref
>>> rn = daskref.readnoise(["dark1_uncal.fits", "dark2_uncal.fits"], clipping_sigma=3.0)
>>> sb = daskref.superbias(["dark1_uncal.fits", "dark2_uncal.fits"])
>>> daskref.write([rn, sb], ["readnoise.fits", "superbias.fits"], author="me")

Opening the same files for several products gives the same dask keys, so writing
them together reads every input byte once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import xarray as xr

from ._compute import compute
from .io.crds import CrdsMeta
from .io.exposure_writer import check_writable
from .io.fits import open_stack
from .qa import qa  # noqa: F401  (the API: daskref.qa)
from .reftypes import REGISTRY
from .reftypes import bad_pixel_mask as _bpm_type
from .reftypes import dark as _dark_type
from .reftypes import gain as _gain_type
from .reftypes import linearity as _lin_type
from .reftypes import mask as _mask_type
from .reftypes import mask_flats as _mask_flats_type
from .reftypes import readnoise as _rn_type
from .reftypes import saturation as _sat_type
from .reftypes import superbias as _sb_type
from .reftypes._base import description as _description

Inputs = str | os.PathLike | Sequence[str | os.PathLike] | xr.Dataset | xr.DataArray


def open_inputs(inputs: Inputs, *, chunk_mb: float | None = None) -> xr.Dataset | xr.DataArray:
    """Open paths as a lazy stack (:func:`daskref.io.open_stack`); pass arrays through."""
    if isinstance(inputs, (xr.Dataset, xr.DataArray)):
        return inputs
    return open_stack(inputs, chunk_mb=chunk_mb)


readnoise = _rn_type.build
superbias = _sb_type.build
dark = _dark_type.build
mask_from_darks = _mask_type.build_from_darks
mask_from_flats = _mask_flats_type.build_from_flats
bad_pixel_mask = _bpm_type.build
saturation = _sat_type.build
linearity = _lin_type.build
gain = _gain_type.build


def write(
    products: xr.Dataset | Sequence[xr.Dataset],
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    author: str = "daskref",
    description: str | None = None,
    pedigree: str = "GROUND",
    useafter: str = "2000-01-01T00:00:00",
    history: str | Sequence[str] | None = None,
    readpatt: str | None = None,
    subarray: str | None = None,
    progress: bool = False,
) -> list[Path]:
    """Compute products together and write each as a CRDS reference file.

    Parameters
    ----------
    products : Dataset or sequence of Dataset
        Lazy (or computed) products of :func:`readnoise`, :func:`superbias`, ...
    paths : path-like or sequence of path-like
        One output file per product.
    author, description, pedigree, useafter, history, readpatt, subarray
        CRDS metadata (see :class:`daskref.io.crds.CrdsMeta`); checked before any
        computation starts.
    progress : bool
        Show a progress bar.

    Returns
    -------
    list of pathlib.Path
        The files written. Each is written to a temporary name and renamed, so an
        interrupted run leaves no partial file.

    Raises
    ------
    daskref.io.exposure_writer.OutputError
        Before computing, when an output directory cannot be written; after, when
        a file cannot be (the disk full): nothing of that file is left.
    """
    if isinstance(products, xr.Dataset):
        products = [products]
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    products, paths = list(products), [Path(p) for p in paths]
    if len(products) != len(paths):
        raise ValueError(f"{len(products)} products but {len(paths)} output paths")
    history = [history] if isinstance(history, str) else list(history or [])
    meta = CrdsMeta(author=author, description=description, pedigree=pedigree,
                    useafter=useafter, history=history, readpatt=readpatt, subarray=subarray)
    types = []
    for ds in products:
        rt = product_type(ds)
        _description(ds, "{n_inputs}", meta)  # fail before computing
        types.append(rt)
    for directory in dict.fromkeys(p.parent for p in paths):
        check_writable(directory)
    computed = compute(products, progress=progress)
    return [rt.write(ds, p, meta) for rt, ds, p in zip(types, computed, paths, strict=True)]


def product_type(ds: xr.Dataset):
    """The registered reference type of a product (from its ``reflabel``/``reftype``)."""
    label = ds.attrs.get("reflabel")
    if label in REGISTRY:
        return REGISTRY[label]
    for rt in REGISTRY.values():
        if rt.reftype == ds.attrs.get("reftype"):
            return rt
    raise ValueError(f"cannot write a product of reftype {ds.attrs.get('reftype')!r}")
