"""The bad-pixel MASK from darks: hot, warm, noisy, RC, telegraph, low-pedestal pixels.

Each pixel gets at most one class, the first of this order that describes it
(an RC or telegraph pixel is not also WARM because its segmented rate is high;
a telegraph pixel steps up and down, which an RC transient, of one sign, does not,
so a pixel that does both in most integrations is telegraph):

==============  ==================================================  ==================
class           test                                                default flags
==============  ==================================================  ==================
saturated       saturated from group 0 in at least                  HOT
                ``max_saturated_fraction`` of the integrations
high_cr         more than ``high_cr_fraction`` of the integrations  TELEGRAPH
(telegraph)     have up and down steps (at least ``max_jump_limit``)
rc              an early transient of one sign: in more than        RC
                ``rc_fraction_threshold`` of the integrations (the
                early-ramp shape test at ``pedestal_sigma_threshold``,
                or steps concentrated early by
                ``jump_ratio_threshold``), or the median shape test
                over all integrations significant at
                ``pedestal_sigma_threshold``, or a pedestal above the
                amplifier's by ``pedestal_sigma_threshold`` sigma
hot             clean dark rate >= ``hot_threshold`` (and detected  HOT
                at ``rate_sigma_threshold``)
warm            clean dark rate >= ``warm_threshold`` (likewise)    WARM
low_pedestal    pedestal below the amplifier's by                   OTHER_BAD_PIXEL
                ``pedestal_sigma_threshold`` sigma in more than
                ``low_pedestal_fraction`` of the integrations
noisy           CDS noise above the amplifier's clipped mean by     UNRELIABLE_SLOPE
                ``dark_noisy_threshold`` clipped sigmas
==============  ==================================================  ==================

Reference pixels (from the geometry) get ``REFERENCE_PIXEL`` and no class; the
classes listed in ``dark_do_not_use`` also get ``DO_NOT_USE``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dask.array as da
import numpy as np
import xarray as xr

from .. import dq
from ..geometry import amplifier_index, reference_pixel_mask
from ..kernels.badpix_dark import STATISTICS, dark_pixel_statistics
from ..kernels.ramp_fit import group_times
from ..kernels.readnoise import global_clipped_stats
from ._chunks import apply_stack, lookup_values, require_single_chunk

#: Class names in priority order, and their default flags.
CLASSES = ("saturated", "high_cr", "rc", "hot", "warm", "low_pedestal", "noisy")
DEFAULT_FLAGS: dict[str, list[str]] = {
    "saturated": ["HOT"], "rc": ["RC"], "high_cr": ["TELEGRAPH"], "hot": ["HOT"],
    "warm": ["WARM"], "low_pedestal": ["OTHER_BAD_PIXEL"], "noisy": ["UNRELIABLE_SLOPE"],
}
#: Other names accepted for a class (jwst_reffiles' flag_values keys).
CLASS_ALIASES = {"telegraph": "high_cr", "unreliable_slope": "noisy"}
DEFAULT_DO_NOT_USE = ("hot", "saturated", "rc", "high_cr", "low_pedestal")


def _class_name(name: str) -> str:
    key = str(name).strip().lower()
    key = CLASS_ALIASES.get(key, key)
    if key not in CLASSES:
        raise ValueError(f"unknown bad-pixel class {name!r}; classes: "
                         f"{', '.join(CLASSES)} (also {', '.join(CLASS_ALIASES)})")
    return key


def class_flags(flag_values: Mapping | None, do_not_use: Sequence[str]) -> dict[str, int]:
    """The DQ value each class sets: its flags, with DO_NOT_USE where listed.

    Neither argument is modified (jwst_reffiles appended DO_NOT_USE to the caller's
    dict, so a second call in one process set it twice).
    """
    names = {k: list(v) for k, v in DEFAULT_FLAGS.items()}
    for key, flags in (flag_values or {}).items():
        flags = [flags] if isinstance(flags, str) else list(flags)
        for f in flags:
            if str(f).upper() not in dq.PIXEL:
                raise ValueError(f"flag_values[{key!r}]: {f!r} is not a JWST DQ flag")
        names[_class_name(key)] = [str(f).upper() for f in flags]
    dnu = {_class_name(c) for c in do_not_use}
    return {c: int(np.bitwise_or.reduce([dq.PIXEL[f] for f in names[c]] + [0]))
            | (dq.DO_NOT_USE if c in dnu else 0) for c in CLASSES}


def amplifier_stats(values, science: np.ndarray, amps: np.ndarray, *, sigma: float,
                    maxiters: int):
    """Clipped ``[mean, std]`` of a (y, x) map per amplifier, over science pixels.

    Returns a (namp, 2) array, lazy when ``values`` is dask-backed.
    """
    namp = int(amps.max()) + 1

    def block(v, science, amps):
        return np.stack([global_clipped_stats(v[:, amps == a], science[:, amps == a],
                                              sigma=sigma, maxiters=maxiters)
                         for a in range(namp)])

    if not isinstance(values, da.Array):
        return block(np.asarray(values), science, amps)
    whole = values.rechunk(-1)
    return da.map_blocks(block, whole, science, amps, chunks=((namp,), (2,)),
                         dtype=np.float64)


def mask_from_darks(
    data: xr.Dataset,
    *,
    hot_threshold: float = 1.0,
    warm_threshold: float = 0.1,
    gain=None,
    dark_stdev_clipping_sigma: float = 5.0,
    dark_max_clipping_iters: int = 5,
    dark_noisy_threshold: float = 5.0,
    max_saturated_fraction: float = 0.5,
    max_jump_limit: int = 2,
    jump_ratio_threshold: float = 5.0,
    early_cutoff_fraction: float = 0.25,
    pedestal_sigma_threshold: float = 5.0,
    step_sigma_threshold: float = 5.0,
    rate_sigma_threshold: float = 5.0,
    rc_fraction_threshold: float = 0.8,
    low_pedestal_fraction: float = 0.8,
    high_cr_fraction: float = 0.8,
    flag_values: dict[str, list[str]] | None = None,
    dark_do_not_use: Sequence[str] = DEFAULT_DO_NOT_USE,
) -> xr.Dataset:
    """Bad pixels found in darks, as a lazy Dataset.

    Parameters
    ----------
    data : xarray.Dataset
        Calibrated dark stack through ramp fitting (:func:`daskref.prep.stack.prep_stack`
        with ``...,jump,rate``): ``ramp`` (integration, group, y, x) DN, ``groupdq``
        and ``rateints`` (integration, y, x) DN/s; ``integration``/``group`` single
        chunks. Attributes ``TGROUP`` (s), ``NFRAMES``, ``GROUPGAP`` and the
        geometry keywords.
    hot_threshold, warm_threshold : float
        Clean dark rate at or above which a pixel is HOT or WARM: e-/s when a
        ``gain`` is given, DN/s otherwise. The measured rate has the noise of the
        campaign's slopes: choose the thresholds well above it.
    gain : float or DataArray (y, x), e-/DN, optional
        Converts rates to e-/s and removes the dark current's shot noise from the
        noise statistic.
    dark_stdev_clipping_sigma, dark_max_clipping_iters : float, int
        Clipping of each pixel's clean slopes and of the detector-wide (per
        amplifier) distributions of noise and pedestal.
    dark_noisy_threshold : float
        NOISY above the amplifier's clipped mean noise plus this many clipped sigmas.
    max_saturated_fraction : float
        Saturated-from-group-0 in at least this fraction of the integrations.
    max_jump_limit : int
        Up and down steps an integration needs to count for TELEGRAPH (jwst_reffiles
        fixed 10, which ramps of a few dozen groups never reach).
    jump_ratio_threshold, early_cutoff_fraction : float
        RC from steps: the first ``early_cutoff_fraction`` of the group differences
        hold this many times the step rate of the second half.
    pedestal_sigma_threshold : float
        Significance of the RC shape test and of the pedestal tests (amplifier's
        clipped pedestal mean plus or minus this many typical pedestal scatters).
    step_sigma_threshold : float
        A group difference counts as a step of the pixel when it stands this many
        of the pixel's (robust) CDS sigmas from its integration's median difference.
    rate_sigma_threshold : float
        HOT and WARM only where the clean dark rate is also this many of its standard
        errors above zero (a noisy pixel's rate is not a warm pixel's).
    rc_fraction_threshold, low_pedestal_fraction, high_cr_fraction : float
        Fractions of the integrations for RC, LOW_PEDESTAL and TELEGRAPH.
    flag_values : dict, optional
        Class -> list of DQ flag names, overriding :data:`DEFAULT_FLAGS` per class
        (keys as in :data:`CLASSES`, or ``telegraph``/``unreliable_slope``).
    dark_do_not_use : sequence of str
        Classes that also get DO_NOT_USE.

    Returns
    -------
    xarray.Dataset
        ``dq`` (y, x) uint32, the mask; ``class`` (y, x) int8, the index of the
        pixel's class in :data:`CLASSES` (-1 none, -2 reference pixel); every
        statistic of :data:`~daskref.kernels.badpix_dark.STATISTICS` (y, x);
        ``noise_stats`` and ``pedestal_stats`` (amp, stat) with the amplifiers'
        clipped means and sigmas. Nothing is computed.
    """
    for name in ("ramp", "groupdq", "rateints"):
        if name not in data:
            raise ValueError(f"mask_from_darks needs {name!r}: calibrate the darks through "
                             "jump and ramp fitting (steps ...,jump,rate)")
    require_single_chunk(data.ramp, ("integration", "group"), "ramp")
    flags = class_flags(flag_values, dark_do_not_use)
    attrs = data.attrs
    ngroups = data.sizes["group"]
    nframes, groupgap = int(attrs.get("NFRAMES", 1)), int(attrs.get("GROUPGAP", 0))
    tgroup = float(attrs["TGROUP"])
    times = group_times(ngroups, tgroup, nframes, groupgap)
    shape = (data.sizes["y"], data.sizes["x"])
    kwargs = dict(clip_sigma=float(dark_stdev_clipping_sigma),
                  clip_iters=int(dark_max_clipping_iters),
                  step_sigma_threshold=float(step_sigma_threshold),
                  max_jump_limit=int(max_jump_limit),
                  jump_ratio_threshold=float(jump_ratio_threshold),
                  early_cutoff_fraction=float(early_cutoff_fraction),
                  pedestal_sigma_threshold=float(pedestal_sigma_threshold),
                  rc_fraction_threshold=float(rc_fraction_threshold),
                  low_pedestal_fraction=float(low_pedestal_fraction))
    if not 0 < early_cutoff_fraction <= 0.5:
        raise ValueError(f"early_cutoff_fraction must be in (0, 0.5], not {early_cutoff_fraction}")
    args = [data.ramp, data.groupdq, data.rateints.transpose(..., "integration")]
    core = [["integration", "group"], ["integration", "group"], ["integration"]]
    if isinstance(gain, xr.DataArray):
        args.append(gain)
        core.append([])

        def func(r, g, s, gn):
            return dark_pixel_statistics(r, g, s, times, gain=gn, **kwargs)
    else:
        gain_value = None if gain is None else float(gain)

        def func(r, g, s):
            return dark_pixel_statistics(r, g, s, times, gain=gain_value, **kwargs)

    stats = apply_stack(func, *args, input_core_dims=core,
                           output_core_dims=[[]] * len(STATISTICS),
                           output_dtypes=[np.float32] * len(STATISTICS))
    st = dict(zip(STATISTICS, stats, strict=True))

    ref = reference_pixel_mask(attrs, shape)
    science = ~ref
    amps = amplifier_index(attrs, shape)
    clip = dict(sigma=float(dark_stdev_clipping_sigma), maxiters=int(dark_max_clipping_iters))
    noise_stats = amplifier_stats(st["noise"].data, science, amps, **clip)
    ped_center = amplifier_stats(st["pedestal_median"].data, science, amps, **clip)[:, 0]
    ped_scale = amplifier_stats(st["pedestal_scatter"].data, science, amps, **clip)[:, 0]

    def per_column(values):  # amplifier values -> one per column
        if isinstance(values, da.Array):
            values = da.map_blocks(_take, values.rechunk(-1), amps, chunks=(amps.size,),
                                   dtype=values.dtype)
        else:
            values = _take(values, amps)
        return xr.DataArray(values, dims=("x",))

    noisy_cut = per_column(noise_stats[:, 0] + dark_noisy_threshold * noise_stats[:, 1])
    ped_lo = per_column(ped_center - pedestal_sigma_threshold * ped_scale)
    ped_hi = per_column(ped_center + pedestal_sigma_threshold * ped_scale)

    rate = st["clean_rate"] * (1.0 if gain is None else gain)
    detected = st["clean_rate"] >= rate_sigma_threshold * st["clean_rate_err"]
    tests = {
        "saturated": st["saturated_fraction"] >= max_saturated_fraction,
        "rc": ((st["rc_fraction"] > rc_fraction_threshold)
               | (np.abs(st["rc_significance"]) > pedestal_sigma_threshold)
               | (st["pedestal_high"] > ped_hi)),
        "high_cr": st["telegraph_fraction"] > high_cr_fraction,
        "hot": detected & (rate >= hot_threshold),
        "warm": detected & (rate >= warm_threshold),
        "low_pedestal": st["pedestal_low"] < ped_lo,
        "noisy": st["noise"] > noisy_cut,
    }
    is_ref = xr.DataArray(ref, dims=("y", "x"))
    pixel_class = xr.full_like(st["noise"], -1, dtype=np.int8)
    for k in reversed(range(len(CLASSES))):  # the first class that applies wins
        pixel_class = xr.where(tests[CLASSES[k]], np.int8(k), pixel_class)
    pixel_class = xr.where(is_ref, np.int8(-2), pixel_class).astype(np.int8)
    values = np.array([flags[c] for c in CLASSES] + [dq.REFERENCE_PIXEL, 0], dtype=np.uint32)
    mask = pixel_class.copy(data=lookup_values(pixel_class.data, values))

    out = {"dq": mask.assign_attrs(long_name="bad-pixel mask"),
           "class": pixel_class.assign_attrs(long_name="class index in CLASSES"),
           **{name: st[name] for name in STATISTICS},
           "noise_stats": xr.DataArray(noise_stats, dims=("amp", "stat")),
           "pedestal_stats": xr.DataArray(
               da.stack([ped_center, ped_scale], axis=1)
               if isinstance(ped_center, da.Array) else np.stack([ped_center, ped_scale], 1),
               dims=("amp", "stat"))}
    st["clean_rate"].attrs["units"] = "DN/s"
    params = {
        "hot_threshold": float(hot_threshold), "warm_threshold": float(warm_threshold),
        "threshold_units": "DN/s" if gain is None else "electrons/s",
        "dark_stdev_clipping_sigma": float(dark_stdev_clipping_sigma),
        "dark_max_clipping_iters": int(dark_max_clipping_iters),
        "dark_noisy_threshold": float(dark_noisy_threshold),
        "max_saturated_fraction": float(max_saturated_fraction),
        "max_jump_limit": int(max_jump_limit), "jump_ratio_threshold": float(jump_ratio_threshold),
        "early_cutoff_fraction": float(early_cutoff_fraction),
        "pedestal_sigma_threshold": float(pedestal_sigma_threshold),
        "step_sigma_threshold": float(step_sigma_threshold),
        "rate_sigma_threshold": float(rate_sigma_threshold),
        "rc_fraction_threshold": float(rc_fraction_threshold),
        "low_pedestal_fraction": float(low_pedestal_fraction),
        "high_cr_fraction": float(high_cr_fraction),
        "flag_values": {c: [n for n, v in dq.PIXEL.items() if v and flags[c] & v
                            and v != dq.DO_NOT_USE] for c in CLASSES},
        "dark_do_not_use": sorted({_class_name(c) for c in dark_do_not_use}),
    }
    new_attrs = {k: v for k, v in attrs.items() if k != "parameters"}
    new_attrs.update(reftype="MASK", parameters=params, classes=list(CLASSES),
                     class_flags=[int(flags[c]) for c in CLASSES])
    return xr.Dataset(out, attrs=new_attrs)


def _take(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    return values[np.asarray(index).astype(np.intp)]
