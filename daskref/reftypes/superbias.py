"""SUPERBIAS reference files (``SuperBiasModel``: SCI, ERR, DQ, DQ_DEF)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from .. import dq
from ..algorithms import superbias as _sb
from ..io.crds import CrdsMeta
from ._base import ancillary_path, check_computed, open_raw, write_ancillary, write_product
from .registry import Param, RefType, register

REFTYPE = "SUPERBIAS"
DATAMODEL = "SuperBiasModel"
DESCRIPTION = "Superbias from {n_inputs} darks (daskref)"
VARIABLES = ("superbias", "err", "dq")
DQ_NAMES = ("GOOD", "DO_NOT_USE", "UNRELIABLE_BIAS")


def filled_path(path) -> Path:
    """Where the filled superbias goes: ``<name>_filled.fits`` beside ``path``."""
    return ancillary_path(path, "filled")


def write(ds: xr.Dataset, path, meta: CrdsMeta):
    """Write a computed :func:`daskref.algorithms.superbias.superbias` product.

    With ``superbias_filled`` in the product, also writes the filled superbias as a
    plain image to :func:`filled_path` (an ancillary file, not a reference file).
    """
    check_computed(ds, VARIABLES)
    images = [
        ("SCI", ds["superbias"].values.astype(np.float32), "DN"),
        ("ERR", ds["err"].values.astype(np.float32), "DN"),
        ("DQ", ds["dq"].values.astype(np.uint32), None),
    ]
    out = write_product(ds, path, meta, reftype=REFTYPE, datamodel=DATAMODEL,
                        function="superbias", template=DESCRIPTION, images=images,
                        dq_def=dq.dq_def(DQ_NAMES))
    if "superbias_filled" in ds:
        write_ancillary(ds, path, "filled", "FILLED SUPERBIAS", "superbias",
                        [("FILLED", ds["superbias_filled"].values.astype(np.float32), "DN")])
    return out


def build(inputs, *, chunk_mb: float | None = None, **params) -> xr.Dataset:
    """Lazy SUPERBIAS product from dark ramps (paths or an opened stack).

    Parameters are those of :func:`daskref.algorithms.superbias.superbias`.
    """
    params = SUPERBIAS_TYPE.resolve(params)
    stack = open_raw(inputs, chunk_mb)
    n = stack.sizes.get("integration", 2)
    if n < 2:
        from ..io.fits import InputError

        files = list(stack.attrs.get("inputs") or [None])
        # one sample per pixel: no scatter, so no ERR and no UNRELIABLE_BIAS threshold
        raise InputError(files[0], f"has {n} integration in all; a SUPERBIAS needs at "
                         "least 2 (its ERR and UNRELIABLE_BIAS flags come from their "
                         "scatter): give more darks or integrations")
    product = _sb.superbias(stack, **params)
    product.attrs["reflabel"] = SUPERBIAS_TYPE.reflabel
    return product


SUPERBIAS_TYPE = register(RefType(
    reflabel="superbias", reftype=REFTYPE, datamodel=DATAMODEL,
    summary="SUPERBIAS reference file from darks",
    inputs="darks", imtypes="D+", ssbsteps=None,
    algorithm=_sb.superbias, build=build, write=write,
    params=[
        Param("clipping_sigma", "sigma-clipping threshold"),
        Param("max_clipping_iters", "sigma-clipping passes"),
        Param("bad_clipping_sigma", "clipping of the error map when finding unreliable "
              "pixels"),
        Param("bad_max_clipping_iters", "passes of that clipping"),
        Param("bad_sigma_threshold", "UNRELIABLE_BIAS where error > mean + this * std of "
              "the error map"),
        Param("save_filled", "also write <output>_filled.fits"),
        Param("box_width", "median box of the filled superbias"),
        Param("bias_correction", "make the clipped std unbiased for normal noise"),
    ],
))
