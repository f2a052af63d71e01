"""The bad-pixel MASK from darks (``MaskModel``: DQ (y, x) uint32 and DQ_DEF).

Beside the reference file: ``<name>_diagnostics.fits``, one image per class (1 where
the pixel has that class) and the statistic behind each (see
:mod:`daskref.algorithms.badpix_dark`).
"""

from __future__ import annotations

import os

import numpy as np
import xarray as xr

from .. import dq
from ..algorithms import badpix_dark as _bpd
from ..io.crds import CrdsMeta
from ..kernels.badpix_dark import STATISTICS
from ._base import check_computed, parameter_keywords, write_ancillary, write_product
from ._inputs import gain_map, prepared_stack, split_kwargs
from .registry import Param, RefType, register

REFTYPE = "MASK"
DATAMODEL = "MaskModel"
DESCRIPTION = "Bad pixels from {n_inputs} darks (daskref)"
_UNITS = {"clean_rate": "DN/s", "clean_rate_err": "DN/s", "noise": "DN", "pedestal_low": "DN",
          "pedestal_high": "DN", "pedestal_median": "DN", "pedestal_scatter": "DN"}


def build_from_darks(inputs, *, steps: str | None = None, chunk_mb: float | None = None,
                     spill_dir: str | os.PathLike | None = None, **kwargs) -> xr.Dataset:
    """Lazy MASK product from dark ramps.

    Parameters
    ----------
    inputs : sequence of path-like, or xarray.Dataset
        Dark exposures (``uncal``, partly calibrated, or ``_jump`` files; the steps
        each still lacks run in the same graph; ``_rateints``/``_rate`` files stand
        for their ``_jump`` siblings, :func:`ramp_siblings`), a stack from
        :func:`daskref.open_stack`, or a calibrated stack through ramp fitting from
        :func:`daskref.prep.stack.prep_stack`.
    steps : str, optional
        Default ``dq_init,saturation,superbias,refpix,linearity,jump,rate``; MIRI
        ``dq_init,saturation,firstframe,lastframe,linearity,jump,rate``: through
        ramp fitting but without ``dark_current``, which would subtract the signal
        hot pixels are found by; ``dq_init`` only where a ``mask`` is given.
    chunk_mb, spill_dir
        As for :func:`daskref.dark`.
    **kwargs
        References (``readnoise`` and ``gain`` are needed by jump and ramp
        fitting; the ``gain`` also makes the thresholds e-/s), step parameters of
        :func:`daskref.prep.prep` and the parameters of
        :func:`daskref.algorithms.badpix_dark.mask_from_darks`.
    """
    refs, prep_params, params = split_kwargs(kwargs)
    params = MASK_FROM_DARKS.resolve(params)
    if not isinstance(inputs, xr.Dataset):
        inputs = ramp_siblings([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)
    stack = prepared_stack(MASK_FROM_DARKS, inputs, steps=steps, refs=refs,
                           prep_params=prep_params, chunk_mb=chunk_mb, spill_dir=spill_dir)
    product = _bpd.mask_from_darks(stack, gain=gain_map(refs.get("gain"), stack), **params)
    product.attrs["reflabel"] = MASK_FROM_DARKS.reflabel
    return product


#: Slope-file suffixes and the jump ramp jwst_reffiles derives from them.
SLOPE_SUFFIXES = ("_rateints", "_rate", "_0_ramp_fit", "_1_ramp_fit", "_ramp_fit_0",
                  "_ramp_fit_1")


def ramp_siblings(paths) -> list[str]:
    """Slope files (``_rateints``, ``_rate``, ``_0_ramp_fit``...) -> their ``_jump`` ramps.

    jwst_reffiles' search takes slope, jump and fitopt files of each dark, named by
    suffix. daskref computes the slopes and pedestals from the jump ramp itself (the
    same ramp fit), so a slope file stands for its ``_jump.fits`` sibling; other
    paths are returned as they are.

    Raises
    ------
    daskref.io.fits.InputError
        A slope file without its ``_jump.fits`` sibling.
    """
    from ..io.fits import InputError

    out = []
    for p in map(str, paths):
        stem = p.removesuffix(".fits")
        suffix = next((s for s in SLOPE_SUFFIXES if stem.endswith(s)), None)
        if suffix is None:
            out.append(p)
            continue
        jump = stem.removesuffix(suffix) + "_jump.fits"
        if not os.path.isfile(jump):
            raise InputError(p, f"is a slope file; the bad-pixel search needs its ramp "
                             f"{os.path.basename(jump)} beside it (not found)")
        if jump not in out:
            out.append(jump)
    return out


#: Header keywords of the dark search's parameters (jwst_reffiles' names; the two
#: thresholds are daskref's).
DARK_KEYWORDS = {
    "hot_threshold": "BPDHOTTH", "warm_threshold": "BPDWRMTH",
    "dark_stdev_clipping_sigma": "BPDCLPSG", "dark_max_clipping_iters": "BPDCLPIT",
    "dark_noisy_threshold": "BPDNSETH", "max_saturated_fraction": "BPDMXSAT",
    "max_jump_limit": "BPDMXJMP", "jump_ratio_threshold": "BPDJPRAT",
    "early_cutoff_fraction": "BPDCUTFC", "pedestal_sigma_threshold": "BPDPEDTH",
    "rc_fraction_threshold": "BPDRCTH", "low_pedestal_fraction": "BPDLOPFC",
    "high_cr_fraction": "BPDCRFC",
}


def used_flags(mask: np.ndarray) -> list[str]:
    """Names of the flags set anywhere in ``mask``, GOOD first, in bit order."""
    present = int(np.bitwise_or.reduce(mask.ravel())) if mask.size else 0
    return ["GOOD"] + [n for n, v in dq.PIXEL.items() if v and present & v]


def write(ds: xr.Dataset, path, meta: CrdsMeta):
    """Write a computed MASK product and its per-class diagnostic file."""
    check_computed(ds, ("dq", "class"))
    mask = ds["dq"].values.astype(np.uint32)
    attrs = ds.attrs
    extra = parameter_keywords(attrs.get("parameters", {}), DARK_KEYWORDS)
    if attrs.get("EXP_TYPE"):
        extra["EXP_TYPE"] = str(attrs["EXP_TYPE"])
    out = write_product(ds, path, meta, reftype=REFTYPE, datamodel=DATAMODEL,
                        function="mask_from_darks", template=DESCRIPTION,
                        images=[("DQ", mask, None)], dq_def=dq.dq_def(used_flags(mask)),
                        use_readpatt=True, extra=extra)
    write_dark_diagnostics(ds, path)
    return out


def write_dark_diagnostics(ds: xr.Dataset, path):
    """Write ``<name>_diagnostics.fits``.

    The class of every pixel, one image per class and the statistic behind each.
    """
    cls = ds["class"].values
    images = [(name.upper(), (cls == k).astype(np.uint8), None)
              for k, name in enumerate(ds.attrs.get("classes", _bpd.CLASSES))]
    images += [(name.upper(), ds[name].values.astype(np.float32), _UNITS.get(name))
               for name in STATISTICS]
    return write_ancillary(ds, path, "diagnostics", "BAD PIXEL DIAGNOSTICS",
                           "mask_from_darks", [("CLASS", cls.astype(np.int16), None)] + images)


MASK_FROM_DARKS = register(RefType(
    reflabel="badpix_from_darks", reftype=REFTYPE, datamodel=DATAMODEL,
    summary="bad-pixel MASK from darks (hot, warm, noisy, RC, telegraph, low pedestal)",
    inputs="darks", imtypes="D+",
    ssbsteps="dq_init,saturation,superbias,refpix,linearity,jump,rate",
    ssbsteps_miri="dq_init,saturation,firstframe,lastframe,linearity,jump,rate",
    requires=("jump", "rate"), needs_group_time=True,
    algorithm=_bpd.mask_from_darks, build=build_from_darks, write=write,
    input_flag="darks",
    params=[
        Param("hot_threshold", "HOT at or above this clean dark rate (e-/s with a gain, "
              "DN/s without)"),
        Param("warm_threshold", "WARM at or above this clean dark rate (e-/s with a gain, "
              "DN/s without)"),
        Param("dark_stdev_clipping_sigma", "clipping of slopes and of the amplifier "
              "distributions, sigma"),
        Param("dark_max_clipping_iters", "passes of that clipping"),
        Param("dark_noisy_threshold", "NOISY above the amplifier's mean noise plus this "
              "many sigmas", aliases=("noisy_threshold",)),
        Param("max_saturated_fraction", "saturated from group 0 in this fraction of the "
              "integrations: HOT"),
        Param("max_jump_limit", "up and down steps an integration needs for TELEGRAPH"),
        Param("jump_ratio_threshold", "RC when early steps outnumber late ones by this "
              "ratio"),
        Param("early_cutoff_fraction", "fraction of the differences that is 'early' (RC)"),
        Param("pedestal_sigma_threshold", "significance of the RC shape and pedestal "
              "tests, sigma"),
        Param("step_sigma_threshold", "a jump is a step of the pixel at this many CDS "
              "sigmas"),
        Param("rate_sigma_threshold", "HOT/WARM only where the rate is this many of its "
              "errors above zero"),
        Param("rc_fraction_threshold", "RC in more than this fraction of integrations"),
        Param("low_pedestal_fraction", "LOW_PEDESTAL in more than this fraction of "
              "integrations"),
        Param("high_cr_fraction", "TELEGRAPH in more than this fraction of integrations"),
        Param("flag_values", "class -> DQ flags, YAML, e.g. '{hot: [HOT], rc: [RC]}'"),
        Param("dark_do_not_use", "classes that also get DO_NOT_USE (comma list)"),
    ],
))
