"""GAIN reference files (``GainModel``: SCI, e-/DN) by photon transfer.

Beside the reference file: ``<name>_ptc.fits`` (a table of the PTC points of every
amplifier, pair and group, with the fit) and, with matplotlib, ``<name>_ptc.png``
(variance against mean signal per amplifier, with the fits). The per-amplifier
gains and fit residuals are in the HISTORY and in ``GAINAMPn`` / ``GAINRMSn``.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import xarray as xr

from ..algorithms import gain as _gain
from ..io.crds import CrdsMeta
from ..io.fits import InputError, read_info
from ..io.pictures import pyplot, save_png
from ..kernels.linearity import evaluate
from ._base import ancillary_path, check_computed, open_raw, write_product
from .registry import Param, RefType, register

log = logging.getLogger("daskref")

REFTYPE = "GAIN"
DATAMODEL = "GainModel"
DESCRIPTION = "Gain by photon transfer from {n_inputs} files (daskref)"
VARIABLES = ("gain", "amp_gain", "amp_rms", "amp_coeffs", "amp_mean", "amp_var")
KEYWORDS = {"box_size": "GAINBOX", "clip_sigma": "GAINCLIP", "fit_degree": "GAINDEG"}


def is_dark(path) -> bool:
    """A dark exposure, by its EXP_TYPE."""
    return "DARK" in str(read_info(path).header.get("EXP_TYPE", "")).upper()


def split_inputs(paths, darks):
    """(flats, darks) of the inputs; darks by EXP_TYPE unless given.

    Raises
    ------
    InputError
        Unpaired flats or darks (naming the file without a partner), fewer than two
        flat pairs (levels), or no flats.
    """
    paths = [paths] if isinstance(paths, str) else list(paths)
    if darks is None:
        darks = [p for p in paths if is_dark(p)]
        flats = [p for p in paths if p not in darks]
    else:
        flats = paths
    if not flats:
        raise InputError(None, "photon transfer needs pairs of flats; none given")
    for what, files in (("flats", flats), ("darks", darks)):
        if len(files) % 2:
            raise InputError(files[-1], f"has no partner: the {len(files)} {what} do not "
                             "make pairs (consecutive files are a pair)")
    if len(flats) < 4:
        raise InputError(None, f"{len(flats) // 2} flat pair: photon transfer needs pairs "
                         "at two or more levels")
    return flats, darks


def build(inputs, *, darks: list[str] | None = None, chunk_mb: float | None = None,
          **params) -> xr.Dataset:
    """Lazy GAIN product from flat pairs at several levels and dark pairs.

    Parameters
    ----------
    inputs : sequence of path-like
        Raw ramps: pairs of flats (consecutive files, one level each) and, unless
        ``darks`` is given, the dark pairs (files whose EXP_TYPE names a dark).
    darks : list of path-like, optional
        The dark pairs.
    chunk_mb : float, optional
        Slab size of each stack, MB.
    **params
        Those of :func:`daskref.algorithms.gain.gain`.
    """
    params = GAIN_TYPE.resolve(params)
    flats, dark_files = split_inputs(inputs, darks)
    flat_stack = open_raw(flats, chunk_mb)
    dark_stack = open_raw(dark_files, chunk_mb) if dark_files else None
    if dark_stack is not None:
        a, b = flat_stack.ramp.shape, dark_stack.ramp.shape
        if a[1:] != b[1:]:
            raise InputError(dark_files[0], f"has {b[1]} groups of {b[2:]} pixels but the "
                             f"flats {a[1]} of {a[2:]}")
    product = _gain.gain(flat_stack, dark_stack, **params)
    product.attrs["reflabel"] = GAIN_TYPE.reflabel
    return product


def amplifier_lines(ds: xr.Dataset) -> list[str]:
    """HISTORY lines: each amplifier's gain, fit residual and coefficients."""
    lines = []
    for a, (g, rms) in enumerate(zip(ds["amp_gain"].values, ds["amp_rms"].values,
                                     strict=True)):
        coeffs = ", ".join(f"{c:.4g}" for c in ds["amp_coeffs"].values[a])
        lines.append(f"Amplifier {a + 1}: gain {g:.4f} e-/DN, PTC fit RMS residual "
                     f"{rms:.4f} (fractional); var = poly(mean) coefficients {coeffs}.")
    return lines


def write_table(ds: xr.Dataset, path):
    """The PTC points and the fit of every amplifier, as a FITS table beside ``path``."""
    from ..io.exposure_writer import atomic_path

    rows = {"amplifier": [], "pair": [], "group": [], "mean": [], "variance": [], "fit": []}
    means, variances = ds["amp_mean"].values, ds["amp_var"].values
    for a in range(means.shape[0]):
        coeffs = ds["amp_coeffs"].values[a]
        for p in range(means.shape[1]):
            for g in range(means.shape[2]):
                m = means[a, p, g]
                rows["amplifier"].append(a + 1)
                rows["pair"].append(p)
                rows["group"].append(g + 1)
                rows["mean"].append(m)
                rows["variance"].append(variances[a, p, g])
                rows["fit"].append(float(evaluate(coeffs, np.float64(m))))
    from astropy.io import fits

    units = {"mean": "DN", "variance": "DN2", "fit": "DN2"}
    cols = [fits.Column(name=k, format="J" if k in ("amplifier", "pair", "group") else "D",
                        unit=units.get(k), array=np.asarray(v)) for k, v in rows.items()]
    hdu = fits.BinTableHDU.from_columns(cols, name="PTC")
    out = ancillary_path(path, "ptc")
    with atomic_path(out) as tmp:
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp)
    return out


def ptc_picture(ds: xr.Dataset, png):
    """Variance against mean per amplifier, with the fits; None without matplotlib."""
    plt = pyplot(png)
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(8, 6))
    means, variances = ds["amp_mean"].values, ds["amp_var"].values
    for a in range(means.shape[0]):
        m = means[a].ravel()
        ok = np.isfinite(m) & np.isfinite(variances[a].ravel())
        if not ok.any():
            continue
        line = ax.plot(m[ok], variances[a].ravel()[ok], "o", ms=4,
                       label=f"amp {a + 1}: {float(ds['amp_gain'][a]):.3f} e-/DN")[0]
        grid = np.linspace(0, m[ok].max(), 100)
        ax.plot(grid, evaluate(ds["amp_coeffs"].values[a], grid), "-", color=line.get_color())
    ax.set_xlabel("mean signal (DN)")
    ax.set_ylabel("variance of the half difference (DN$^2$)")
    ax.set_title(f"{ds.attrs.get('DETECTOR', '')} {ds.attrs.get('SUBARRAY', '')}: "
                 "photon transfer")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, png, dpi=90)


def write(ds: xr.Dataset, path, meta: CrdsMeta):
    """Write a computed GAIN product, its PTC table and its picture.

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
    extra = {key: params[name] for name, key in KEYWORDS.items() if name in params}
    for a, (g, rms) in enumerate(zip(ds["amp_gain"].values, ds["amp_rms"].values,
                                     strict=True)):
        extra[f"GAINAMP{a + 1}"] = (float(np.nan_to_num(g)), f"amplifier {a + 1} gain, e-/DN")
        extra[f"GAINRMS{a + 1}"] = (float(np.nan_to_num(rms)), "PTC fit RMS residual")
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
    inputs="flats", imtypes="DDFF", ssbsteps=None,
    algorithm=_gain.gain, build=build, write=write,
    params=[
        Param("box_size", "side of the boxes, pixels"),
        Param("clip_sigma", "sigma clipping of each box's pixels"),
        Param("max_clipping_iters", "clipping passes"),
        Param("fit_degree", "highest power of the mean in the PTC fit"),
    ],
))
