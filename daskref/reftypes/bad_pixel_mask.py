"""The combined bad-pixel MASK (``MaskModel``): darks' classes OR flats' classes.

``daskref mask --darks D... --flats F... -o mask.fits`` (either half alone works too).
Both halves are read, calibrated and reduced in one final collection step. Beside the
reference file go each half's diagnostics: ``<name>_diagnostics.fits`` (darks) and
``<name>_flat_diagnostics.fits`` / ``.png`` (flats).
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import xarray as xr

from .. import dq
from ..algorithms.bad_pixel_mask import combine_masks, geometry_mismatch
from ..io.crds import CrdsMeta
from ..io.fits import InputError
from ._base import check_computed, parameter_keywords, write_product
from ._inputs import split_kwargs
from .mask import (
    DARK_KEYWORDS,
    MASK_FROM_DARKS,
    used_flags,
    write_dark_diagnostics,
)
from .mask_flats import FLAT_KEYWORDS, MASK_FROM_FLATS, write_flat_diagnostics
from .registry import Param, RefType, register

REFTYPE = "MASK"
DATAMODEL = "MaskModel"
DESCRIPTION = "Bad pixels from {n_inputs} darks and flats (daskref)"


def _paths(value):
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return [value]
    return value


def build(inputs=None, *, darks=None, flats=None, dark_steps: str | None = None,
          flat_steps: str | None = None, steps: str | None = None,
          chunk_mb: float | None = None, spill_dir: str | os.PathLike | None = None,
          **kwargs) -> xr.Dataset:
    """Lazy combined MASK from darks and/or flats.

    Parameters
    ----------
    inputs : mapping, optional
        ``{"darks": [...], "flats": [...]}`` (the CLI's and mkrefs' form); or give
        ``darks``/``flats`` directly.
    darks, flats : sequence of path-like, or xarray.Dataset, optional
        As for :func:`daskref.mask_from_darks` and :func:`daskref.mask_from_flats`.
    dark_steps, flat_steps : str, optional
        Calibration of each half (default each half's own: darks through ramp
        fitting without dark_current, flats ``rate-``); ``steps`` sets both.
    chunk_mb, spill_dir
        As for the halves.
    **kwargs
        References and step parameters (shared), and the parameters of both searches.

    Raises
    ------
    InputError
        No inputs, or darks and flats of different detectors or windows (before any
        data is read).
    """
    if isinstance(inputs, dict):
        darks = inputs.get("darks", darks)
        flats = inputs.get("flats", flats)
    darks, flats = _paths(darks) or None, _paths(flats) or None
    if darks is None and flats is None:
        raise InputError(None, "give darks, flats or both")
    refs, prep_params, params = split_kwargs(kwargs)
    params = BAD_PIXEL_MASK.resolve(params)
    dark_params = {k: v for k, v in params.items() if k in MASK_FROM_DARKS.parameters}
    flat_params = {k: v for k, v in params.items() if k in MASK_FROM_FLATS.parameters}
    common = dict(chunk_mb=chunk_mb, spill_dir=spill_dir, **refs, **prep_params)
    dark_ds = flat_ds = None
    if darks is not None:
        dark_ds = MASK_FROM_DARKS.build(darks, steps=dark_steps or steps, **common,
                                        **dark_params)
    if flats is not None:
        flat_ds = MASK_FROM_FLATS.build(flats, steps=flat_steps or steps, **common,
                                        **flat_params)
    if dark_ds is not None and flat_ds is not None:
        problem = geometry_mismatch(dark_ds, flat_ds)
        if problem:
            first_dark = os.path.basename(str(dark_ds.attrs["inputs"][0]))
            raise InputError(flat_ds.attrs["inputs"][0],
                             f"does not match the darks ({first_dark}): {problem}")
    product = combine_masks(dark_ds, flat_ds)
    product.attrs["reflabel"] = BAD_PIXEL_MASK.reflabel
    return product


def _half(ds: xr.Dataset, label: str) -> xr.Dataset:
    """One half's Dataset back from the combined product."""
    prefix = f"{label}_"
    names = {n: n[len(prefix):] for n in ds.data_vars if n.startswith(prefix)}
    return xr.Dataset({new: ds[old] for old, new in names.items()},
                      attrs=ds.attrs[f"{label}_attrs"])


def _calibration_history(ds: xr.Dataset) -> list[str]:
    lines = []
    for label in ds.attrs.get("halves", []):
        attrs = ds.attrs[f"{label}_attrs"]
        steps = ",".join(attrs.get("prep_steps") or []) or "none"
        refs = attrs.get("prep_references") or {}
        used = ", ".join(f"{k}={v}" for k, v in sorted(refs.items())) or "none"
        lines.append(f"Calibration of the {label}: steps run {steps}; references {used}.")
        dnu = attrs.get("parameters", {}).get(
            "dark_do_not_use" if label == "darks" else "flat_do_not_use", [])
        lines.append(f"Bad pixel types from the {label} that also get DO_NOT_USE: "
                     f"{', '.join(dnu) or 'none'}.")
    return lines


def write(ds: xr.Dataset, path, meta: CrdsMeta):
    """Write a computed combined MASK and each half's diagnostics."""
    check_computed(ds, ("dq",))
    mask = ds["dq"].values.astype(np.uint32)
    params = ds.attrs.get("parameters", {})
    halves = ds.attrs.get("halves", [])
    extra = {}
    if "darks" in halves:
        extra.update(parameter_keywords(params, DARK_KEYWORDS))
    if "flats" in halves:
        extra.update(parameter_keywords(params, FLAT_KEYWORDS))
    # the calibration of each half is told apart (not the flats' alone)
    plain = ds.copy()
    plain.attrs = {k: v for k, v in ds.attrs.items()
                   if k not in ("prep_steps", "prep_references")}
    meta = replace(meta, history=_calibration_history(ds) + list(meta.history))
    out = write_product(plain, path, meta, reftype=REFTYPE, datamodel=DATAMODEL,
                        function="bad_pixel_mask", template=DESCRIPTION,
                        images=[("DQ", mask, None)], dq_def=dq.dq_def(used_flags(mask)),
                        use_readpatt=True, extra=extra)
    if "darks" in halves:
        write_dark_diagnostics(_half(ds, "darks"), path)
    if "flats" in halves:
        write_flat_diagnostics(_half(ds, "flats"), path)
    return out


BAD_PIXEL_MASK = register(RefType(
    reflabel="bad_pixel_mask", reftype=REFTYPE, datamodel=DATAMODEL,
    summary="the complete bad-pixel MASK: classes from darks OR from flats (HOT wins "
            "over DEAD)",
    inputs="darks+flats", imtypes="D+F+", ssbsteps=MASK_FROM_DARKS.ssbsteps,
    ssbsteps_miri=MASK_FROM_DARKS.ssbsteps_miri,
    algorithm=combine_masks, build=build, write=write, command="mask",
    input_flag=("darks", "flats"), includes=(MASK_FROM_DARKS, MASK_FROM_FLATS),
    params=[
        Param("dark_steps", "calibration of the darks (default: "
              f"{MASK_FROM_DARKS.ssbsteps}; MIRI {MASK_FROM_DARKS.ssbsteps_miri})"),
        Param("flat_steps", f"calibration of the flats (default {MASK_FROM_FLATS.ssbsteps})"),
    ],
))
