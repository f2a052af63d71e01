"""Inputs of the reference types that need calibrated ramps: prep, stacked, lazily."""

from __future__ import annotations

import os
from collections.abc import Mapping

import xarray as xr

from ..algorithms.steps._reference import reference_dataarray
from ..io.fits import read_info
from ..io.products import open_reference
from ..prep.engine import REFTYPES as PREP_REFERENCES
from ..prep.engine import STEP_PARAMETERS, check_reference_fit
from ..prep.stack import _reference, default_steps, prep_stack, stack_paths
from .registry import RefType

#: Every step parameter of the prep engine (the flags and keys they share).
PREP_PARAMETERS = {k: v for step in STEP_PARAMETERS.values() for k, v in step.items()}


def split_kwargs(kwargs: Mapping) -> tuple[dict, dict, dict]:
    """(references, prep step parameters, algorithm parameters) of an API call."""
    refs = {k: v for k, v in kwargs.items() if k in PREP_REFERENCES}
    prep = {k: v for k, v in kwargs.items() if k in PREP_PARAMETERS}
    rest = {k: v for k, v in kwargs.items() if k not in refs and k not in prep}
    return refs, prep, rest


def is_prepped(inputs) -> bool:
    """True for a Dataset that already came out of the prep engine."""
    return isinstance(inputs, xr.Dataset) and "prep_steps" in inputs.attrs


def prepared_stack(rt: RefType, inputs, *, steps: str | None, refs: Mapping,
                   prep_params: Mapping, chunk_mb: float | None,
                   spill_dir: str | os.PathLike | None) -> xr.Dataset:
    """The calibrated, stacked inputs of a reference type (lazy).

    ``steps`` None takes the type's default ``ssbsteps`` for the inputs' instrument
    (without ``dq_init`` when no MASK is given). A Dataset from :func:`prep_stack`
    is returned as it is.
    """
    if is_prepped(inputs):
        return inputs
    if steps is None:
        paths, _ = stack_paths(inputs)
        attrs = read_info(paths[0]).header if paths else {}
        steps = default_steps(rt.ssbsteps, rt.ssbsteps_miri, attrs,
                              have_mask=refs.get("mask") is not None)
    stack = prep_stack(inputs, steps=steps, chunk_mb=chunk_mb, spill_dir=spill_dir,
                       require=rt.requires, group_time=group_time_for(rt), **refs,
                       **prep_params)
    stack.attrs["prep_references"] = {k: describe_reference(v) for k, v in refs.items()
                                      if v is not None}
    return stack


def group_time_for(rt: RefType) -> str | None:
    """What to name when an input lacks the TGROUP the type needs (None: not needed)."""
    if not rt.needs_group_time:
        return None
    same = rt.reflabel == rt.reftype.lower()
    return f"the {rt.reftype}" if same else f"the {rt.reftype} ({rt.reflabel})"


def describe_reference(value) -> str:
    """How a calibration reference is named in the HISTORY."""
    if isinstance(value, (str, os.PathLike)):
        return os.path.basename(os.fspath(value))
    if isinstance(value, xr.Dataset) and "reftype" in value.attrs:
        return f"the {value.attrs['reftype']} made in the same run"
    if isinstance(value, (int, float)):
        return repr(float(value))
    return type(value).__name__


def gain_map(gain, stack: xr.Dataset):
    """The gain (e-/DN) aligned with the stack: a number, or a (y, x) DataArray; or None."""
    if gain is None:
        return None
    if isinstance(gain, (int, float)) and not isinstance(gain, bool):
        return float(gain)
    if isinstance(gain, (str, os.PathLike)):
        ref = open_reference(gain, "gain")
        shape = tuple(int(stack.sizes[d]) for d in ("integration", "group", "y", "x"))
        inputs = stack.attrs.get("inputs") or [""]
        check_reference_fit("gain", ref, stack.attrs, shape, str(inputs[0]))
        gain = ref["gain"]
    gain = _reference(gain)
    return reference_dataarray(gain, stack, name="gain")
