"""GAIN reference files (``GainModel``: SCI, e-/DN) by photon transfer.

Beside the reference file: ``<name>_ptc.fits``, the diagnostics (``PTC``: the points
of every amplifier, pair and group with the fit; ``AMPLIFIERS``: each amplifier's
gain, its error, the fit and the IPC measured; ``BOXES``: each box's gain and error;
``GAIN_ERR``: the error of every pixel's gain, e-/DN, as an image, since
``GainModel`` has no ERR array) and, with matplotlib, ``<name>_ptc.png`` (variance
against mean signal per amplifier, with the fits). The per-amplifier gains, errors,
fit residuals and IPC are in the HISTORY and in ``GAINAMPn`` / ``GAINERRn`` /
``GAINRMSn`` / ``IPCALPHn``.

In ``mkrefs`` every image set of one detector and readout (``imtypes: DDFF``: each
flat pair with a dark pair; ``FF``: flat pairs alone) goes into one photon-transfer
fit (:attr:`~daskref.reftypes.registry.RefType.merge_sets`): one GAIN per detector
from all its levels.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import xarray as xr

from ..algorithms import gain as _gain
from ..io.crds import CrdsMeta
from ..io.fits import InputError, read_info
from ..io.pictures import pyplot, save_png
from ..kernels.linearity import evaluate
from ._base import ancillary_path, check_computed, open_raw, parameter_keywords, write_product
from .registry import Param, RefType, register

log = logging.getLogger("daskref")

REFTYPE = "GAIN"
DATAMODEL = "GainModel"
DESCRIPTION = "Gain by photon transfer from {n_inputs} files (daskref)"
VARIABLES = ("gain", "gain_err", "box_gain", "box_gain_err", "box_ratio_err", "box_alpha",
             "amp_gain", "amp_gain_err", "amp_rms", "amp_alpha", "amp_alpha_err", "amp_coeffs",
             "amp_mean", "amp_var", "amp_var_measured", "amp_cov")
KEYWORDS = {"box_size": "GAINBOX", "clip_sigma": "GAINCLIP", "fit_degree": "GAINDEG",
            "ipc_correction": "GAINIPC"}


def is_dark(path) -> bool:
    """A dark exposure, by its EXP_TYPE."""
    return "DARK" in str(read_info(path).header.get("EXP_TYPE", "")).upper()


def _names(files) -> list:
    """The files of a list of paths or of an opened stack (its ``inputs``)."""
    if isinstance(files, (xr.Dataset, xr.DataArray)):
        return list(files.attrs.get("inputs", []))
    return [files] if isinstance(files, (str, os.PathLike)) else list(files)


def split_inputs(paths, darks):
    """(flats, darks) of the inputs; darks by EXP_TYPE unless given.

    ``paths`` and ``darks`` are lists of files or opened stacks (mkrefs' own, whose
    ``inputs`` are checked).

    Raises
    ------
    InputError
        Unpaired flats or darks (naming the file without a partner), fewer than two
        flat pairs (levels), or no flats.
    """
    if isinstance(paths, (xr.Dataset, xr.DataArray)):
        flats = paths
    elif darks is None:
        paths = _names(paths)
        darks = [p for p in paths if is_dark(p)]
        flats = [p for p in paths if p not in darks]
    else:
        flats = _names(paths)
    flat_names, dark_names = _names(flats), _names(darks) if darks is not None else []
    if not flat_names:
        raise InputError(None, "photon transfer needs pairs of flats; none given")
    for what, files in (("flats", flat_names), ("darks", dark_names)):
        if len(files) % 2:
            raise InputError(files[-1], f"has no partner: the {len(files)} {what} do not "
                             "make pairs (consecutive files are a pair)")
    if len(flat_names) < 4:
        raise InputError(None, f"{len(flat_names) // 2} flat pair: photon transfer needs "
                         "pairs at two or more levels")
    return flats, (darks if darks is not None and len(dark_names) else [])


def check_set(flats, darks) -> None:
    """Refuse a set mkrefs formed before anything is read (as :func:`split_inputs`)."""
    split_inputs(list(flats), list(darks))


def build(inputs, *, darks: list[str] | None = None, chunk_mb: float | None = None,
          **params) -> xr.Dataset:
    """Lazy GAIN product from flat pairs at several levels and dark pairs.

    Parameters
    ----------
    inputs : sequence of path-like, or mapping
        Raw ramps: pairs of flats (consecutive files, one level each) and, unless
        ``darks`` is given, the dark pairs (files whose EXP_TYPE names a dark); or
        ``{"flats": ..., "darks": ...}`` (mkrefs' form: lists of files or opened
        stacks, each in pair order).
    darks : list of path-like, optional
        The dark pairs.
    chunk_mb : float, optional
        Slab size of each stack, MB.
    **params
        Those of :func:`daskref.algorithms.gain.gain`.
    """
    params = GAIN_TYPE.resolve(params)
    if isinstance(inputs, Mapping):
        darks = inputs.get("darks", darks)
        inputs = inputs.get("flats", [])
    flats, dark_files = split_inputs(inputs, darks)
    flat_stack = open_raw(flats, chunk_mb)
    dark_stack = open_raw(dark_files, chunk_mb) if len(_names(dark_files)) else None
    if dark_stack is not None:
        a, b = flat_stack.ramp.shape, dark_stack.ramp.shape
        if a[1:] != b[1:]:
            raise InputError(_names(dark_files)[0], f"has {b[1]} groups of {b[2:]} pixels but "
                             f"the flats {a[1]} of {a[2:]}")
    product = _gain.gain(flat_stack, dark_stack, **params)
    product.attrs["reflabel"] = GAIN_TYPE.reflabel
    return product


def amplifier_lines(ds: xr.Dataset) -> list[str]:
    """HISTORY lines: each amplifier's gain and error, fit residual, IPC, coefficients."""
    corrected = bool(ds.attrs.get("parameters", {}).get("ipc_correction"))
    lines = []
    for a, g in enumerate(ds["amp_gain"].values):
        coeffs = ", ".join(f"{c:.4g}" for c in ds["amp_coeffs"].values[a])
        lines.append(
            f"Amplifier {a + 1}: gain {g:.4f} +- {float(ds['amp_gain_err'][a]):.4f} e-/DN, "
            f"PTC fit RMS residual {float(ds['amp_rms'][a]):.4f} (fractional); IPC alpha "
            f"{float(ds['amp_alpha'][a]):.5f} +- {float(ds['amp_alpha_err'][a]):.5f} "
            f"({'corrected' if corrected else 'measured, not corrected'}); "
            f"var = poly(mean) coefficients {coeffs}.")
    return lines


def write_table(ds: xr.Dataset, path):
    """The diagnostics beside ``path``: PTC points, amplifiers, boxes, the error image."""
    from astropy.io import fits

    from ..io.exposure_writer import atomic_path

    rows = {"amplifier": [], "pair": [], "group": [], "mean": [], "variance": [],
            "variance_measured": [], "covariance": [], "fit": []}
    means = ds["amp_mean"].values
    for a in range(means.shape[0]):
        coeffs = ds["amp_coeffs"].values[a]
        for p in range(means.shape[1]):
            for g in range(means.shape[2]):
                m = means[a, p, g]
                rows["amplifier"].append(a + 1)
                rows["pair"].append(p)
                rows["group"].append(g + 1)
                rows["mean"].append(m)
                rows["variance"].append(ds["amp_var"].values[a, p, g])
                rows["variance_measured"].append(ds["amp_var_measured"].values[a, p, g])
                rows["covariance"].append(ds["amp_cov"].values[a, p, g])
                rows["fit"].append(float(evaluate(coeffs, np.float64(m))))
    units = {"mean": "DN", "variance": "DN2", "variance_measured": "DN2",
             "covariance": "DN2", "fit": "DN2", "gain": "electrons/DN",
             "gain_err": "electrons/DN"}
    ints = ("amplifier", "pair", "group", "box_y", "box_x")

    def table(columns, name):
        cols = [fits.Column(name=k, format="J" if k in ints else "D", unit=units.get(k),
                            array=np.asarray(v)) for k, v in columns.items()]
        return fits.BinTableHDU.from_columns(cols, name=name)

    namps = means.shape[0]
    amps = {"amplifier": np.arange(1, namps + 1)}
    for col, var in (("gain", "amp_gain"), ("gain_err", "amp_gain_err"),
                     ("rms", "amp_rms"), ("ipc_alpha", "amp_alpha"),
                     ("ipc_alpha_err", "amp_alpha_err")):
        amps[col] = ds[var].values
    for k in range(ds["amp_coeffs"].shape[1]):
        amps[f"c{k}"] = ds["amp_coeffs"].values[:, k]
    by, bx = np.indices(ds["box_gain"].shape)
    boxes = {"box_y": by.ravel(), "box_x": bx.ravel(),
             "gain": ds["box_gain"].values.ravel(), "gain_err": ds["box_gain_err"].values.ravel(),
             "ratio_err": ds["box_ratio_err"].values.ravel(),
             "ipc_alpha": ds["box_alpha"].values.ravel()}
    error = fits.ImageHDU(ds["gain_err"].values.astype(np.float32), name="GAIN_ERR")
    error.header["BUNIT"] = "electrons/DN"
    out = ancillary_path(path, "ptc")
    with atomic_path(out) as tmp:
        fits.HDUList([fits.PrimaryHDU(), table(rows, "PTC"), table(amps, "AMPLIFIERS"),
                      table(boxes, "BOXES"), error]).writeto(tmp)
    return out


def ptc_picture(ds: xr.Dataset, png):
    """Variance against mean per amplifier, with the fits; None without matplotlib."""
    plt = pyplot(png)
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(8, 6))
    means, variances = ds["amp_mean"].values, ds["amp_var"].values
    corrected = bool(ds.attrs.get("parameters", {}).get("ipc_correction"))
    for a in range(means.shape[0]):
        m = means[a].ravel()
        ok = np.isfinite(m) & np.isfinite(variances[a].ravel())
        if not ok.any():
            continue
        label = (f"amp {a + 1}: {float(ds['amp_gain'][a]):.3f} +- "
                 f"{float(ds['amp_gain_err'][a]):.3f} e-/DN, IPC "
                 f"{float(ds['amp_alpha'][a]):.4f}")
        line = ax.plot(m[ok], variances[a].ravel()[ok], "o", ms=4, label=label)[0]
        grid = np.linspace(0, m[ok].max(), 100)
        ax.plot(grid, evaluate(ds["amp_coeffs"].values[a], grid), "-", color=line.get_color())
    ax.set_xlabel("mean signal (DN)")
    ax.set_ylabel("variance of the half difference (DN$^2$)"
                  + (", IPC corrected" if corrected else ""))
    ax.set_title(f"{ds.attrs.get('DETECTOR', '')} {ds.attrs.get('SUBARRAY', '')}: "
                 "photon transfer")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, png, dpi=90)


def write(ds: xr.Dataset, path, meta: CrdsMeta):
    """Write a computed GAIN product, its diagnostics and its picture.

    Raises
    ------
    InputError
        No amplifier could be fitted (nothing is written).
    """
    check_computed(ds, VARIABLES)
    if not np.any(np.isfinite(ds["amp_gain"].values)):
        raise InputError(None, "no amplifier's photon transfer could be fitted: give flat "
                         "pairs whose signal differs between levels")
    params = ds.attrs.get("parameters", {})
    extra = parameter_keywords(params, KEYWORDS)
    for a, g in enumerate(ds["amp_gain"].values):
        n = a + 1
        extra[f"GAINAMP{n}"] = (float(np.nan_to_num(g)), f"amplifier {n} gain, e-/DN")
        extra[f"GAINERR{n}"] = (float(np.nan_to_num(ds["amp_gain_err"].values[a])),
                                f"amplifier {n} gain error, e-/DN")
        extra[f"GAINRMS{n}"] = (float(np.nan_to_num(ds["amp_rms"].values[a])),
                                "PTC fit RMS residual")
        extra[f"IPCALPH{n}"] = (float(np.nan_to_num(ds["amp_alpha"].values[a])),
                                f"amplifier {n} IPC nearest-neighbour alpha")
    meta = replace(meta, history=amplifier_lines(ds) + list(meta.history))
    images = [("SCI", ds["gain"].values.astype(np.float32), "electrons/DN")]
    out = write_product(ds, path, meta, reftype=REFTYPE, datamodel=DATAMODEL,
                        function="gain", template=DESCRIPTION, images=images,
                        use_readpatt=False, extra=extra)
    write_table(ds, path)
    ptc_picture(ds, ancillary_path(path, "ptc").with_suffix(".png"))
    return out


GAIN_TYPE = register(RefType(
    reflabel="gain", reftype=REFTYPE, datamodel=DATAMODEL,
    summary="GAIN reference file by photon transfer (flat pairs, dark pairs)",
    inputs="darks+flats", imtypes="DDFF", ssbsteps=None,
    algorithm=_gain.gain, build=build, write=write, merge_sets=True, check_set=check_set,
    params=[
        Param("box_size", "side of the boxes, pixels"),
        Param("clip_sigma", "sigma clipping of each box's pixels"),
        Param("max_clipping_iters", "clipping passes"),
        Param("fit_degree", "highest power of the mean in the PTC fit"),
        Param("ipc_correction", "correct the variances for the IPC measured from the "
              "nearest-neighbour covariance of the difference images"),
    ],
))
