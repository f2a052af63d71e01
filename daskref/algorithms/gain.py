"""GAIN by photon transfer: flat pairs at several levels, dark pairs, per amplifier.

Per pair of flats (consecutive files; their integrations matched in order) and group
``g >= 1``, per box of ``box_size`` x ``box_size`` science pixels: the mean of the
half sum and the clipped variance of the half difference of ``v[g] - v[0]``
(:func:`daskref.kernels.gain.box_stats`); the dark pairs' values at the same group
are subtracted (averaged over the dark pairs). Per amplifier, the points of every
box, pair and group are averaged over the amplifier's boxes and fitted with
:func:`daskref.kernels.gain.fit_ptc`; its gain is ``1 / c1``. Each box's gain comes
from its own points with its amplifier's curve shape
(:func:`daskref.kernels.gain.box_gains`); every pixel takes its box's gain (and the
reference pixels, and boxes without a fit, their amplifier's). Where the amplifiers
interleave (MIRI, column by column) each box holds one amplifier's columns.

IPC and brighter-fatter are not corrected (the cubic term absorbs the latter's
effect on the variance to first order). The box statistics are one pass over the
data in row slabs; the fits work on the small (pair, group, box) arrays.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ..geometry import amplifier_index, reference_pixel_mask
from ..kernels.gain import box_gains, box_stats, fit_ptc
from ._chunks import require_single_chunk
from .readnoise import as_ramp_dataset


def pair_indices(ds: xr.Dataset, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Integration positions of the two members of every pair (consecutive files).

    Raises
    ------
    ValueError
        An odd number of files, or a pair whose files differ in integrations.
    """
    exposure = np.asarray(ds["exposure"].values)
    n_files = int(exposure.max()) + 1 if exposure.size else 0
    if n_files < 2 or n_files % 2:
        raise ValueError(f"{what}: {n_files} files do not make pairs")
    ia, ib = [], []
    for p in range(n_files // 2):
        a = np.flatnonzero(exposure == 2 * p)
        b = np.flatnonzero(exposure == 2 * p + 1)
        if a.size != b.size:
            raise ValueError(f"{what}: the files of pair {p} have {a.size} and {b.size} "
                             "integrations")
        ia += list(a)
        ib += list(b)
    return np.array(ia), np.array(ib)


def _pair_block(ramp, valid, *, ia, ib, box_size, clip_sigma, maxiters):
    """(2, pair, group - 1, by, bx): box mean and variance of one row slab."""
    r = np.asarray(ramp, np.float64)
    x = r[:, 1:] - r[:, :1]
    mean, var = box_stats(x[ia], x[ib], valid, box_size=box_size, clip_sigma=clip_sigma,
                          maxiters=maxiters)
    return np.stack([mean, var])


def pair_box_stats(ds: xr.Dataset, valid, *, box_size: int, clip_sigma: float,
                   maxiters: int, what: str):
    """Lazy (2, pair, group - 1, by, bx) box means and variances of a stack's pairs."""
    ia, ib = pair_indices(ds, what)
    ramp = ds.ramp.data
    bs = int(box_size)
    ny, nx = ramp.shape[-2:]
    nbx = -(-nx // bs)
    kwargs = dict(ia=ia, ib=ib, box_size=bs, clip_sigma=float(clip_sigma),
                  maxiters=int(maxiters))
    keep = ny // bs * bs
    if not isinstance(ramp, da.Array):
        return _pair_block(ramp[..., :keep, :], valid[:keep], **kwargs)
    # slabs of whole boxes; rows below the last whole box are left out
    rows = ramp.chunks[2][0]
    rows = max(bs, rows // bs * bs)
    ramp = ramp[..., : ny // bs * bs, :].rechunk({0: -1, 1: -1, 2: rows, 3: -1})
    valid = da.asarray(valid)[: ny // bs * bs].rechunk((ramp.chunks[2], (nx,)))
    return da.blockwise(
        _pair_block, "kpgyx", ramp, "igyx", valid, "yx",
        new_axes={"k": 2, "p": ia.size}, concatenate=True, dtype=np.float64,
        adjust_chunks={"g": lambda c: c - 1, "y": lambda c: c // bs, "x": lambda c: nbx},
        **kwargs,
    )


def _fit_all(flat, dark, box_amp, namps, degree, intercept):
    """The PTC fits: per amplifier and per box (numpy, on the small arrays)."""
    mean, var = flat[0], flat[1]  # (pair, group, by, bx)
    if dark is not None:
        mean = mean - np.nanmean(dark[0], axis=0)
        var = var - np.nanmean(dark[1], axis=0)
    npair, ngroup = mean.shape[:2]
    pts_mean = mean.reshape(npair * ngroup, -1)  # (point, box)
    pts_var = var.reshape(npair * ngroup, -1)
    amps = box_amp.reshape(-1)
    ncoef = int(degree) + 1
    coeffs = np.full((namps, ncoef), np.nan)
    rms = np.full(namps, np.nan)
    amp_mean = np.full((namps, npair * ngroup), np.nan)
    amp_var = np.full((namps, npair * ngroup), np.nan)
    with np.errstate(invalid="ignore"):
        for a in range(namps):
            cols = amps == a
            if not cols.any():
                continue
            good = np.isfinite(pts_mean[:, cols]) & np.isfinite(pts_var[:, cols])
            n = good.sum(axis=1)
            amp_mean[a] = np.where(n > 0, np.where(good, pts_mean[:, cols], 0).sum(1)
                                   / np.maximum(n, 1), np.nan)
            amp_var[a] = np.where(n > 0, np.where(good, pts_var[:, cols], 0).sum(1)
                                  / np.maximum(n, 1), np.nan)
            coeffs[a], rms[a] = fit_ptc(amp_mean[a], amp_var[a], degree=degree,
                                        intercept=intercept)
    box_c = coeffs[np.clip(amps, 0, namps - 1)].T  # (coeff, box)
    gains = box_gains(pts_mean, pts_var, box_c).reshape(mean.shape[2:])
    return {"box_gain": gains, "amp_gain": 1.0 / coeffs[:, 1], "amp_rms": rms,
            "amp_coeffs": coeffs, "amp_mean": amp_mean.reshape(namps, npair, ngroup),
            "amp_var": amp_var.reshape(namps, npair, ngroup)}


def _pixel_map(fit, iy, ix, amps_x, ref, back):
    """Every pixel's gain: its box's, or its amplifier's (reference pixels, no fit).

    ``back`` undoes a column permutation (None: none).
    """
    pixel = fit["box_gain"][iy][:, ix]
    amp = fit["amp_gain"][amps_x][None, :]
    out = np.where(ref | ~np.isfinite(pixel), amp, pixel).astype(np.float32)
    return out if back is None else out[:, back]


def gain(
    flats: xr.Dataset,
    darks: xr.Dataset | None = None,
    *,
    box_size: int = 32,
    clip_sigma: float = 3.0,
    max_clipping_iters: int = 3,
    fit_degree: int = 3,
) -> xr.Dataset:
    """Per-pixel gain (e-/DN) by photon transfer, as a lazy Dataset.

    Parameters
    ----------
    flats : Dataset
        Raw flat ramps ``ramp`` (integration, group, y, x), DN, with ``exposure``
        (the file of each integration): consecutive files are a pair of one level.
        Several levels and at least 3 groups.
    darks : Dataset, optional
        Dark pairs of the same detector and group count; without them the fit has
        an intercept (the read noise).
    box_size : int
        Side of the boxes, pixels.
    clip_sigma, max_clipping_iters : float, int
        Sigma clipping of each box's pixels (cosmic rays, bad pixels).
    fit_degree : int
        Highest power of the mean in the PTC fit (3: absorbs a cubic non-linearity).

    Returns
    -------
    xarray.Dataset
        ``gain`` (y, x) float32 e-/DN; ``box_gain`` (box_y, box_x); ``amp_gain``,
        ``amp_rms`` (amplifier); ``amp_coeffs`` (amplifier, power); ``amp_mean``,
        ``amp_var`` (amplifier, pair, group), DN and DN^2: the PTC points.
    """
    if int(box_size) < 4:
        raise ValueError(f"box_size must be at least 4, not {box_size}")
    if int(fit_degree) < 1:
        raise ValueError(f"fit_degree must be at least 1, not {fit_degree}")
    flats = as_ramp_dataset(flats)
    require_single_chunk(flats.ramp, ("integration", "group"), "ramp")
    if flats.sizes["group"] < 2:
        raise ValueError("photon transfer needs at least 2 groups")
    attrs = flats.attrs
    shape = (flats.sizes["y"], flats.sizes["x"])
    bs = int(box_size)
    if shape[0] < bs:
        raise ValueError(f"box_size {bs} is larger than the {shape[0]} rows")
    valid = ~reference_pixel_mask(attrs, shape)
    amps_x = amplifier_index(attrs, shape)
    # boxes hold one amplifier's columns: where the amplifiers interleave (MIRI, column
    # by column) the columns are put in amplifier order first, and back at the end
    order = np.argsort(amps_x, kind="stable")
    permuted = bool(np.any(order != np.arange(order.size)))
    if permuted:
        flats = flats.isel(x=order)
        valid, amps_x = valid[:, order], amps_x[order]
    kw = dict(box_size=bs, clip_sigma=clip_sigma, maxiters=max_clipping_iters)
    fstats = pair_box_stats(flats, valid, what="flats", **kw)
    dstats = None
    if darks is not None:
        darks = as_ramp_dataset(darks)
        if permuted:
            darks = darks.isel(x=order)
        dstats = pair_box_stats(darks, valid, what="darks", **kw)
    namps = int(amps_x.max()) + 1
    nbx = -(-shape[1] // bs)
    # a box belongs to the amplifier of most of its columns
    box_amp = np.array([np.bincount(amps_x[j * bs:(j + 1) * bs]).argmax()
                        for j in range(nbx)])
    nby = shape[0] // bs
    box_amp = np.broadcast_to(box_amp, (nby, nbx))
    npair = fstats.shape[1]
    ngroup = fstats.shape[2]
    fit = dask.delayed(_fit_all, nout=None, pure=True)(
        fstats, dstats, box_amp, namps, int(fit_degree), darks is None)
    ncoef = int(fit_degree) + 1

    def part(key, shp):
        return da.from_delayed(fit[key], shp, dtype=np.float64)

    box_gain = part("box_gain", (nby, nbx))
    amp_gain = part("amp_gain", (namps,))
    iy = np.minimum(np.arange(shape[0]) // bs, nby - 1)
    ix = np.arange(shape[1]) // bs
    back = np.argsort(order) if permuted else None
    gain_map = da.from_delayed(
        dask.delayed(_pixel_map, pure=True)(fit, iy, ix, amps_x, ~valid, back), shape,
        dtype=np.float32)
    lazy = isinstance(flats.ramp.data, da.Array)
    if lazy:
        gain_map = gain_map.rechunk((flats.ramp.data.chunks[2], (shape[1],)))
    else:
        gain_map = np.asarray(gain_map)

    params = {"box_size": bs, "clip_sigma": float(clip_sigma),
              "max_clipping_iters": int(max_clipping_iters), "fit_degree": int(fit_degree),
              "dark_pairs": 0 if darks is None else int(dstats.shape[1])}
    out_attrs = {k: v for k, v in attrs.items() if k != "parameters"}
    inputs = list(attrs.get("inputs", []))
    if darks is not None:
        inputs += list(darks.attrs.get("inputs", []))
    out_attrs.update(reftype="GAIN", parameters=params, inputs=inputs)

    def finish(x):
        return x if lazy else np.asarray(x)

    out = xr.Dataset({
        "gain": (("y", "x"), gain_map, {"units": "electrons/DN"}),
        "box_gain": (("box_y", "box_x"), finish(box_gain), {"units": "electrons/DN"}),
        "amp_gain": (("amplifier",), finish(amp_gain), {"units": "electrons/DN"}),
        "amp_rms": (("amplifier",), finish(part("amp_rms", (namps,)))),
        "amp_coeffs": (("amplifier", "power"), finish(part("amp_coeffs", (namps, ncoef)))),
        "amp_mean": (("amplifier", "pair", "group"),
                     finish(part("amp_mean", (namps, npair, ngroup))), {"units": "DN"}),
        "amp_var": (("amplifier", "pair", "group"),
                    finish(part("amp_var", (namps, npair, ngroup))), {"units": "DN2"}),
    }, attrs=out_attrs)
    return out
