"""READNOISE reference files (``ReadnoiseModel``: SCI, CDS noise in DN)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..algorithms import readnoise as _rn
from ..io.crds import CrdsMeta
from ._base import check_computed, open_raw, write_product
from .registry import Param, RefType, register

REFTYPE = "READNOISE"
DATAMODEL = "ReadnoiseModel"
DESCRIPTION = "CDS read noise from {n_inputs} darks (daskref)"
VARIABLES = ("readnoise",)


def write(ds: xr.Dataset, path, meta: CrdsMeta):
    """Write a computed :func:`daskref.algorithms.readnoise.readnoise` product."""
    check_computed(ds, VARIABLES)
    images = [("SCI", ds["readnoise"].values.astype(np.float32), "DN")]
    return write_product(ds, path, meta, reftype=REFTYPE, datamodel=DATAMODEL,
                         function="readnoise", template=DESCRIPTION, images=images)


def build(inputs, *, chunk_mb: float | None = None, **params) -> xr.Dataset:
    """Lazy READNOISE product from dark ramps (paths or an opened stack).

    Parameters are those of :func:`daskref.algorithms.readnoise.readnoise`;
    ``chunk_mb`` sets the slab size when ``inputs`` are paths.
    """
    product = _rn.readnoise(open_raw(inputs, chunk_mb), **READNOISE_TYPE.resolve(params))
    product.attrs["reflabel"] = READNOISE_TYPE.reflabel
    return product


READNOISE_TYPE = register(RefType(
    reflabel="readnoise", reftype=REFTYPE, datamodel=DATAMODEL,
    summary="READNOISE reference file (CDS noise) from darks",
    inputs="darks", imtypes="D+", ssbsteps=None,
    algorithm=_rn.readnoise, build=build, write=write,
    params=[
        Param("method", "stack: clipped std of all differences; ramp: per file, then "
              "clipped mean"),
        Param("group_diff_type", "differences of disjoint group pairs, or of every "
              "consecutive pair"),
        Param("clipping_sigma", "sigma-clipping threshold"),
        Param("max_clipping_iters", "sigma-clipping passes"),
        Param("single_value", "replace the map by one value"),
        Param("drop_first_groups", "groups left out at the start of each integration "
              "(MIRI default 5)"),
        Param("drop_last_groups", "groups left out at the end of each integration "
              "(MIRI default 1)"),
        Param("bias_correction", "divide the clipped std by its expected value for normal "
              "noise (--no-bias-correction keeps jwst_reffiles' low bias)"),
    ],
))
