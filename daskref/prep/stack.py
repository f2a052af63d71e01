"""Calibrated stacks: many exposures through the prep engine, stacked for a statistic.

The DARK and the MASK from darks take a statistic per pixel over every integration
of every input, after calibration. :func:`prep_stack` opens each input with the row
slabs of the whole stack (those :func:`daskref.io.fits.open_stack` would use, so a
READNOISE or SUPERBIAS built from ``open_stack`` of the same files shares the very
same read tasks), runs the steps each input still lacks, and concatenates the
results along ``integration``. Memory per task stays bounded by the slab size
whatever the number of inputs.

A reference may be a lazy product of the same run (``superbias=daskref.superbias(
stack)``, ``readnoise=daskref.readnoise(stack)``): the value is taken pixel by pixel
in the same slabs, so the whole chain (read, SUPERBIAS, subtraction, jump detection
with that READNOISE, DARK) is one pass over the data. Only the value map of such a
product is used (its DQ needs the whole map first and would hold every slab).
"""

from __future__ import annotations

import functools
import operator
import os
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from daskref.algorithms.steps._common import STEP_KEYWORDS, is_done
from daskref.geometry import is_miri
from daskref.io.fits import (
    InputError,
    _stack_bytes_per_row,
    check_stackable,
    open_infos,
    row_chunks_for,
    scan,
)

from .engine import PREP_CHUNK_MB, REFTYPES, prep_many

#: Variable of each lazy product that serves as a reference value.
PRODUCT_VALUES = {"SUPERBIAS": "superbias", "READNOISE": "readnoise", "GAIN": "gain",
                  "DARK": "sci", "MASK": "dq"}


def default_steps(nir: str, miri: str | None, attrs: Mapping, have_mask: bool) -> str:
    """The default ``ssbsteps`` of a reference type for these inputs.

    ``dq_init`` runs only where a MASK is given: without one, reference pixels come
    from the geometry and there is nothing else for it to do.
    """
    steps = miri if (miri and is_miri(attrs)) else nir
    if not have_mask:
        if steps.strip().endswith(("-", "+")):  # a range such as 'rate-': spelled out
            from .steps import parse_steps

            steps = ",".join(parse_steps(steps, attrs))
        steps = ",".join(s for s in steps.split(",") if s.strip() != "dq_init")
    return steps


def _reference(value):
    """A lazy product used as a reference: its value map; anything else unchanged."""
    if isinstance(value, xr.Dataset) and value.attrs.get("reftype") in PRODUCT_VALUES:
        name = PRODUCT_VALUES[value.attrs["reftype"]]
        out = value[name]
        out.attrs = {k: v for k, v in value.attrs.items()
                     if k in ("SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2")}
        return out
    return value


def stack_paths(inputs) -> tuple[list[str], tuple[int, ...] | None]:
    """Paths and row slabs of ``inputs``: paths, or a stack from ``open_stack``."""
    if isinstance(inputs, xr.Dataset):
        paths = inputs.attrs.get("inputs")
        if not paths:
            raise ValueError("an opened stack without attrs['inputs'] cannot be calibrated; "
                             "give the file paths")
        return [str(p) for p in paths], tuple(inputs["ramp"].chunks[inputs["ramp"].dims.index("y")])
    if isinstance(inputs, (str, os.PathLike)):
        return [os.fspath(inputs)], None
    return [os.fspath(p) for p in inputs], None


def prep_stack(
    inputs,
    *,
    steps: str,
    chunk_mb: float | None = None,
    spill_dir: str | os.PathLike | None = None,
    require: Sequence[str] = (),
    group_time: str | None = None,
    **kwargs,
) -> xr.Dataset:
    """Calibrate every input through ``steps`` (what it still lacks) and stack them.

    Parameters
    ----------
    inputs : sequence of path-like, or xarray.Dataset
        Ramp files (``uncal`` or partly calibrated; each runs only the steps its
        ``S_*`` keywords say it lacks), or a stack from
        :func:`daskref.io.open_stack` (its files and row slabs are used).
    steps : str
        ``ssbsteps`` request (see :func:`daskref.prep.parse_steps`).
    chunk_mb : float, optional
        Slab size of the whole stack, MB of input (default
        :data:`~daskref.prep.engine.PREP_CHUNK_MB`).
    spill_dir : path-like, optional
        As for :func:`daskref.prep.prep`.
    require : sequence of str
        Steps every input must have had once calibrated (``"jump"``: the product
        needs the jump flags); an input without one is an error naming it.
    group_time : str, optional
        What needs the group time: every input must then have a positive ``TGROUP``
        (:func:`daskref.io.fits.scan`).
    **kwargs
        References (``mask``, ``saturation``, ``superbias``, ``linearity``, ``dark``,
        ``readnoise``, ``gain``: files, arrays, numbers where allowed, or lazy
        products of the same run) and step parameters, as for
        :func:`daskref.prep.prep`.

    Returns
    -------
    xarray.Dataset
        Lazy: ``ramp`` (integration, group, y, x) float32, ``groupdq``, ``pixeldq``
        (y, x, the OR over the inputs) and, when ramp fitting ran, the
        per-integration rate variables (``rateints``, ``rateints_err``, ``dq_ints``,
        ...). ``integration`` and ``group`` are single chunks. Coordinates ``file``,
        ``exposure`` and ``int_in_file``; attributes of the first input with
        ``inputs`` listing every path and the prep attributes.

    Raises
    ------
    daskref.io.fits.InputError
        A bad input or inputs that do not stack (checked from the headers).
    daskref.prep.PrepError
        Bad steps or a missing reference, before any graph is built.
    """
    paths, rows = stack_paths(inputs)
    infos = scan(paths, group_time=group_time)
    check_stackable(infos)
    if rows is None:
        rows = row_chunks_for(infos[0].shape[2], _stack_bytes_per_row(infos),
                              PREP_CHUNK_MB if chunk_mb is None else chunk_mb)
    kwargs = {k: (_reference(v) if k in REFTYPES else v) for k, v in kwargs.items()}
    if len({calibration_state(info.header) for info in infos}) == 1:
        # One calibration for the whole stack: every step works per integration, so
        # each task takes one row slab of every input at once (slab after slab, the
        # memory of one slab of the stack, whatever the number of inputs).
        groups = [infos]
    else:
        groups = [[info] for info in infos]
    opened = [open_infos(group, row_chunks=rows) for group in groups]
    results = prep_many(opened, steps=steps, spill_dir=spill_dir, **kwargs)
    for group, ds in zip(groups, results, strict=True):
        for step in require:
            if not is_done(ds.attrs, step):
                raise InputError(group[0].path, f"has not had the {step} step and it is "
                                 f"not requested (steps {steps!r}): add it to the steps")
    return concat_integrations(results)


def calibration_state(attrs) -> tuple[bool, ...]:
    """Which calibration steps the header says ran (the S_* keywords)."""
    return tuple(is_done(attrs, step) for step in STEP_KEYWORDS)


def concat_integrations(results: Sequence[xr.Dataset]) -> xr.Dataset:
    """Stack per-exposure results along ``integration`` (one chunk along it).

    Only the variables with an ``integration`` dimension are stacked; ``pixeldq``
    is OR-ed; per-exposure 2-D products (``rate``...) are left out.
    """
    keep = [n for n, v in results[0].data_vars.items() if "integration" in v.dims]
    parts, offset = [], 0
    for r in results:  # exposure numbers run on across the parts
        part = r[keep]
        own = (np.asarray(r["exposure"].values) if "exposure" in r.coords
               else np.zeros(r.sizes["integration"], np.int32))
        parts.append(part.assign_coords(exposure=("integration", own + offset)))
        offset += int(own.max()) + 1 if own.size else 0
    out = xr.concat(parts, dim="integration", data_vars="all", coords="different",
                    compat="equals", join="override", combine_attrs="override")
    out = out.assign_coords(integration=np.arange(out.sizes["integration"]))
    if all("pixeldq" in r for r in results):
        out["pixeldq"] = functools.reduce(operator.or_, [r["pixeldq"] for r in results])
    out = out.chunk({"integration": -1})
    attrs = dict(results[0].attrs)
    attrs["inputs"] = [p for r in results for p in (r.attrs.get("inputs") or [])]
    out.attrs = attrs
    return out
