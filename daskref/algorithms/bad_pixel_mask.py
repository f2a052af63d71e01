"""The complete bad-pixel mask: the classes found in darks OR those found in flats.

Where a pixel is HOT (from the darks) and DEAD (from the flats), HOT wins: a pixel
saturated by its own dark current has no slope in a flat, which is not a dead pixel
(DO_NOT_USE is kept). The halves' own variables are kept under ``darks_`` and
``flats_`` names for their diagnostics.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .. import dq

#: Keywords the two halves must share.
GEOMETRY_KEYS = ("INSTRUME", "DETECTOR", "SUBARRAY", "SUBSTRT1", "SUBSTRT2", "SUBSIZE1",
                 "SUBSIZE2")


def geometry_mismatch(darks: xr.Dataset, flats: xr.Dataset) -> str | None:
    """How the two halves' detectors or windows differ (None when they agree)."""
    for key in GEOMETRY_KEYS:
        a, b = darks.attrs.get(key), flats.attrs.get(key)
        if a is not None and b is not None and str(a).upper() != str(b).upper():
            return f"{key} is {b!r} in the flats but {a!r} in the darks"
    if (darks.sizes["y"], darks.sizes["x"]) != (flats.sizes["y"], flats.sizes["x"]):
        return (f"the flats are {flats.sizes['y']} x {flats.sizes['x']} pixels but the darks "
                f"{darks.sizes['y']} x {darks.sizes['x']}")
    return None


def combine_masks(darks: xr.Dataset | None = None, flats: xr.Dataset | None = None
                  ) -> xr.Dataset:
    """One mask from the MASK products of darks and of flats (either may be None).

    Parameters
    ----------
    darks : xarray.Dataset, optional
        From :func:`daskref.algorithms.badpix_dark.mask_from_darks`.
    flats : xarray.Dataset, optional
        From :func:`daskref.algorithms.badpix_flat.mask_from_flats`.

    Returns
    -------
    xarray.Dataset
        ``dq`` (y, x) uint32 and every variable of each half, prefixed ``darks_`` or
        ``flats_``; attributes of the flats (or darks), ``inputs`` of both, and
        ``parameters`` of both. Lazy when the halves are.

    Raises
    ------
    ValueError
        Neither half, or halves of different detectors or windows.
    """
    if darks is None and flats is None:
        raise ValueError("combine_masks needs the darks' mask, the flats' mask or both")
    halves = {"darks": darks, "flats": flats}
    if darks is not None and flats is not None:
        problem = geometry_mismatch(darks, flats)
        if problem:
            raise ValueError(problem)
        mask = darks["dq"] | flats["dq"]
        hot_and_dead = ((mask & dq.HOT) != 0) & ((mask & dq.DEAD) != 0)
        mask = xr.where(hot_and_dead, mask & ~np.uint32(dq.DEAD), mask)
    else:
        mask = (darks if darks is not None else flats)["dq"]
    out = {"dq": mask.astype(np.uint32)}
    attrs: dict = {}
    params: dict = {}
    inputs: list = []
    for label, half in halves.items():
        if half is None:
            continue
        for name, var in half.data_vars.items():
            out[f"{label}_{name}"] = var
        attrs.update({k: v for k, v in half.attrs.items()
                      if k not in ("parameters", "inputs", "classes")})
        params.update(half.attrs.get("parameters", {}))
        inputs += list(half.attrs.get("inputs", []))
        attrs[f"{label}_attrs"] = dict(half.attrs)
    attrs.update(reftype="MASK", parameters=params, inputs=inputs,
                 halves=[k for k, v in halves.items() if v is not None])
    return xr.Dataset(out, attrs=attrs)
