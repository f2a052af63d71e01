"""SATURATION: the raw level at which each pixel's ramps stop rising.

The inputs are raw ramps (``uncal``, the reset level included, as the jwst
``saturation`` step compares its threshold with raw groups) driven into saturation
at one or more fluxes. Per pixel (:mod:`daskref.kernels.saturation`): the plateau of
every integration that saturated, their median, and the threshold
``level x (1 - margin)`` so that every plateau group lies above it. Pixels whose
ramps never reach a plateau (too faint, dead, reference pixels, saturated from the
first group) get ``fill_value`` and ``NO_SAT_CHECK``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .. import dq
from ..kernels.saturation import saturation_levels
from ._chunks import apply_stack, require_single_chunk
from .readnoise import as_ramp_dataset


def saturation(
    data: xr.Dataset | xr.DataArray,
    *,
    margin: float = 0.002,
    plateau_sigma: float = 5.0,
    min_plateau_groups: int = 2,
    min_rise: float = 500.0,
    fill_value: float = 65535.0,
) -> xr.Dataset:
    """Saturation threshold of every pixel, as a lazy Dataset.

    Parameters
    ----------
    data : Dataset or DataArray
        Raw ramps ``ramp`` (integration, group, y, x), DN, at least 3 groups;
        ``integration`` and ``group`` single chunks.
    margin : float
        Fraction the threshold lies below the plateau (default 0.2 %: about 4 times
        the scatter of a plateau between integrations, far under 1 %).
    plateau_sigma : float
        Groups within this many standard deviations (of a difference of two reads)
        of the last group belong to the plateau.
    min_plateau_groups : int
        Fewest groups of a plateau.
    min_rise : float
        DN a plateau lies above the first group of its ramp at least.
    fill_value : float
        Threshold of the pixels without a plateau, DN (the jwst step ignores it
        where NO_SAT_CHECK is set; 65535 keeps the file within the A-to-D range).

    Returns
    -------
    xarray.Dataset
        ``saturation`` (y, x) float32 DN (the threshold), ``level`` (y, x) float32 DN
        (median plateau, NaN where none), ``spread`` (y, x) float32 DN (half the
        range of the plateaus), ``n_saturated`` (y, x) int16 (integrations that
        saturated) and ``dq`` (y, x) uint32 (NO_SAT_CHECK).
    """
    if not 0.0 <= margin < 0.5:
        raise ValueError(f"margin must be in [0, 0.5), not {margin}")
    if int(min_plateau_groups) < 1:
        raise ValueError(f"min_plateau_groups must be at least 1, not {min_plateau_groups}")
    ds = as_ramp_dataset(data)
    require_single_chunk(ds.ramp, ("integration", "group"), "ramp")
    if ds.sizes["group"] < 3:
        raise ValueError(f"the saturation search needs at least 3 groups, not "
                         f"{ds.sizes['group']}")
    kwargs = dict(plateau_sigma=float(plateau_sigma), min_plateau_groups=int(min_plateau_groups),
                  min_rise=float(min_rise))
    level, n_sat, spread = apply_stack(
        lambda v: saturation_levels(v, **kwargs), ds.ramp,
        input_core_dims=[["integration", "group"]],
        output_core_dims=[[], [], []],
        output_dtypes=[np.float32, np.int16, np.float32],
    )
    found = np.isfinite(level)
    threshold = xr.where(found, level * np.float32(1.0 - margin), np.float32(fill_value))
    dq_map = xr.where(found, np.uint32(0), np.uint32(dq.NO_SAT_CHECK)).astype(np.uint32)
    params = {"margin": float(margin), "plateau_sigma": float(plateau_sigma),
              "min_plateau_groups": int(min_plateau_groups), "min_rise": float(min_rise),
              "fill_value": float(fill_value)}
    attrs = {k: v for k, v in ds.attrs.items() if k != "parameters"}
    attrs.update(reftype="SATURATION", parameters=params)
    out = {
        "saturation": threshold.astype(np.float32).assign_attrs(
            units="DN", long_name="saturation threshold (raw, reset level included)"),
        "level": level.assign_attrs(units="DN", long_name="median plateau"),
        "spread": spread.assign_attrs(units="DN", long_name="half range of the plateaus"),
        "n_saturated": n_sat,
        "dq": dq_map,
    }
    return xr.Dataset(out, attrs=attrs)
