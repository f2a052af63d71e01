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
    params = READNOISE_TYPE.resolve(params)
    stack = open_raw(inputs, chunk_mb)
    check_samples(stack, params)
    product = _rn.readnoise(stack, **params)
    product.attrs["reflabel"] = READNOISE_TYPE.reflabel
    return product


def check_samples(stack, params) -> None:
    """Refuse inputs that give a pixel fewer than 2 group differences (from the shape).

    With one difference (or none) the standard deviation is undefined and the
    READNOISE would be NaN everywhere; ``ramp`` needs 2 in every file.

    Raises
    ------
    daskref.io.fits.InputError
        Naming the (first) file that is too short and what would fix it.
    """
    from ..io.fits import InputError

    if not isinstance(stack, xr.Dataset) or "group" not in stack.sizes:
        return
    defaults = READNOISE_TYPE.defaults()
    opt = {k: params.get(k, defaults[k]) for k in ("method", "group_diff_type",
                                                  "drop_first_groups", "drop_last_groups")}
    files = list(stack.attrs.get("inputs") or [None])
    ngroups = stack.sizes["group"]
    try:
        g0, g1 = _rn.group_range(stack.attrs, ngroups, opt["drop_first_groups"],
                                 opt["drop_last_groups"])
    except ValueError as exc:
        raise InputError(files[0], f"{exc}: give longer ramps or drop fewer groups "
                         "(drop_first_groups, drop_last_groups)") from None
    kept = g1 - g0
    per_int = kept // 2 if opt["group_diff_type"] == "independent" else kept - 1
    if opt["method"] == "ramp" and "file" in stack.coords:
        names, counts = np.unique(stack["file"].values, return_counts=True)
        worst = int(np.argmin(counts))
        n, where = int(counts[worst]) * per_int, str(names[worst])
        where = next((f for f in files if str(f).endswith(where)), where)
        scope = "in this file (method ramp works per file)"
    else:
        n, where, scope = stack.sizes["integration"] * per_int, files[0], "in all"
    if n < 2:
        raise InputError(where, f"gives {n} {opt['group_diff_type']} group difference"
                         f"{'' if n == 1 else 's'} per pixel {scope} ({kept} groups used "
                         f"per integration); a READNOISE needs at least 2: give more "
                         "integrations or files, or --group-diff-type consecutive")


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
