"""LINEARITY reference files (``LinearityModel``: COEFFS, DQ, DQ_DEF).

Beside the reference file: ``<name>_linearity_diagnostics.fits`` (the onset, the
number of groups fitted and the RMS fractional residual of every pixel).
"""

from __future__ import annotations

import os

import numpy as np
import xarray as xr

from .. import dq
from ..algorithms import linearity as _lin
from ..algorithms.steps._reference import reference_dataarray
from ..io.crds import CrdsMeta
from ..io.fits import InputError
from ..io.products import open_reference
from ._base import check_computed, open_raw, parameter_keywords, write_ancillary, write_product
from .registry import Param, RefType, register

REFTYPE = "LINEARITY"
DATAMODEL = "LinearityModel"
DESCRIPTION = "Linearity from {n_inputs} ramps (daskref)"
VARIABLES = ("coeffs", "dq", "onset", "n_points", "rms")
DQ_NAMES = ("GOOD", "NONLINEAR", "NO_LIN_CORR")
#: Header keywords of the parameters.
KEYWORDS = {"degree": "LINDEGRE", "early_fraction": "LINEARLY", "early_degree": "LINEDEG",
            "nonlinear_sigma": "LINNLSIG", "plateau_sigma": "LINPLSIG",
            "min_plateau_groups": "LINPLMIN", "min_rise": "LINMINRS",
            "iterations": "LINITER"}


def build(inputs, *, chunk_mb: float | None = None, superbias: str | None = None,
          **params) -> xr.Dataset:
    """Lazy LINEARITY product from raw ramps at several fluxes, into saturation.

    Parameters
    ----------
    inputs : sequence of path-like, or xarray.Dataset
        Raw (``uncal``) ramps of one detector, subarray, readout pattern and group
        count (a stack from :func:`daskref.open_stack` too).
    chunk_mb : float, optional
        Slab size of the whole stack, MB.
    superbias : str, path-like or DataArray, optional
        A SUPERBIAS reference file (or its (y, x) image) for the zero level; default
        each integration's own, from its early groups.
    **params
        Those of :func:`daskref.algorithms.linearity.linearity`.
    """
    params = LINEARITY_TYPE.resolve(params)
    stack = open_raw(inputs, chunk_mb, LINEARITY_TYPE)
    if isinstance(stack, xr.Dataset):
        need = int(params.get("early_degree", 3)) + 3
        if stack.sizes["group"] < need:
            first = (stack.attrs.get("inputs") or [None])[0]
            raise InputError(first, f"has {stack.sizes['group']} groups; the linearity fit "
                             f"needs at least {need}")
    zero, name = None, ""
    if superbias is not None:
        if isinstance(superbias, (str, os.PathLike)):
            name = os.path.basename(os.fspath(superbias))
            image = open_reference(superbias, "superbias")["superbias"]
        else:
            name, image = "an array", superbias
        zero = reference_dataarray(image, stack, name="superbias")
    product = _lin.linearity(stack, superbias=zero, **params)
    if name:
        product.attrs["parameters"]["superbias"] = name
    product.attrs["reflabel"] = LINEARITY_TYPE.reflabel
    return product


def write(ds: xr.Dataset, path, meta: CrdsMeta):
    """Write a computed LINEARITY product and its diagnostics.

    Raises
    ------
    InputError
        No pixel could be fitted (nothing is written).
    """
    check_computed(ds, VARIABLES)
    flags = ds["dq"].values.astype(np.uint32)
    if np.all(flags & dq.NO_LIN_CORR):
        inputs = ds.attrs.get("inputs") or []
        raise InputError(None, f"no pixel of the {len(inputs) or 'given'} inputs could be "
                         "fitted: give ramps that rise well above the zero level, with "
                         "enough early groups")
    params = ds.attrs.get("parameters", {})
    extra = parameter_keywords(params, KEYWORDS)
    coeffs = np.ascontiguousarray(ds["coeffs"].transpose("coeff", "y", "x").values,
                                  np.float32)
    images = [("COEFFS", coeffs, None), ("DQ", flags, None)]
    out = write_product(ds, path, meta, reftype=REFTYPE, datamodel=DATAMODEL,
                        function="linearity", template=DESCRIPTION, images=images,
                        dq_def=dq.dq_def(DQ_NAMES), use_readpatt=False, extra=extra)
    write_ancillary(ds, path, "linearity_diagnostics", "LINEARITY DIAGNOSTICS", "linearity",
                    [("ONSET", ds["onset"].values.astype(np.float32), "DN"),
                     ("N_POINTS", ds["n_points"].values.astype(np.int32), None),
                     ("RMS", ds["rms"].values.astype(np.float32), None)])
    return out


LINEARITY_TYPE = register(RefType(
    reflabel="linearity", reftype=REFTYPE, datamodel=DATAMODEL,
    summary="LINEARITY reference file from ramps at several fluxes, into saturation",
    inputs="flats", imtypes="F+", ssbsteps=None, needs_group_time=True,
    algorithm=_lin.linearity, build=build, write=write,
    params=[
        Param("superbias", "SUPERBIAS file for the zero level (default: from the ramps)"),
        Param("degree", "degree of the correction polynomial"),
        Param("early_fraction", "groups below this fraction of the onset give the rate"),
        Param("early_degree", "degree in time of the early-group fit"),
        Param("nonlinear_sigma", "NONLINEAR beyond this many sigma of the residual RMS"),
        Param("plateau_sigma", "plateau tolerance, sigma of a difference of two reads"),
        Param("min_plateau_groups", "fewest groups of a plateau"),
        Param("min_rise", "DN a ramp rises at least to be fitted"),
        Param("iterations", "refinements of the rates through the polynomial"),
    ],
))
