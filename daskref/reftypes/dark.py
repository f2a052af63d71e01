"""DARK reference files (``DarkModel``; MIRI ``DarkMIRIModel``).

=================  ===========================  ========================================
extension          near-IR (``DarkModel``)      MIRI (``DarkMIRIModel``)
=================  ===========================  ========================================
SCI, ERR (DN)      (ngroups, y, x) float32      (nints, ngroups, y, x): the first
                                                integration, then the later ones
DQ                 (y, x) uint32                (nints, 1, y, x) uint32
AVDRKCUR (e-/s)    (y, x) float32, with a gain  the same
=================  ===========================  ========================================

Beside the reference file (not in it): ``<name>_contribution.fits``, the samples
behind each value (the jwst_reffiles contribution cube), and ``<name>_darkrate.fits``,
the fitted dark rate (DN/s).
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import xarray as xr

from .. import dq
from ..algorithms import dark as _dark
from ..io.crds import CrdsMeta
from ._base import check_computed, write_ancillary, write_product
from ._inputs import gain_map, prepared_stack, split_kwargs
from .registry import Param, RefType, register

REFTYPE = "DARK"
DESCRIPTION = "Dark signal per group from {n_inputs} darks (daskref)"
VARIABLES = ("sci", "err", "dq", "n_used", "dark_rate")
DQ_NAMES = ("GOOD", "DO_NOT_USE", "UNRELIABLE_DARK")
DARK_EXP_TYPES = {"NIRCAM": "NRC_DARK", "MIRI": "MIR_DARKIMG", "NIRISS": "NIS_DARK",
                  "NIRSPEC": "NRS_DARK", "FGS": "FGS_DARK"}


def build(inputs, *, steps: str | None = None, chunk_mb: float | None = None,
          spill_dir: str | os.PathLike | None = None, **kwargs) -> xr.Dataset:
    """Lazy DARK product from dark ramps.

    Parameters
    ----------
    inputs : sequence of path-like, or xarray.Dataset
        Dark exposures (``uncal`` or partly calibrated; the steps each still lacks
        run in the same graph), a stack from :func:`daskref.open_stack`, or a
        calibrated stack from :func:`daskref.prep.stack.prep_stack` (used as it is).
    steps : str, optional
        ``ssbsteps`` of the calibration. Default (jwst_reffiles' dark section):
        ``dq_init,saturation,superbias,refpix,linearity,jump``; MIRI
        ``dq_init,saturation,firstframe,lastframe,linearity,jump``; ``dq_init``
        only where a ``mask`` is given.
    chunk_mb, spill_dir
        Slab size of the whole stack (MB of input) and refpix spill directory.
    **kwargs
        References of the steps (``mask``, ``saturation``, ``superbias``,
        ``linearity``, ``readnoise``, ``gain``: files, numbers where allowed, or lazy
        products of the same run), step parameters of :func:`daskref.prep.prep`,
        and the DARK parameters (see :func:`daskref.algorithms.dark.dark`). The
        ``gain`` also gives the average dark current in e-/s.
    """
    refs, prep_params, params = split_kwargs(kwargs)
    params = DARK_TYPE.resolve(params)
    stack = prepared_stack(DARK_TYPE, inputs, steps=steps, refs=refs, prep_params=prep_params,
                           chunk_mb=chunk_mb, spill_dir=spill_dir)
    product = _dark.dark(stack, gain=gain_map(refs.get("gain"), stack), **params)
    product.attrs["reflabel"] = DARK_TYPE.reflabel
    return product


def write(ds: xr.Dataset, path, meta: CrdsMeta):
    """Write a computed DARK product, its contribution cube and its dark-rate image."""
    check_computed(ds, VARIABLES)
    miri = str(ds.attrs.get("INSTRUME", "")).upper() == "MIRI"
    sci = ds["sci"].values.astype(np.float32)
    err = ds["err"].values.astype(np.float32)
    dq_map = ds["dq"].values.astype(np.uint32)
    n_used = ds["n_used"].values
    if miri:
        datamodel = "DarkMIRIModel"
        dq_out = np.broadcast_to(dq_map, (sci.shape[0], 1) + dq_map.shape)
    else:
        datamodel = "DarkModel"
        sci, err, n_used, dq_out = sci[0], err[0], n_used[0], dq_map
    images = [("SCI", sci, "DN"), ("ERR", err, "DN"), ("DQ", dq_out, None)]
    attrs = ds.attrs
    extra = {
        "EXP_TYPE": str(attrs.get("EXP_TYPE") or DARK_EXP_TYPES.get(
            str(attrs.get("INSTRUME", "")).upper(), "NRC_DARK")),
        "NFRAMES": int(attrs.get("NFRAMES", 1)), "GROUPGAP": int(attrs.get("GROUPGAP", 0)),
        "NGROUPS": int(ds.sizes["group"]),
    }
    if "NOUTPUTS" in attrs:
        extra["NOUTPUTS"] = int(attrs["NOUTPUTS"])
    if "avdrkcur" in ds:
        images.append(("AVDRKCUR", ds["avdrkcur"].values.astype(np.float32), "electrons/s"))
        extra["AVDRKCUR"] = float(ds["avdrkcur_mean"].values)
    meta = replace(meta, readpatt=meta.readpatt or attrs.get("READPATT"))
    out = write_product(ds, path, meta, reftype=REFTYPE, datamodel=datamodel, function="dark",
                        template=DESCRIPTION, images=images, dq_def=dq.dq_def(DQ_NAMES),
                        extra=extra)
    write_ancillary(ds, path, "contribution", "DARK CONTRIBUTION", "dark",
                    [("N_USED", n_used, None)])
    write_ancillary(ds, path, "darkrate", "DARK RATE", "dark",
                    [("DARK_RATE", ds["dark_rate"].values.astype(np.float32), "DN/s")])
    return out


DARK_TYPE = register(RefType(
    reflabel="dark", reftype=REFTYPE, datamodel="DarkModel",
    summary="DARK reference file (dark signal per group) from darks",
    inputs="darks", imtypes="D+",
    ssbsteps="dq_init,saturation,superbias,refpix,linearity,jump",
    ssbsteps_miri="dq_init,saturation,firstframe,lastframe,linearity,jump",
    requires=("jump",), needs_group_time=True,
    algorithm=_dark.dark, build=build, write=write,
    params=[
        Param("stat_to_use", "statistic of each group over all integrations"),
        Param("sigma_clip_inputs", "sigma-clip the samples before the statistic"),
        Param("sigma_threshold", "clipping threshold, sigma"),
        Param("max_clipping_iters", "clipping passes"),
    ],
))
