"""SATURATION reference files (``SaturationModel``: SCI, DQ, DQ_DEF).

Beside the reference file: ``<name>_saturation_diagnostics.fits`` (the median
plateau, the half range of the plateaus and the number of integrations that
saturated, per pixel).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .. import dq
from ..algorithms import saturation as _sat
from ..io.crds import CrdsMeta
from ..io.fits import InputError
from ._base import check_computed, open_raw, parameter_keywords, write_ancillary, write_product
from .registry import Param, RefType, register

REFTYPE = "SATURATION"
DATAMODEL = "SaturationModel"
DESCRIPTION = "Saturation from {n_inputs} ramps (daskref)"
VARIABLES = ("saturation", "dq", "level", "spread", "n_saturated")
DQ_NAMES = ("GOOD", "NO_SAT_CHECK")
#: Header keywords of the parameters.
KEYWORDS = {"margin": "SATMARGN", "plateau_sigma": "SATPLSIG",
            "min_plateau_groups": "SATPLMIN", "min_rise": "SATMINRS",
            "fill_value": "SATFILL"}


def check_ramps(stack: xr.Dataset) -> None:
    """Refuse inputs the plateau search cannot use, naming the first file.

    Raises
    ------
    InputError
        Fewer than 3 groups.
    """
    if stack.sizes["group"] < 3:
        first = (stack.attrs.get("inputs") or [None])[0]
        raise InputError(first, f"has {stack.sizes['group']} groups; the saturation search "
                         "needs at least 3 (a rise and a plateau of 2)")


def build(inputs, *, chunk_mb: float | None = None, **params) -> xr.Dataset:
    """Lazy SATURATION product from raw ramps driven into saturation.

    Parameters
    ----------
    inputs : sequence of path-like, or xarray.Dataset
        Raw (``uncal``) ramps of one detector, subarray, readout pattern and group
        count, at one or several fluxes (a stack from :func:`daskref.open_stack`
        too).
    chunk_mb : float, optional
        Slab size of the whole stack, MB.
    **params
        Those of :func:`daskref.algorithms.saturation.saturation`.
    """
    stack = open_raw(inputs, chunk_mb)
    if isinstance(stack, xr.Dataset):
        check_ramps(stack)
    product = _sat.saturation(stack, **SATURATION_TYPE.resolve(params))
    product.attrs["reflabel"] = SATURATION_TYPE.reflabel
    return product


def write(ds: xr.Dataset, path, meta: CrdsMeta):
    """Write a computed SATURATION product and its diagnostics.

    Raises
    ------
    InputError
        No pixel saturated in any input (nothing is written).
    """
    check_computed(ds, VARIABLES)
    n_sat = ds["n_saturated"].values
    if not np.any(n_sat > 0):
        inputs = ds.attrs.get("inputs") or []
        raise InputError(None, f"no ramp of the {len(inputs) or 'given'} inputs saturates "
                         "(no plateau in any pixel): give ramps driven into saturation")
    params = ds.attrs.get("parameters", {})
    extra = parameter_keywords(params, KEYWORDS)
    extra["NSATFND"] = (int(np.sum(n_sat > 0)), "pixels with a saturation plateau")
    images = [("SCI", ds["saturation"].values.astype(np.float32), "DN"),
              ("DQ", ds["dq"].values.astype(np.uint32), None)]
    out = write_product(ds, path, meta, reftype=REFTYPE, datamodel=DATAMODEL,
                        function="saturation", template=DESCRIPTION, images=images,
                        dq_def=dq.dq_def(DQ_NAMES), use_readpatt=False, extra=extra)
    write_ancillary(ds, path, "saturation_diagnostics", "SATURATION DIAGNOSTICS",
                    "saturation",
                    [("LEVEL", ds["level"].values.astype(np.float32), "DN"),
                     ("SPREAD", ds["spread"].values.astype(np.float32), "DN"),
                     ("N_SATURATED", n_sat.astype(np.int16), None)])
    return out


SATURATION_TYPE = register(RefType(
    reflabel="saturation", reftype=REFTYPE, datamodel=DATAMODEL,
    summary="SATURATION reference file from ramps driven into saturation",
    inputs="flats", imtypes="F+", ssbsteps=None,
    algorithm=_sat.saturation, build=build, write=write,
    params=[
        Param("margin", "threshold this fraction below the plateau"),
        Param("plateau_sigma", "plateau tolerance, sigma of a difference of two reads"),
        Param("min_plateau_groups", "fewest groups of a plateau"),
        Param("min_rise", "DN a plateau lies above the first group at least"),
        Param("fill_value", "threshold (DN) of the NO_SAT_CHECK pixels"),
    ],
))
