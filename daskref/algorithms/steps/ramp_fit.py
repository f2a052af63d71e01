"""Ramp fitting step (``S_RAMP``): rate and rateints products, lazily, per pixel slab."""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr

from daskref import dq
from daskref.algorithms._chunks import apply_stack, require_single_chunk
from daskref.algorithms.steps._common import mark_done
from daskref.algorithms.steps._reference import reference_dataarray, with_dq_arrays
from daskref.kernels.ramp_fit import OPT_NAMES, RATE_NAMES, fit_ramps

#: Output variables: (core dims after the pixel axes, dtype, units).
_OUTPUTS: dict[str, tuple[tuple[str, ...], type, str]] = {
    "rate": ((), np.float32, "DN/s"),
    "rate_err": ((), np.float32, "DN/s"),
    "rate_var_poisson": ((), np.float32, "(DN/s)^2"),
    "rate_var_rnoise": ((), np.float32, "(DN/s)^2"),
    "dq": ((), dq.PIXEL_DTYPE, ""),
    "rateints": (("integration",), np.float32, "DN/s"),
    "rateints_err": (("integration",), np.float32, "DN/s"),
    "rateints_var_poisson": (("integration",), np.float32, "(DN/s)^2"),
    "rateints_var_rnoise": (("integration",), np.float32, "(DN/s)^2"),
    "dq_ints": (("integration",), dq.PIXEL_DTYPE, ""),
    "slope": (("integration", "segment"), np.float32, "DN/s"),
    "sigslope": (("integration", "segment"), np.float32, "DN/s"),
    "var_poisson": (("integration", "segment"), np.float32, "(DN/s)^2"),
    "var_rnoise": (("integration", "segment"), np.float32, "(DN/s)^2"),
    "yint": (("integration", "segment"), np.float32, "DN"),
    "sigyint": (("integration", "segment"), np.float32, "DN"),
    "weights": (("integration", "segment"), np.float32, "(DN/s)^-2"),
    "pedestal": (("integration",), np.float32, "DN"),
    "crmag": (("integration", "cr"), np.float32, "DN"),
}


def _block_fit(ramp, groupdq, pixeldq, readnoise, gain, *, names, **kwargs):
    """Run :func:`fit_ramps` on an apply_ufunc block with pixel axes first.

    Inputs arrive as (y, x, integration, group) and (y, x); outputs leave as
    (y, x, *core dims), in the order of ``names``.
    """
    out = fit_ramps(
        np.moveaxis(ramp, (-2, -1), (0, 1)),
        np.moveaxis(groupdq, (-2, -1), (0, 1)),
        readnoise=readnoise,
        gain=gain,
        pixeldq=pixeldq,
        **kwargs,
    )
    results = []
    for name in names:
        a = out[name]
        ncore = a.ndim - 2
        results.append(np.moveaxis(a, tuple(range(ncore)), tuple(range(2, 2 + ncore))))
    return tuple(results)


def ramp_fit(
    ds: xr.Dataset,
    *,
    readnoise,
    gain,
    weighting: Literal["optimal", "unweighted"] = "optimal",
    save_opt: bool = False,
    max_segments: int = 4,
) -> xr.Dataset:
    """Fit ramps to rates, the JWST ``ramp_fitting`` way, lazily.

    Parameters
    ----------
    ds : xarray.Dataset
        ``ramp`` (integration, group, y, x), DN; optional ``groupdq`` (same dims,
        uint8; absent means all good) and ``pixeldq`` (y, x, uint32). Attributes give
        ``TGROUP`` (s, required), ``NFRAMES`` (default 1) and ``GROUPGAP`` (default 0).
        ``integration`` and ``group`` must each be one chunk; ``y``/``x`` may be
        chunked freely.
    readnoise : float, numpy.ndarray or xarray.DataArray (y, x), DN
        CDS read noise (READNOISE reference convention); full-frame references are
        cut to the data's subarray.
    gain : float, numpy.ndarray or xarray.DataArray (y, x), e-/DN
    weighting : {"optimal", "unweighted"}
        Fixsen et al. (2000) S/N-dependent weights, or plain least squares.
    save_opt : bool
        Add the segment-level products (the pipeline's ``_fitopt`` content).
    max_segments : int
        Length of the ``segment`` axis of the optional products (``cr`` axis:
        ``max_segments - 1``, at least 1). Rates use every segment regardless.

    Returns
    -------
    xarray.Dataset
        Lazy when ``ds`` is dask-backed. Variables (units in their attrs):
        ``rate``, ``rate_err``, ``rate_var_poisson``, ``rate_var_rnoise`` (y, x),
        DN/s and (DN/s)^2; ``dq`` (y, x) uint32; ``rateints``, ``rateints_err``,
        ``rateints_var_poisson``, ``rateints_var_rnoise``, ``dq_ints``
        (integration, y, x). With ``save_opt``: ``slope``, ``sigslope``,
        ``var_poisson``, ``var_rnoise``, ``yint``, ``sigyint``, ``weights``
        (integration, segment, y, x), ``pedestal`` (integration, y, x) and ``crmag``
        (integration, cr, y, x). ``pixeldq`` is OR'ed into ``dq``/``dq_ints``. The
        attributes are those of ``ds`` with ``S_RAMP = "COMPLETE"``.

    Notes
    -----
    The rules and formulas (segments, weights, variances, combination, DQ) are those
    of :func:`daskref.kernels.ramp_fit.fit_ramps`, applied independently to every
    pixel, so any ``y``/``x`` chunking gives the same result.

    References
    ----------
    Fixsen, D. J. et al. 2000, PASP 112, 1350; JWST pipeline ``ramp_fitting`` step.
    """
    if "TGROUP" not in ds.attrs:
        raise ValueError("ramp_fit needs the group time: ds.attrs['TGROUP'] (s) is missing")
    if max_segments < 1:
        raise ValueError(f"max_segments must be >= 1, got {max_segments}")
    ds = with_dq_arrays(ds)
    require_single_chunk(ds["ramp"], ("integration", "group"), name="ramp")
    require_single_chunk(ds["groupdq"], ("integration", "group"), name="groupdq")
    rn = reference_dataarray(readnoise, ds, name="readnoise")
    gn = reference_dataarray(gain, ds, name="gain")

    names = list(RATE_NAMES) + (list(OPT_NAMES) if save_opt else [])
    sizes = {"segment": max_segments, "cr": max(max_segments - 1, 1)} if save_opt else {}
    kwargs = dict(
        names=names,
        tgroup=float(ds.attrs["TGROUP"]),
        nframes=int(ds.attrs.get("NFRAMES", 1)),
        groupgap=int(ds.attrs.get("GROUPGAP", 0)),
        weighting=weighting,
        save_opt=save_opt,
        max_segments=max_segments,
    )
    results = apply_stack(
        _block_fit,
        ds["ramp"],
        ds["groupdq"],
        ds["pixeldq"],
        rn,
        gn,
        kwargs=kwargs,
        input_core_dims=[["integration", "group"], ["integration", "group"], [], [], []],
        output_core_dims=[list(_OUTPUTS[n][0]) for n in names],
        output_dtypes=[_OUTPUTS[n][1] for n in names],
        output_sizes=sizes if sizes else None,
    )
    out = xr.Dataset(attrs=mark_done(ds, "rate").attrs)
    for name, da_ in zip(names, results, strict=True):
        dims = _OUTPUTS[name][0] + ("y", "x")
        da_ = da_.transpose(*dims)
        units = _OUTPUTS[name][2]
        if units:
            da_.attrs["units"] = units
        out[name] = da_
    return out
