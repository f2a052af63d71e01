"""The bad-pixel MASK from flats (``MaskModel``): DEAD, LOW_QE, OPEN, ADJ_OPEN.

Beside the reference file: ``<name>_flat_diagnostics.fits`` (the mean, std, smoothed
and normalised flat images and one image per class) and, with matplotlib,
``<name>_flat_diagnostics.png`` (the normalised flat with each class marked, and its
histogram with the thresholds).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import xarray as xr

from .. import dq
from ..algorithms import badpix_flat as _bpf
from ..geometry import full_frame_shape, subarray_window
from ..io.crds import CrdsMeta
from ..io.fits import InputError, open_exposure, open_slopes, read_info
from ..io.manual_flags import default_file, read_manual_flags
from ..io.pictures import pyplot, save_png
from ..kernels.badpix_flat import FLAT_CLASSES
from ._base import (
    ancillary_path,
    check_computed,
    parameter_keywords,
    write_ancillary,
    write_product,
)
from ._inputs import prepared_stack, split_kwargs
from .mask import used_flags
from .registry import Param, RefType, register

log = logging.getLogger("daskref")

REFTYPE = "MASK"
DATAMODEL = "MaskModel"
DESCRIPTION = "Bad pixels from {n_inputs} flats (daskref)"
#: Header keywords of the flat search's parameters (jwst_reffiles' names).
FLAT_KEYWORDS = {
    "flat_mean_sigma_threshold": "BPMSIGMA", "smoothing_box_width": "BPMSMOTH",
    "dead_sigma_threshold": "BPMDEDSG", "max_dead_norm_signal": "BPMMXDED",
    "max_low_qe_norm_signal": "BPMMXLQE", "max_open_adj_norm_signal": "BPMMXOAD",
    "dead_search": "BPFDEAD", "low_qe_and_open_search": "BPFLOWQE",
    "dead_search_type": "BPFSCHTP", "flat_mean_normalization_method": "BPFNORM",
    "smoothing_type": "BPFSMTYP", "run_dead_flux_check": "BPFFXCHK",
    "flux_check": "BPFFXLIM", "manual_flag_file": "BPFMANFL",
}
SLOPE_SUFFIXES = ("_rate.fits", "_rateints.fits")
#: Groups at the end of a ramp averaged by the dead-pixel flux check.
FLUX_CHECK_GROUPS = 4


def is_slope_file(path) -> bool:
    """A ``_rate``/``_rateints`` file (by name)."""
    return str(path).endswith(SLOPE_SUFFIXES)


def build_from_flats(inputs, *, steps: str | None = None, chunk_mb: float | None = None,
                     spill_dir: str | os.PathLike | None = None,
                     manual_flag_file: str = "default",
                     dead_flux_check_files: list[str] | None = None,
                     **kwargs) -> xr.Dataset:
    """Lazy MASK product from flats.

    Parameters
    ----------
    inputs : sequence of path-like, or xarray.Dataset
        Flat exposures: ``uncal`` or partly calibrated ramps (calibrated through ramp
        fitting in the same graph, default steps ``rate-``), or ``_rateints``/``_rate``
        files (used as they are; all inputs of one kind); or a stack with
        ``rateints``.
    steps : str, optional
        ``ssbsteps`` of the ramps (default ``rate-``; ``dq_init`` only with a mask).
    chunk_mb, spill_dir
        Slab size of the whole stack (MB of input) and refpix spill directory.
    manual_flag_file : str
        ``default`` (the file daskref ships for the detector, if any), ``""`` (none)
        or a path (:mod:`daskref.io.manual_flags`).
    dead_flux_check_files : list of str, optional
        Ramps (not ramp-fitted) for ``run_dead_flux_check``: the mean of their last
        4 groups must be below ``flux_check`` for a pixel to stay DEAD.
    **kwargs
        References and step parameters of the calibration, and the parameters of
        :func:`daskref.algorithms.badpix_flat.mask_from_flats`.
    """
    refs, prep_params, params = split_kwargs(kwargs)
    params = MASK_FROM_FLATS.resolve(params)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if isinstance(inputs, xr.Dataset) and "rateints" in inputs:
        stack = inputs
    elif not isinstance(inputs, xr.Dataset) and all(is_slope_file(p) for p in inputs):
        stack = open_slopes(list(inputs), chunk_mb=chunk_mb)
    elif not isinstance(inputs, xr.Dataset) and any(is_slope_file(p) for p in inputs):
        odd = next(p for p in inputs if is_slope_file(p))
        raise InputError(odd, "is a slope file among ramps: give all flats as ramps or "
                         "all as _rate/_rateints files")
    else:
        stack = prepared_stack(MASK_FROM_FLATS, inputs, steps=steps, refs=refs,
                               prep_params=prep_params, chunk_mb=chunk_mb,
                               spill_dir=spill_dir)
    attrs = stack.attrs
    shape = (stack.sizes["y"], stack.sizes["x"])
    rows = stack.rateints.chunks[1] if stack.rateints.chunks else None
    flux_image = None
    if params.get("run_dead_flux_check"):
        if not dead_flux_check_files:
            raise InputError(None, "run_dead_flux_check needs dead_flux_check_files (ramps "
                             "of the flats, not ramp-fitted)")
        flux_image = flux_check_image(dead_flux_check_files, attrs, shape, rows)
    manual, manual_name = manual_flags_for(manual_flag_file, attrs, shape)
    product = _bpf.mask_from_flats(stack, flux_check_image=flux_image, manual_flags=manual,
                                   **params)
    product.attrs["parameters"].update(
        manual_flag_file=manual_name,
        dead_flux_check_files=[os.path.basename(str(p)) for p in dead_flux_check_files or ()])
    product.attrs["reflabel"] = MASK_FROM_FLATS.reflabel
    return product


def flux_check_image(paths, attrs, shape, rows) -> xr.DataArray:
    """Mean over files of the mean of each file's last 4 groups (every integration), DN.

    Raises
    ------
    InputError
        A ramp-fitted file, fewer than 4 groups, or another detector or frame size.
    """
    images = []
    for path in paths:
        info = read_info(path)
        if info.shape[1] < FLUX_CHECK_GROUPS:
            raise InputError(path, f"has {info.shape[1]} groups; the dead flux check "
                             f"averages the last {FLUX_CHECK_GROUPS}")
        if info.shape[2:] != shape or info.header.get("DETECTOR") != attrs.get("DETECTOR"):
            raise InputError(path, f"is {info.header.get('DETECTOR')} {info.shape[2:]}, but "
                             f"the flats are {attrs.get('DETECTOR')} {shape}")
        ramp = open_exposure(path, row_chunks=rows).ramp
        images.append(ramp.isel(group=slice(-FLUX_CHECK_GROUPS, None))
                      .astype(np.float32).mean(("integration", "group")))
    return sum(images[1:], images[0]) / len(images)


def manual_flags_for(manual_flag_file: str | None, attrs, shape):
    """(flag map (y, x) uint32 or None, the file's name for the HISTORY).

    Full-frame coordinates are moved into the subarray; rows outside it flag nothing.
    """
    name = str(manual_flag_file or "")
    if not name:
        return None, ""
    if name.lower() == "default":
        path = default_file(str(attrs.get("INSTRUME", "")), str(attrs.get("DETECTOR", "")))
        if path is None:
            return None, "default (none for this detector)"
    else:
        path = name
    rows = read_manual_flags(path)
    flags = np.zeros(shape, np.uint32)
    ys, xs = subarray_window(attrs, shape)
    y0, y1, x0, x1 = ys.start, ys.stop, xs.start, xs.stop
    full_y, full_x = full_frame_shape(attrs)
    for row in rows:
        xa = 0 if row.x[0] is None else row.x[0]
        xb = full_x - 1 if row.x[1] is None else row.x[1]
        ya = 0 if row.y[0] is None else row.y[0]
        yb = full_y - 1 if row.y[1] is None else row.y[1]
        sx = slice(max(xa, x0) - x0, max(min(xb + 1, x1) - x0, 0))
        sy = slice(max(ya, y0) - y0, max(min(yb + 1, y1) - y0, 0))
        flags[sy, sx] |= np.uint32(dq.PIXEL[row.flag])
    return flags, os.path.basename(str(path))


def flat_images(ds: xr.Dataset) -> list:
    """The diagnostic images of the flat half: (EXTNAME, array, BUNIT)."""
    cls = ds["class"].values
    images = [("CLASS", cls.astype(np.int16), None),
              ("MEAN", ds["mean"].values.astype(np.float32), "DN/s"),
              ("STD", ds["std"].values.astype(np.float32), "DN/s"),
              ("SMOOTHED", ds["smoothed"].values.astype(np.float32), "DN/s"),
              ("NORMALIZED", ds["normalized"].values.astype(np.float32), None),
              ("N_SLOPES", ds["n_slopes"].values.astype(np.int16), None)]
    images += [(name.upper(), (cls == k).astype(np.uint8), None)
               for k, name in enumerate(FLAT_CLASSES)]
    if "flux_check_image" in ds:
        images.append(("FLUX_CHECK", ds["flux_check_image"].values.astype(np.float32), "DN"))
    return images


def write_flat_diagnostics(ds: xr.Dataset, path) -> list:
    """Write the flat half's diagnostic FITS (and PNG with matplotlib); their paths."""
    out = [write_ancillary(ds, path, "flat_diagnostics", "BAD PIXEL DIAGNOSTICS (FLATS)",
                           "mask_from_flats", flat_images(ds))]
    png = flat_picture(ds, ancillary_path(path, "flat_diagnostics").with_suffix(".png"))
    if png is not None:
        out.append(png)
    return out


def flat_picture(ds: xr.Dataset, png):
    """The normalised flat with every class in its colour, and its histogram.

    Returns the path, or None without matplotlib (an optional extra).
    """
    plt = pyplot(png)
    if plt is None:
        return None
    norm = ds["normalized"].values
    cls = ds["class"].values
    params = ds.attrs.get("parameters", {})
    finite = norm[np.isfinite(norm)]
    lo, hi = (np.percentile(finite, [0.5, 99.5]) if finite.size else (0.0, 1.0))
    colours = {"dead": "black", "open": "red", "low_qe": "orange", "adj_open": "magenta"}
    fig, (ax_img, ax_hist) = plt.subplots(1, 2, figsize=(13, 6),
                                          gridspec_kw={"width_ratios": [1.1, 1]})
    im = ax_img.imshow(norm, origin="lower", cmap="gray", vmin=lo, vmax=hi,
                       interpolation="nearest")
    fig.colorbar(im, ax=ax_img, fraction=0.046, label="normalised signal")
    for name in ("adj_open", "low_qe", "dead", "open"):  # the rarest drawn last, on top
        ys, xs = np.nonzero(cls == FLAT_CLASSES.index(name))
        ax_img.scatter(xs, ys, s=6, c=colours[name], marker="s", linewidths=0,
                       label=f"{name.upper()} ({ys.size})")
    ax_img.legend(loc="upper right", fontsize=8, markerscale=2, framealpha=0.8)
    ax_img.set_title(f"{ds.attrs.get('DETECTOR', '')} {ds.attrs.get('SUBARRAY', '')}: "
                     "normalised flat and flat classes")
    ax_img.set_xlabel("x (pixel)")
    ax_img.set_ylabel("y (pixel)")
    top = max(float(np.nanmax(finite)) if finite.size else 1.5, 1.5)
    ax_hist.hist(finite, bins=np.linspace(0, min(top, 3.0), 301), color="steelblue",
                 log=True)
    limit = float(ds["dead_limit"])
    lines = [(limit, "dead limit", "black"),
             (params.get("max_low_qe_norm_signal"), "low QE limit", "orange"),
             (params.get("max_open_adj_norm_signal"), "open neighbour limit", "red")]
    if params.get("dead_search_type") == "sigma_rate":
        cut = float(ds["norm_mean"]) - params["dead_sigma_threshold"] * float(ds["norm_sigma"])
        lines.append((cut, "sigma cut", "grey"))
    for value, label, colour in lines:
        if value is not None:
            ax_hist.axvline(value, color=colour, ls="--", label=f"{label} {value:.3g}")
    ax_hist.set_xlabel("normalised signal")
    ax_hist.set_ylabel("pixels")
    ax_hist.legend(fontsize=8)
    ax_hist.set_title("histogram of the normalised flat")
    fig.tight_layout()
    return save_png(fig, png, dpi=90)


def write(ds: xr.Dataset, path, meta: CrdsMeta):
    """Write a computed MASK-from-flats product and its diagnostics."""
    check_computed(ds, ("dq", "class", "normalized"))
    mask = ds["dq"].values.astype(np.uint32)
    extra = parameter_keywords(ds.attrs.get("parameters", {}), FLAT_KEYWORDS)
    out = write_product(ds, path, meta, reftype=REFTYPE, datamodel=DATAMODEL,
                        function="mask_from_flats", template=DESCRIPTION,
                        images=[("DQ", mask, None)], dq_def=dq.dq_def(used_flags(mask)),
                        use_readpatt=True, extra=extra)
    write_flat_diagnostics(ds, path)
    return out


MASK_FROM_FLATS = register(RefType(
    reflabel="badpix_from_flats", reftype=REFTYPE, datamodel=DATAMODEL,
    summary="bad-pixel MASK from flats (dead, low QE, open, adjacent to open)",
    inputs="flats", imtypes="F+", ssbsteps="rate-", requires=("rate",),
    algorithm=_bpf.mask_from_flats, build=build_from_flats, write=write,
    input_flag="flats",
    params=[
        Param("dead_search", "search for DEAD pixels"),
        Param("low_qe_and_open_search", "search for LOW_QE, OPEN and ADJ_OPEN pixels"),
        Param("dead_search_type", "how DEAD is decided: sigma_rate, absolute_rate, "
              "zero_signal"),
        Param("flat_mean_sigma_threshold", "clipping of the slopes and of the normalised "
              "image, sigma", aliases=("sigma_threshold",)),
        Param("flat_mean_normalization_method", "normalising image: smoothed, mean, none, "
              "fit2d", aliases=("normalization_method",)),
        Param("smoothing_box_width", "box of the smoothing, pixels"),
        Param("smoothing_type", "Box2D or median (any case)"),
        Param("fit2d_degree", "degree of the fit2d surface"),
        Param("dead_sigma_threshold", "significance of sigma_rate and zero_signal, sigma"),
        Param("max_dead_norm_signal", "dead limit of the normalised signal (default 0.05; "
              "NIRCam with 'none': the per-detector DN/s table)"),
        Param("run_dead_flux_check", "keep DEAD only where the flux-check ramps end below "
              "flux_check"),
        Param("dead_flux_check_files", "ramps for the dead flux check (comma list)"),
        Param("flux_check", "DN: the last groups of a dead pixel stay below this"),
        Param("max_low_qe_norm_signal", "LOW_QE/OPEN candidates below this normalised "
              "signal"),
        Param("max_open_adj_norm_signal", "OPEN where the 4 neighbours are above this"),
        Param("manual_flag_file", "'default' (daskref's list for the detector), '' or a "
              "file of 'x y flag' rows"),
        Param("flat_do_not_use", "flags that also get DO_NOT_USE (comma list)",
              aliases=("do_not_use",)),
    ],
))
