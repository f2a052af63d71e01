"""Bad pixels found in flats: DEAD, LOW_QE, OPEN and ADJ_OPEN.

The jwst_reffiles flat-field search (the Reference File Generation WG design), with
its bugs fixed:

1. ``mean``, ``std``: each pixel's slopes over every integration of every flat
   (each counted once; jwst_reffiles stacked the first file twice), sigma-clipped at
   ``flat_mean_sigma_threshold`` (5 passes). Reference pixels (from the geometry,
   subarrays included) and slopes flagged DO_NOT_USE are left out.
2. ``smoothed``, the normalising image ``B`` (``flat_mean_normalization_method``):
   ``smoothed`` (``smoothing_type`` Box2D or median, any case, ``smoothing_box_width``),
   ``mean`` (3-sigma clipped mean of ``mean``), ``none`` (1) or ``fit2d`` (a 2-D
   polynomial surface of degree ``fit2d_degree``, which jwst_reffiles documented but
   refused). ``normalized = mean / B``, and its clipped mean and sigma over the
   detector.
3. DEAD (``dead_search``), by ``dead_search_type``:

   * ``sigma_rate``: below the dead limit and significantly low
     (``normalized < mu - dead_sigma_threshold x sigma``);
   * ``absolute_rate``: below the dead limit;
   * ``zero_signal``: a mean slope not above zero by ``dead_sigma_threshold`` of its
     standard errors (the mode the MIRI config named and jwst_reffiles lacked).

   The dead limit is ``max_dead_norm_signal``; by default 0.05, or with NIRCam and
   ``none`` normalisation the per-detector table of :data:`NIRCAM_DEAD_LIMITS` (DN/s;
   jwst_reffiles always returned 25). With ``run_dead_flux_check`` a pixel stays
   DEAD only where the mean of the **last** 4 groups of ``dead_flux_check_files``
   (jwst_reffiles averaged the first 4, against its own docs) is below
   ``flux_check`` DN: a hot pixel saturated from the start has no slope but is not
   dead.
4. LOW_QE and OPEN (``low_qe_and_open_search``): candidates are the pixels not DEAD
   with ``dead limit <= normalized < max_low_qe_norm_signal``; OPEN where every
   existing 4-connected neighbour is above ``max_open_adj_norm_signal`` (its charge
   went there), with ADJ_OPEN on its 8 neighbours; LOW_QE otherwise. Each pixel gets
   one class, in the order DEAD, OPEN, LOW_QE, ADJ_OPEN (jwst_reffiles also set DEAD
   on every low-QE and open pixel under ``sigma_rate``). The neighbour test runs on
   row slabs with a 2-pixel halo, exact at every edge and slab boundary.
5. The flags, with DO_NOT_USE on the classes in ``flat_do_not_use`` (default all
   four; jwst_reffiles' empty default left dead pixels usable), REFERENCE_PIXEL on
   the reference pixels and any manual flags.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import dask.array as da
import numpy as np
import xarray as xr

from .. import dq
from ..geometry import reference_pixel_mask
from ..kernels.badpix_flat import (
    FLAT_CLASSES,
    clipped_mean_std,
    fit_surface,
    flat_classes,
    smooth_image,
)
from ..kernels.readnoise import global_clipped_stats
from ._chunks import apply_stack, lookup_values, require_single_chunk

#: The flag of each class.
CLASS_FLAGS = {"dead": "DEAD", "open": "OPEN", "low_qe": "LOW_QE", "adj_open": "ADJ_OPEN"}
DEFAULT_DO_NOT_USE = ("DEAD", "LOW_QE", "OPEN", "ADJ_OPEN")
#: jwst_reffiles' documented NIRCam dead limits for ``none`` normalisation, DN/s.
NIRCAM_DEAD_LIMITS = {"NRCA1": 25.0, "NRCA2": 25.0, "NRCA3": 30.0, "NRCA4": 30.0,
                      "NRCALONG": 40.0, "NRCB1": 25.0, "NRCB2": 25.0, "NRCB3": 25.0,
                      "NRCB4": 25.0, "NRCBLONG": 50.0}
#: Dead limit of a normalised image.
DEFAULT_DEAD_LIMIT = 0.05


def default_dead_limit(attrs, normalization: str) -> float:
    """``max_dead_norm_signal`` when none is given (see the module docs)."""
    if normalization == "none" and str(attrs.get("INSTRUME", "")).upper() == "NIRCAM":
        detector = str(attrs.get("DETECTOR", "")).upper().replace("NRCA5", "NRCALONG")
        detector = detector.replace("NRCB5", "NRCBLONG")
        if detector in NIRCAM_DEAD_LIMITS:
            return NIRCAM_DEAD_LIMITS[detector]
    return DEFAULT_DEAD_LIMIT


def flag_bits(names: Sequence[str], what: str) -> int:
    """OR of the DQ values of flag mnemonics (any case); unknown names are errors."""
    value = 0
    for name in names:
        key = str(name).strip().upper()
        if key not in dq.PIXEL:
            raise ValueError(f"{what}: {name!r} is not a JWST DQ flag")
        value |= dq.PIXEL[key]
    return value


def mask_from_flats(
    data: xr.Dataset,
    *,
    dead_search: bool = True,
    low_qe_and_open_search: bool = True,
    dead_search_type: Literal["sigma_rate", "absolute_rate", "zero_signal"] = "sigma_rate",
    flat_mean_sigma_threshold: float = 3.0,
    flat_mean_normalization_method: Literal["smoothed", "mean", "none", "fit2d"] = "smoothed",
    smoothing_box_width: int = 15,
    smoothing_type: str = "Box2D",
    fit2d_degree: int = 3,
    dead_sigma_threshold: float = 5.0,
    max_dead_norm_signal: float | None = None,
    run_dead_flux_check: bool = False,
    flux_check: float = 45000.0,
    max_low_qe_norm_signal: float = 0.5,
    max_open_adj_norm_signal: float = 1.05,
    flat_do_not_use: Sequence[str] = DEFAULT_DO_NOT_USE,
    flux_check_image: xr.DataArray | None = None,
    manual_flags: np.ndarray | None = None,
) -> xr.Dataset:
    """Bad pixels found in flats, as a lazy Dataset.

    Parameters
    ----------
    data : xarray.Dataset
        ``rateints`` (integration, y, x) DN/s, the slopes of every integration of
        every flat (from :func:`daskref.prep.stack.prep_stack` with ``...,rate`` or
        from ``_rateints``/``_rate`` files), ``integration`` one chunk; ``dq_ints``
        (integration, y, x) optional. Attributes: the geometry keywords.
    dead_search, low_qe_and_open_search : bool
        Run the DEAD and the LOW_QE/OPEN searches.
    dead_search_type : {'sigma_rate', 'absolute_rate', 'zero_signal'}
        How DEAD is decided (module docs).
    flat_mean_sigma_threshold : float
        Clipping of the slopes per pixel and of the normalised image, sigma.
    flat_mean_normalization_method : {'smoothed', 'mean', 'none', 'fit2d'}
        The normalising image (any case).
    smoothing_box_width : int
        Box of ``smoothed``, pixels.
    smoothing_type : str
        ``Box2D`` or ``median``, any case.
    fit2d_degree : int
        Degree of the ``fit2d`` surface.
    dead_sigma_threshold : float
        Significance of ``sigma_rate`` and ``zero_signal``.
    max_dead_norm_signal : float, optional
        The dead limit (normalised units; DN/s with ``none``); default
        :func:`default_dead_limit`.
    run_dead_flux_check : bool
        Keep DEAD only where ``flux_check_image`` is below ``flux_check``.
    flux_check : float
        DN.
    max_low_qe_norm_signal, max_open_adj_norm_signal : float
        LOW_QE/OPEN candidates below the first; OPEN needs its neighbours above the
        second.
    flat_do_not_use : sequence of str
        Flags (DEAD, LOW_QE, OPEN, ADJ_OPEN, and any manual flag's) that also get
        DO_NOT_USE.
    flux_check_image : DataArray (y, x), optional
        Mean of the last 4 groups of the flux-check ramps, DN (needed with
        ``run_dead_flux_check``).
    manual_flags : ndarray (y, x) uint32, optional
        Flags to add (DO_NOT_USE is added where they hold a ``flat_do_not_use`` flag).

    Returns
    -------
    xarray.Dataset
        ``dq`` (y, x) uint32; ``class`` (y, x) int8, index in :data:`FLAT_CLASSES`
        (-1 none, -2 reference pixel); ``mean``, ``std`` (DN/s), ``smoothed``,
        ``normalized``, ``n_slopes``, the per-class maps ``dead`` ... and the 0-d
        ``norm_mean``, ``norm_sigma``, ``dead_limit``. Nothing is computed.
    """
    if "rateints" not in data:
        raise ValueError("mask_from_flats needs 'rateints': calibrate the flats through "
                         "ramp fitting (steps ...,rate) or give _rateints/_rate files")
    method = str(flat_mean_normalization_method).lower()
    kind = str(smoothing_type).lower()
    search = str(dead_search_type).lower()
    if method not in ("smoothed", "mean", "none", "fit2d"):
        raise ValueError(f"flat_mean_normalization_method {flat_mean_normalization_method!r}:"
                         " expected smoothed, mean, none or fit2d")
    if kind not in ("box2d", "median"):
        raise ValueError(f"smoothing_type {smoothing_type!r}: expected Box2D or median")
    if search not in ("sigma_rate", "absolute_rate", "zero_signal"):
        raise ValueError(f"dead_search_type {dead_search_type!r}: expected sigma_rate, "
                         "absolute_rate or zero_signal")
    if run_dead_flux_check and flux_check_image is None:
        raise ValueError("run_dead_flux_check needs dead_flux_check_files (ramps)")
    dnu = flag_bits(flat_do_not_use, "flat_do_not_use")
    require_single_chunk(data.rateints, ("integration",), "rateints")
    attrs = data.attrs
    shape = (data.sizes["y"], data.sizes["x"])
    ref = reference_pixel_mask(attrs, shape)
    slopes = data.rateints
    if "dq_ints" in data:
        slopes = slopes.where((data.dq_ints & dq.DO_NOT_USE) == 0)
    slopes = slopes.where(~xr.DataArray(ref, dims=("y", "x")))
    sigma = float(flat_mean_sigma_threshold)
    mean, std, n_slopes = apply_stack(
        lambda s: clipped_mean_std(s, sigma=sigma), slopes.astype(np.float32),
        input_core_dims=[["integration"]], output_core_dims=[[], [], []],
        output_dtypes=[np.float32, np.float32, np.int16])

    box, degree = int(smoothing_box_width), int(fit2d_degree)

    def normalising(m):  # the whole (small) image: smoothing needs neighbours, fits all
        if method == "smoothed":
            return smooth_image(m, box, kind)
        if method == "fit2d":
            return fit_surface(m, degree)
        if method == "mean":
            level = global_clipped_stats(m, None, sigma=3.0, maxiters=5)[0]
            return np.full(m.shape, level)
        return np.ones(m.shape)

    m_data = mean.data
    if isinstance(m_data, da.Array):
        whole = da.map_blocks(normalising, m_data.rechunk(-1), dtype=np.float64)
        smoothed = whole.rechunk(m_data.chunks)
    else:
        smoothed = normalising(m_data)
    smoothed = mean.copy(data=smoothed).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        normalized = (mean / smoothed.where(smoothed != 0)).astype(np.float32)

    def norm_stats(values):
        return global_clipped_stats(values, None, sigma=sigma, maxiters=5)

    nd = normalized.data
    if isinstance(nd, da.Array):
        stats = da.map_blocks(norm_stats, nd.rechunk(-1), chunks=((2,),), drop_axis=[1],
                              dtype=np.float64)
    else:
        stats = norm_stats(nd)
    norm_mean = xr.DataArray(stats[0])
    norm_sigma = xr.DataArray(stats[1])
    limit = (default_dead_limit(attrs, method) if max_dead_norm_signal is None
             else float(max_dead_norm_signal))

    if not dead_search:
        dead = xr.zeros_like(normalized, dtype=bool)
    elif search == "zero_signal":
        standard_error = std / np.sqrt(n_slopes.where(n_slopes > 0))
        dead = mean.notnull() & (mean <= dead_sigma_threshold * standard_error.fillna(0))
    else:
        dead = normalized < limit
        if search == "sigma_rate":
            dead &= normalized < norm_mean - dead_sigma_threshold * norm_sigma
    if run_dead_flux_check:
        dead &= flux_check_image < float(flux_check)

    kwargs = dict(low_limit=limit, high_limit=float(max_low_qe_norm_signal),
                  adj_limit=float(max_open_adj_norm_signal),
                  search_low=bool(low_qe_and_open_search))
    if isinstance(nd, da.Array):
        # float, so that the NaN halo outside the detector reads as "not dead"
        dead_f = dead.astype(np.float32).data
        if not isinstance(dead_f, da.Array):
            dead_f = da.from_array(dead_f, chunks=nd.chunks)
        klass = da.map_overlap(
            lambda n, d: flat_classes(n, dead=d > 0.5, **kwargs), nd,
            dead_f.rechunk(nd.chunks), depth=2, boundary={0: np.nan, 1: np.nan},
            dtype=np.int8, trim=True, align_arrays=False)
    else:
        klass = flat_classes(nd, dead=np.asarray(dead), **kwargs)
    klass = normalized.copy(data=klass)
    is_ref = xr.DataArray(ref, dims=("y", "x"))
    klass = xr.where(is_ref, np.int8(-2), klass).astype(np.int8)

    flags = [dq.PIXEL[CLASS_FLAGS[c]] for c in FLAT_CLASSES]
    values = np.array([f | (dq.DO_NOT_USE if f & dnu else 0) for f in flags]
                      + [dq.REFERENCE_PIXEL, 0], dtype=np.uint32)
    mask = klass.copy(data=lookup_values(klass.data, values))
    if manual_flags is not None:
        manual = np.asarray(manual_flags, np.uint32)
        manual = np.where(manual & dnu, manual | dq.DO_NOT_USE, manual).astype(np.uint32)
        mask = mask | xr.DataArray(manual, dims=("y", "x"))
    out = {
        "dq": mask.astype(np.uint32).assign_attrs(long_name="bad-pixel mask from flats"),
        "class": klass.assign_attrs(long_name="class index in FLAT_CLASSES"),
        "mean": mean.assign_attrs(units="DN/s"), "std": std.assign_attrs(units="DN/s"),
        "smoothed": smoothed, "normalized": normalized, "n_slopes": n_slopes,
        "norm_mean": norm_mean, "norm_sigma": norm_sigma,
        "dead_limit": xr.DataArray(np.float64(limit)),
    }
    for k, name in enumerate(FLAT_CLASSES):
        out[name] = (klass == k).astype(np.uint8)
    if flux_check_image is not None:
        out["flux_check_image"] = flux_check_image.astype(np.float32)
    params = {
        "dead_search": bool(dead_search), "low_qe_and_open_search": bool(low_qe_and_open_search),
        "dead_search_type": search, "flat_mean_sigma_threshold": sigma,
        "flat_mean_normalization_method": method, "smoothing_box_width": box,
        "smoothing_type": "Box2D" if kind == "box2d" else "median",
        "fit2d_degree": degree, "dead_sigma_threshold": float(dead_sigma_threshold),
        "max_dead_norm_signal": limit, "run_dead_flux_check": bool(run_dead_flux_check),
        "flux_check": float(flux_check), "max_low_qe_norm_signal": float(max_low_qe_norm_signal),
        "max_open_adj_norm_signal": float(max_open_adj_norm_signal),
        "flat_do_not_use": sorted({str(f).upper() for f in flat_do_not_use}),
    }
    new_attrs = {k: v for k, v in attrs.items() if k != "parameters"}
    new_attrs.update(reftype="MASK", parameters=params, classes=list(FLAT_CLASSES))
    return xr.Dataset(out, attrs=new_attrs)
