"""Run the missing calwebb_detector1 steps on ramp exposures, lazily.

:func:`prep` opens an exposure (or takes an opened Dataset), works out from its
``S_*`` keywords which of the requested steps still have to run
(:func:`~daskref.prep.steps.steps_to_run`), checks that every reference those steps
need was given, and only then chains the step functions of
:mod:`daskref.algorithms.steps`. Nothing is read or computed: the result is a lazy
Dataset to hand to :func:`daskref.io.products.write_products` (one pass over the
inputs for all products) or to compute yourself.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from functools import partial
from numbers import Real
from types import SimpleNamespace

import numpy as np
import xarray as xr

from daskref import dq
from daskref.algorithms.steps import jump as _jump
from daskref.algorithms.steps import ramp_fit as _ramp_fit
from daskref.algorithms.steps import refpix as _refpix
from daskref.algorithms.steps import simple as _simple
from daskref.algorithms.steps._common import STEP_KEYWORDS, mark_done
from daskref.algorithms.steps._reference import aligned_rows, with_dq_arrays
from daskref.geometry import is_miri
from daskref.io import products as _products
from daskref.io import spill as _spill
from daskref.io.fits import open_exposure, reopen_rows, scan

from .steps import (
    PrepError,
    check_implemented,
    group_scale_factor,
    parse_steps,
    steps_to_run,
)

log = logging.getLogger("daskref.prep")

#: Default slab size of :func:`prep`, MB of input per slab. The calibrated float32
#: ramp, its flags and the ramp fit's float64 work arrays take about 20 times a raw
#: slab, so this is smaller than the readers' default (measured: a full-frame chain
#: through ramp fitting peaks near 0.6 GB with 16 MB slabs and 2 workers).
PREP_CHUNK_MB = 16.0

#: Reference arguments of :func:`prep` -> REFTYPE of the CRDS file that provides them.
REFTYPES: dict[str, str] = {
    "mask": "MASK", "saturation": "SATURATION", "superbias": "SUPERBIAS",
    "linearity": "LINEARITY", "dark": "DARK", "readnoise": "READNOISE", "gain": "GAIN",
}
#: References each step needs.
NEEDS: dict[str, tuple[str, ...]] = {
    "dq_init": ("mask",), "saturation": ("saturation",), "superbias": ("superbias",),
    "linearity": ("linearity",), "dark_current": ("dark",),
    "jump": ("readnoise", "gain"), "rate": ("readnoise", "gain"),
}
#: References that may be a single number (a threshold or a uniform map).
SCALAR_OK = frozenset({"saturation", "readnoise", "gain"})

#: Step parameters of :func:`prep` and their defaults (the step functions' defaults).
STEP_PARAMETERS: dict[str, dict[str, object]] = {
    "saturation": {"n_pix_grow_sat": 0},
    "refpix": {"odd_even_columns": True, "use_side_ref_pixels": True,
               "side_smoothing_length": 11, "side_gain": 1.0, "odd_even_rows": True},
    "dark_current": {"dark_nframes": None, "dark_groupgap": None},
    "jump": {"rejection_threshold": 4.0, "three_group_rejection_threshold": 6.0,
             "four_group_rejection_threshold": 5.0, "flag_4_neighbors": True,
             "max_jump_to_flag_neighbors": 1000.0, "min_jump_to_flag_neighbors": 10.0},
    "rate": {"weighting": "optimal", "save_opt": False, "max_segments": 4},
}


class MissingReferenceError(PrepError):
    """A step that has to run lacks its reference data."""


# --------------------------------------------------------------------------- references


def _check_reference(name: str, value):
    """Validate one reference argument; return it, or a lazily opened reference file."""
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return _products.open_reference(value, name)
    if isinstance(value, bool) or (isinstance(value, Real) and not isinstance(value, np.ndarray)):
        if name not in SCALAR_OK:
            raise PrepError(
                f"{name}={value!r}: a {REFTYPES[name]} reference must be a file or an array; "
                f"only {', '.join(sorted(SCALAR_OK))} may be a single number"
            )
        return float(value)
    return value


def resolve_references(refs: Mapping[str, object]) -> dict[str, object]:
    """Open reference files lazily and check the kinds of the other arguments.

    Parameters
    ----------
    refs : mapping
        ``{"mask": ..., "saturation": ..., ...}`` as given to :func:`prep`.

    Returns
    -------
    dict
        Same keys: None, a float, an array/DataArray/Dataset, or for a path the
        Dataset of :func:`daskref.io.products.open_reference` (lazy).
    """
    unknown = set(refs) - set(REFTYPES)
    if unknown:
        raise TypeError(f"unknown reference argument(s): {sorted(unknown)}")
    return {name: _check_reference(name, value) for name, value in refs.items()}


def check_references(to_run: Sequence[str], refs: Mapping[str, object], label: str = "") -> None:
    """Raise :class:`MissingReferenceError` for the first step lacking a reference."""
    for step in to_run:
        for name in NEEDS.get(step, ()):
            if refs.get(name) is None:
                where = f"{label}: " if label else ""
                raise MissingReferenceError(
                    f"{where}step {step!r} needs a {REFTYPES[name]} reference: give "
                    f"{name}=... / --{name} FILE"
                )


#: References whose READPATT must be the science's for MIRI (FAST and SLOW reads differ in
#: frame time, reset behaviour and noise; frame averaging cannot turn one into the other).
MIRI_READPATT_REFERENCES = frozenset({"dark", "readnoise"})
#: READPATT values that mean "any readout".
ANY_READPATT = frozenset({"", "ANY", "N/A", "NONE"})


def _full_window(attrs: Mapping, shape: tuple[int, int]) -> str:
    """``x a-b, y c-d`` (1-based, full frame) of an array with SUBSTRT keywords."""
    x0, y0 = int(attrs.get("SUBSTRT1", 1)), int(attrs.get("SUBSTRT2", 1))
    return f"x {x0}-{x0 + shape[1] - 1}, y {y0}-{y0 + shape[0] - 1}"


def check_reference_fit(name: str, ref: xr.Dataset, sci: Mapping, shape: tuple[int, ...],
                        label: str = "", params: Mapping[str, Mapping] | None = None) -> None:
    """Refuse a reference file that cannot calibrate these data, from the headers.

    Checked: ``INSTRUME`` and ``DETECTOR`` equal (where both files say); the
    science window inside the reference (``SUBSTRT``/``SUBSIZE``; one of the same
    size must sit at the same place); for a DARK, enough groups for the science
    readout (:func:`daskref.kernels.simple.dark_frame_indices`); for a MIRI DARK
    or READNOISE, the same ``READPATT`` (unless it says ANY). A near-IR DARK of
    another READPATT is fine when it is frame-resolved (it is averaged to the
    science groups), and the other types do not depend on the readout.

    Parameters
    ----------
    name : str
        The reference argument (``superbias``, ``dark``, ...).
    ref : xarray.Dataset
        From :func:`daskref.io.products.open_reference` (``attrs["path"]``).
    sci : mapping
        The science file's header attributes.
    shape : tuple of int
        Its ``(integration, group, y, x)`` shape.
    label : str
        The science file (named in the message).
    params : mapping, optional
        Step parameters (``dark_current``'s ``dark_nframes``/``dark_groupgap``).

    Raises
    ------
    daskref.io.fits.InputError
        Naming the reference file, the keyword and the science file.
    """
    from daskref.io.fits import InputError
    from daskref.kernels.simple import dark_frame_indices

    path, attrs = ref.attrs["path"], ref.attrs
    label = os.path.basename(label) or "the science data"
    kind = REFTYPES[name]
    for key in ("INSTRUME", "DETECTOR"):
        have, want = str(attrs.get(key, "")).upper(), str(sci.get(key, "")).upper()
        if have and want and have != want:
            raise InputError(path, f"{key} is {have} but {label} is {want}: give the "
                             f"{kind} reference of {sci.get('DETECTOR', want)}")
    values = [v for n, v in ref.data_vars.items() if n != "dq"] or list(ref.data_vars.values())
    ngroups, window = int(shape[1]), (int(shape[2]), int(shape[3]))
    shape = tuple(int(n) for n in values[0].shape)  # from here on: the reference's
    if shape[-2:] == window:
        same = all(k in attrs and k in sci for k in ("SUBSTRT1", "SUBSTRT2"))
        if same and (int(attrs["SUBSTRT1"]), int(attrs["SUBSTRT2"])) != (
                int(sci["SUBSTRT1"]), int(sci["SUBSTRT2"])):
            raise InputError(path, f"SUBSTRT1/2 {attrs['SUBSTRT1']},{attrs['SUBSTRT2']}: it "
                             f"covers {_full_window(attrs, shape[-2:])} but {label} is "
                             f"{_full_window(sci, window)}; give a full-frame {kind} or one "
                             "of that subarray")
    else:
        from daskref.algorithms.steps._reference import reference_window

        try:
            # the science side as reference_window reads it: header attributes and sizes
            science = SimpleNamespace(attrs=sci, sizes=dict(zip("yx", window, strict=True)))
            reference_window(shape, attrs, science)
        except ValueError:
            where = (_full_window(attrs, shape[-2:]) if "SUBSTRT1" in attrs
                     else f"shape {shape[-2:]}, no SUBSTRT1/2")
            raise InputError(path, f"too small for {label}: SUBSTRT/SUBSIZE {where} do not "
                             f"contain the science window {_full_window(sci, window)}; give "
                             f"a full-frame {kind} or one containing the subarray") from None
    if is_miri(sci) and name in MIRI_READPATT_REFERENCES:
        have = str(attrs.get("READPATT", "")).strip().upper()
        want = str(sci.get("READPATT", "")).strip().upper()
        if have not in ANY_READPATT and want and have != want:
            raise InputError(path, f"READPATT is {have} but {label} is {want}: a MIRI {kind} "
                             f"is made for one readout pattern; give one for {want}")
    if name == "dark":
        step = (params or {}).get("dark_current", {})
        nframes = step.get("dark_nframes")
        groupgap = step.get("dark_groupgap")
        try:
            dark_frame_indices(
                ngroups, int(sci.get("NFRAMES", 1) or 1),
                int(sci.get("GROUPGAP", 0) or 0), shape[-3] if len(shape) >= 3 else 1,
                int(nframes if nframes is not None else attrs.get("NFRAMES", 1) or 1),
                int(groupgap if groupgap is not None else attrs.get("GROUPGAP", 0) or 0))
        except ValueError as exc:
            raise InputError(path, f"does not cover {label}: {exc}") from None


def check_references_fit(to_run: Sequence[str], refs: Mapping[str, object], ds: xr.Dataset,
                         params: Mapping[str, Mapping] | None = None) -> None:
    """:func:`check_reference_fit` of every reference file the steps to run use."""
    done = set()
    for step in to_run:
        for name in NEEDS.get(step, ()):
            ref = refs.get(name)
            if name not in done and isinstance(ref, xr.Dataset) and "path" in ref.attrs:
                shape = tuple(int(ds.sizes[d]) for d in ("integration", "group", "y", "x"))
                check_reference_fit(name, ref, ds.attrs, shape, _label(ds), params)
                done.add(name)


def aligned_references(ds: xr.Dataset, refs: Mapping[str, object]) -> dict[str, object]:
    """Re-open reference files so their row slabs line up with the ramp's.

    Each ramp slab then reads just its own rows of every reference, so a slab's
    whole chain (read, calibrate, write) can finish before the next starts and no
    large reference slab keeps many ramp slabs waiting in memory.

    Parameters
    ----------
    ds : xarray.Dataset
        The opened ramp (dask-backed).
    refs : mapping
        As returned by :func:`resolve_references`; only Datasets opened from a file
        are re-opened, other values are returned as they are.

    Returns
    -------
    dict
    """
    out = dict(refs)
    for name, ref in refs.items():
        if isinstance(ref, xr.Dataset) and "path" in ref.attrs and ref.data_vars:
            shape = next(iter(ref.data_vars.values())).shape
            rows = aligned_rows(shape, ref.attrs, ds)
            if rows is not None:
                out[name] = _products.open_reference(ref.attrs["path"], name, rows=rows)
    return out


def _value(ref, names: tuple[str, ...]):
    """The value variable of a reference Dataset read from a file (for ramp_fit/jump)."""
    if isinstance(ref, xr.Dataset):
        for n in names:
            if n in ref.data_vars:
                out = ref[n].copy()
                out.attrs = {**ref.attrs, **out.attrs}
                return out
    return ref


# --------------------------------------------------------------------------- extra steps


def _status(ds: xr.Dataset, step: str, value: str) -> xr.Dataset:
    out = ds.copy()
    out.attrs = dict(ds.attrs)
    out.attrs[STEP_KEYWORDS[step]] = value
    return out


def group_scale(ds: xr.Dataset) -> xr.Dataset:
    """Rescale groups averaged on board with the wrong divisor (calwebb ``group_scale``).

    Parameters
    ----------
    ds : xarray.Dataset
        Ramp Dataset (DN) with attrs ``NFRAMES`` and, when NFRAMES is not a power of
        2, ``FRMDIVSR``.

    Returns
    -------
    xarray.Dataset
        ``ramp * FRMDIVSR / NFRAMES`` (float32) and ``S_GRPSCL = COMPLETE`` when the
        two differ; otherwise ``ds`` unchanged with ``S_GRPSCL = SKIPPED``, as the
        pipeline does.
    """
    factor = group_scale_factor(ds.attrs)
    if factor == 1.0:
        return _status(ds, "group_scale", "SKIPPED")
    out = ds.copy()
    ramp = (ds["ramp"].astype(np.float32) * np.float32(factor)).astype(np.float32)
    ramp.attrs = ds["ramp"].attrs
    out["ramp"] = ramp
    return mark_done(out, "group_scale")


def _flag_group(ds: xr.Dataset, step: str, index: int, min_groups: int) -> xr.Dataset:
    ngroups = ds.sizes["group"]
    if not is_miri(ds.attrs) or ngroups <= min_groups:
        return _status(ds, step, "SKIPPED")
    ds = with_dq_arrays(ds)
    flags = np.zeros(ngroups, dtype=dq.GROUP_DTYPE)
    flags[index] = dq.DO_NOT_USE
    flag = xr.DataArray(flags, dims=("group",))
    gdq = (ds["groupdq"] | flag).astype(dq.GROUP_DTYPE).transpose(*ds["groupdq"].dims)
    gdq.attrs = ds["groupdq"].attrs
    out = ds.copy()
    out["groupdq"] = gdq
    return mark_done(out, step)


def firstframe(ds: xr.Dataset) -> xr.Dataset:
    """MIRI first-frame correction: group 0 of every integration gets DO_NOT_USE.

    Applied only to MIRI data with more than 3 groups (``S_FRSTFR = SKIPPED``
    otherwise), as in the pipeline; only ``groupdq`` (uint8) changes.
    """
    return _flag_group(ds, "firstframe", 0, 3)


def lastframe(ds: xr.Dataset) -> xr.Dataset:
    """MIRI last-frame correction: the last group of every integration gets DO_NOT_USE.

    Applied only to MIRI data with more than 2 groups (``S_LASTFR = SKIPPED``
    otherwise), as in the pipeline; only ``groupdq`` (uint8) changes.
    """
    return _flag_group(ds, "lastframe", -1, 2)


# --------------------------------------------------------------------------- engine


def _as_float_ramp(ds: xr.Dataset) -> xr.Dataset:
    ds = with_dq_arrays(ds)
    if ds["ramp"].dtype != np.float32:
        ramp = ds["ramp"].astype(np.float32)
        ramp.attrs = ds["ramp"].attrs
        ds = ds.copy()
        ds["ramp"] = ramp
    return ds


def _whole_ramp_axes(ds: xr.Dataset) -> xr.Dataset:
    """Merge chunks along ``integration``/``group`` (split by some steps' indexing).

    Only dask-backed variables that are split along those axes are rechunked; the
    pixel-axis chunks are kept.
    """
    out = ds
    for name, var in ds.data_vars.items():
        chunks = var.chunksizes if var.chunks is not None else {}
        fix = {d: -1 for d in ("integration", "group") if len(chunks.get(d, ())) > 1}
        if fix:
            out = out.copy() if out is ds else out
            out[name] = var.chunk(fix)
    return out


def _open(ds_or_path, chunk_mb, chunk_rows) -> xr.Dataset:
    if isinstance(ds_or_path, xr.Dataset):
        return ds_or_path
    if not isinstance(ds_or_path, (str, os.PathLike)):
        raise TypeError(f"prep takes a ramp Dataset or a path, not {type(ds_or_path).__name__}")
    if chunk_mb is None and chunk_rows is None:
        chunk_mb = PREP_CHUNK_MB
    ds = open_exposure(ds_or_path, chunk_mb=chunk_mb, chunk_rows=chunk_rows)
    # FRMDIVSR (for group_scale) is not among the keywords the reader keeps.
    from astropy.io import fits

    divisor = fits.getheader(os.fspath(ds_or_path), ext=0).get("FRMDIVSR")
    if divisor is not None:
        ds.attrs["FRMDIVSR"] = int(divisor)
    return ds


def _refpix_chunks(ds: xr.Dataset, source, to_run, params) -> xr.Dataset:
    """Re-slab the rows so refpix's reference rows are slabs of their own.

    See :func:`daskref.algorithms.steps.refpix.edge_row_chunks`; an opened file or
    stack is re-opened with the new slabs (so each row is still read once, and no
    slab is held while it is copied into others), another dask-backed Dataset is
    rechunked.
    """
    ramp = ds["ramp"].data
    if "refpix" not in to_run or not hasattr(ramp, "chunks"):
        return ds
    rows = tuple(ramp.chunks[ds["ramp"].dims.index("y")])
    shape = (ds.sizes["y"], ds.sizes["x"])
    p = params["refpix"]
    guard = _refpix.side_halo(p["side_smoothing_length"]) if p["use_side_ref_pixels"] else 0
    new = _refpix.edge_row_chunks(ds.attrs, shape, rows, guard=guard)
    if new == rows:
        return ds
    if isinstance(source, (str, os.PathLike)):
        attrs = ds.attrs
        ds = open_exposure(source, row_chunks=new)
        ds.attrs = attrs
        return ds
    reopened = reopen_rows(ds, new)
    return reopened if reopened is not None else ds.chunk({"y": new})


def _params(params: Mapping[str, object]) -> dict[str, dict[str, object]]:
    known = {k for p in STEP_PARAMETERS.values() for k in p}
    unknown = set(params) - known
    if unknown:
        raise TypeError(f"prep() got unknown step parameter(s) {sorted(unknown)}; "
                        f"known: {sorted(known)}")
    return {step: {k: params.get(k, v) for k, v in defaults.items()}
            for step, defaults in STEP_PARAMETERS.items()}


def _plan(ds: xr.Dataset, steps, refs: Mapping[str, object],
          params: Mapping[str, Mapping] | None = None) -> tuple[tuple[str, ...], tuple]:
    """Requested steps and those to run, after every check (no data touched)."""
    requested = parse_steps(steps, ds.attrs)
    to_run = steps_to_run(requested, ds.attrs)
    label = _label(ds)
    check_implemented(to_run, ds.attrs)
    check_references(to_run, refs, label)
    check_references_fit(to_run, refs, ds, params)
    if "rate" in to_run:
        from daskref.io.fits import InputError, group_time_problem

        problem = group_time_problem(ds.attrs.get("TGROUP"))
        if problem:
            raise InputError(label or None, f"{problem}; ramp fitting needs it")
    return requested, to_run


def _label(ds: xr.Dataset) -> str:
    inputs = ds.attrs.get("inputs")
    return str(inputs[0]) if isinstance(inputs, (list, tuple)) and inputs else ""


def _build(ds: xr.Dataset, requested, to_run, refs, params, spill_dir=None) -> xr.Dataset:
    ds = _as_float_ramp(ds)
    refs = aligned_references(ds, refs)
    rate = None
    for step in to_run:
        if step == "group_scale":
            ds = group_scale(ds)
        elif step == "dq_init":
            ds = _simple.dq_init(ds, mask=refs["mask"])
        elif step == "saturation":
            sat = refs["saturation"]
            kw = {"threshold": sat} if isinstance(sat, float) else {"saturation": sat}
            ds = _simple.saturation(ds, **kw, **params["saturation"])
        elif step == "superbias":
            ds = _simple.superbias(ds, superbias=refs["superbias"])
        elif step == "refpix":
            ds = _refpix.refpix(ds, **params["refpix"],
                                spill=partial(_spill.spill, directory=spill_dir))
        elif step == "linearity":
            ds = _simple.linearity(ds, coeffs=refs["linearity"])
        elif step == "dark_current":
            ds = _simple.dark_current(ds, dark=refs["dark"], **params["dark_current"])
        elif step in ("firstframe", "lastframe"):
            ds = firstframe(ds) if step == "firstframe" else lastframe(ds)
        elif step == "jump":
            ds = _whole_ramp_axes(ds)
            ds = _jump.jump(ds, readnoise=_value(refs["readnoise"], ("readnoise",)),
                            gain=_value(refs["gain"], ("gain",)), **params["jump"])
        elif step == "rate":
            ds = _whole_ramp_axes(ds)
            rate = _ramp_fit.ramp_fit(ds, readnoise=_value(refs["readnoise"], ("readnoise",)),
                                      gain=_value(refs["gain"], ("gain",)), **params["rate"])
        else:  # pragma: no cover - check_implemented refuses the others
            raise PrepError(f"step {step!r} cannot run here")
    ds = _whole_ramp_axes(ds)
    if rate is not None:
        attrs = dict(rate.attrs)
        ds = xr.merge([ds, rate], combine_attrs="drop_conflicts", compat="override",
                      join="override")
        ds.attrs = attrs
    ds.attrs["prep_requested"] = list(requested)
    ds.attrs["prep_steps"] = list(to_run)
    ds.attrs["prep_last_step"] = requested[-1]
    return ds


def prep(
    ds_or_path: xr.Dataset | str | os.PathLike,
    *,
    steps: str | Sequence[str],
    mask=None,
    saturation=None,
    superbias=None,
    linearity=None,
    dark=None,
    readnoise=None,
    gain=None,
    chunk_mb: float | None = None,
    chunk_rows: int | None = None,
    spill_dir: str | os.PathLike | None = None,
    **params,
) -> xr.Dataset:
    """Calibrate one ramp exposure through the requested detector1 steps, lazily.

    Parameters
    ----------
    ds_or_path : xarray.Dataset or path-like
        A ramp (``uncal`` or a partly calibrated ramp such as ``_refpix.fits``), or
        the Dataset of :func:`daskref.io.fits.open_exposure`. Its ``S_*`` keywords say
        which steps it already had.
    steps : str or sequence of str
        ``ssbsteps`` request: ``"dq_init,saturation"``, ``"refpix-"``, ``"jump+"``
        (see :func:`daskref.prep.steps.parse_steps`).
    mask, saturation, superbias, linearity, dark, readnoise, gain : optional
        Reference data of the steps that run: a path to a CRDS FITS reference file
        (read lazily: MASK ``DQ``; SATURATION/SUPERBIAS ``SCI`` + ``DQ``; LINEARITY
        ``COEFFS`` + ``DQ``; DARK ``SCI`` (group, y, x) + ``DQ``; READNOISE/GAIN
        ``SCI``), an array or xarray object with dims (..., y, x), or a number for
        ``saturation`` (one threshold, DN), ``readnoise`` (CDS, DN) and ``gain``
        (e-/DN). Full-frame references are cut to the input's subarray.
    chunk_mb, chunk_rows : optional
        Row-slab size when ``ds_or_path`` is a path (see ``open_exposure``); default
        :data:`PREP_CHUNK_MB` MB of input per slab.
    spill_dir : path-like, optional
        Temporary storage for refpix on data whose reference pixels lie in every row
        (MIRI, near-IR single-output subarrays, NIRSpec/NIRISS): the slabs wait there
        until the offsets are known (:func:`daskref.io.spill.spill`). Default: dask's
        ``temporary-directory`` or the system temporary directory; on a multi-node
        cluster give a directory all workers share.
    **params
        Step parameters, with the step functions' defaults: ``n_pix_grow_sat``
        (saturation); ``odd_even_columns``, ``use_side_ref_pixels``,
        ``side_smoothing_length``, ``side_gain``, ``odd_even_rows`` (refpix);
        ``dark_nframes``, ``dark_groupgap`` (dark_current); ``rejection_threshold``,
        ``three_group_rejection_threshold``, ``four_group_rejection_threshold``,
        ``flag_4_neighbors``, ``max_jump_to_flag_neighbors``,
        ``min_jump_to_flag_neighbors`` (jump); ``weighting``, ``save_opt``,
        ``max_segments`` (ramp fitting).

    Returns
    -------
    xarray.Dataset
        Lazy. ``ramp`` float32 (integration, group, y, x) DN, ``groupdq`` uint8,
        ``pixeldq`` uint32 (y, x), after the steps; when ramp fitting ran, also its
        variables (``rate``, ``rate_err``, ..., ``rateints``, ..., and the optional
        ``slope``... with ``save_opt``). Attributes: the input's header keywords with
        the ``S_*`` keys of the steps that ran, ``prep_requested`` and
        ``prep_steps`` (lists of step names) and ``prep_last_step`` (names the
        product: ``<base>_<suffix>.fits``).

    Raises
    ------
    daskref.prep.UnknownStepError
        Bad ``steps``.
    daskref.prep.StepNotImplementedError
        ipc, persistence or rscd would have to run.
    daskref.prep.MissingReferenceError
        A step that has to run lacks its reference ("step 'jump' needs a READNOISE
        reference: give readnoise=... / --readnoise FILE").
    daskref.io.fits.InputError
        An unreadable input.

    All of these are raised from the headers alone, before any graph is built.
    """
    refs = resolve_references(dict(mask=mask, saturation=saturation, superbias=superbias,
                                   linearity=linearity, dark=dark, readnoise=readnoise, gain=gain))
    step_params = _params(params)
    ds = _open(ds_or_path, chunk_mb, chunk_rows)
    requested, to_run = _plan(ds, steps, refs, step_params)
    ds = _refpix_chunks(ds, ds_or_path, to_run, step_params)
    if not to_run:
        log.info("%s: every requested step is already COMPLETE", _label(ds) or "input")
    return _build(ds, requested, to_run, refs, step_params, spill_dir)


def prep_many(
    paths: Sequence[str | os.PathLike | xr.Dataset],
    *,
    steps: str | Sequence[str],
    chunk_mb: float | None = None,
    chunk_rows: int | None = None,
    spill_dir: str | os.PathLike | None = None,
    **kwargs,
) -> list[xr.Dataset]:
    """:func:`prep` for a campaign: every input checked before any graph is built.

    Parameters
    ----------
    paths : sequence of path-like or Dataset
        The exposures (each may have had different steps already).
    steps, chunk_mb, chunk_rows, spill_dir, **kwargs
        As for :func:`prep`; reference files are opened once and shared, so their
        chunks are read once however many inputs use them.

    Returns
    -------
    list of xarray.Dataset
        One lazy result per input, in order. Compute them together
        (:func:`daskref.io.products.write_products`) to read every input once.
    """
    ref_names = [k for k in kwargs if k in REFTYPES]
    refs = resolve_references({k: kwargs.pop(k) for k in ref_names})
    refs = {name: refs.get(name) for name in REFTYPES}
    step_params = _params(kwargs)
    file_paths = [p for p in paths if not isinstance(p, xr.Dataset)]
    if file_paths:
        scan(file_paths)  # every header, duplicates and truncation, first
    opened = [_open(p, chunk_mb, chunk_rows) for p in paths]
    plans = [_plan(ds, steps, refs, step_params) for ds in opened]
    opened = [_refpix_chunks(ds, p, run, step_params)
              for ds, p, (_, run) in zip(opened, paths, plans, strict=True)]
    return [_build(ds, req, run, refs, step_params, spill_dir)
            for ds, (req, run) in zip(opened, plans, strict=True)]
