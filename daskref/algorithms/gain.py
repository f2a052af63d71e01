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

IPC is measured from the nearest-neighbour covariance of the difference images
(dark pairs subtracted) per amplifier and, with ``ipc_correction``, divided out of
the variances before the fit (:mod:`daskref.kernels.gain` derives the relation).
Brighter-fatter is not corrected (the cubic term absorbs its effect on the variance
to first order). The box statistics are one pass over the data in row slabs; the
fits work on the small (pair, group, box) arrays.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ..geometry import amplifier_index, reference_pixel_mask
from ..kernels.gain import (
    box_stats,
    dark_point_covariance,
    fit_amplifier,
    gls_scale,
    ipc_alpha,
    pair_point_covariance,
    ptc_shape,
)
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


def _pair_block(ramp, valid, *, ia, ib, box_size, clip_sigma, maxiters, horizontal):
    """(4, pair, group - 1, by, bx): box mean, variance, covariance and pixels of a slab."""
    r = np.asarray(ramp, np.float64)
    x = r[:, 1:] - r[:, :1]
    st = box_stats(x[ia], x[ib], valid, box_size=box_size, clip_sigma=clip_sigma,
                   maxiters=maxiters, horizontal=horizontal)
    return np.stack([st.mean, st.var, st.cov, st.n.astype(np.float64)])


def pair_box_stats(ds: xr.Dataset, valid, *, box_size: int, clip_sigma: float,
                   maxiters: int, what: str, horizontal: bool = True):
    """Lazy (4, pair, group - 1, by, bx) box statistics of a stack's pairs.

    The first axis holds the mean (DN), variance and neighbour covariance (DN^2) and
    the number of pixels (:class:`daskref.kernels.gain.BoxStats`).
    """
    ia, ib = pair_indices(ds, what)
    ramp = ds.ramp.data
    bs = int(box_size)
    ny, nx = ramp.shape[-2:]
    nbx = -(-nx // bs)
    kwargs = dict(ia=ia, ib=ib, box_size=bs, clip_sigma=float(clip_sigma),
                  maxiters=int(maxiters), horizontal=bool(horizontal))
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
        new_axes={"k": 4, "p": ia.size}, concatenate=True, dtype=np.float64,
        adjust_chunks={"g": lambda c: c - 1, "y": lambda c: c // bs, "x": lambda c: nbx},
        **kwargs,
    )


#: At most this many groups of boxes in the jackknife of an amplifier's fit.
JACKKNIFE_GROUPS = 64


def _group_sums(arr, groups):
    """(group, point) sums and counts of the finite values of ``arr`` (point, box)."""
    ok = np.isfinite(arr)
    vals = np.where(ok, arr, 0.0)
    sums = np.stack([vals[:, g].sum(axis=1) for g in groups])
    counts = np.stack([ok[:, g].sum(axis=1) for g in groups])
    return sums, counts


def _amplifier(mean, var, cov, cols, *, degree, intercept, ipc_correction):
    """The fit of one amplifier and its jackknife errors over groups of its boxes.

    ``mean``, ``var``, ``cov`` are (point, box) for every box; ``cols`` the boxes of
    the amplifier. Returns (fit, points, gain error, alpha error).
    """
    ngroups = min(cols.size, JACKKNIFE_GROUPS)
    groups = [cols[i::ngroups] for i in range(ngroups)]
    parts = [_group_sums(a, groups) for a in (mean, var, cov)]

    def fit_without(drop):
        pts = []
        for sums, counts in parts:
            s, c = sums.sum(axis=0), counts.sum(axis=0)
            if drop is not None:
                s, c = s - sums[drop], c - counts[drop]
            with np.errstate(invalid="ignore", divide="ignore"):
                pts.append(np.where(c > 0, s / np.maximum(c, 1), np.nan))
        return fit_amplifier(*pts, degree=degree, intercept=intercept,
                             ipc_correction=ipc_correction), pts

    fit, points = fit_without(None)
    gain_err = alpha_err = np.nan
    if ngroups >= 2:
        # delete-a-group jackknife: the boxes are independent pixels
        fits = [fit_without(i)[0] for i in range(ngroups)]
        with np.errstate(invalid="ignore", divide="ignore"):
            g = np.array([1.0 / f.coeffs[1] for f in fits])
            al = np.array([f.alpha for f in fits])
        scale = (ngroups - 1) / ngroups
        gain_err = float(np.sqrt(scale * np.sum((g - g.mean()) ** 2)))
        alpha_err = float(np.sqrt(scale * np.sum((al - al.mean()) ** 2)))
    return fit, points, gain_err, alpha_err


def _fit_all(flat, dark, box_amp, namps, degree, intercept, ipc_correction, clip_sigma,
             maxiters):
    """The PTC fits: per amplifier and per box (numpy, on the small arrays)."""
    fm, fv, fc, fn = flat  # (pair, group, by, bx)
    npair, ngroup = fm.shape[:2]
    box_shape = fm.shape[2:]
    nbox = int(np.prod(box_shape))

    def points(arr):  # (pair, group, by, bx) -> (point, box)
        return arr.reshape(npair * ngroup, nbox)

    mean, var, cov = fm, fv, fc
    n_dark = 0
    with np.errstate(invalid="ignore"):
        if dark is not None:
            dmean, dvar, dcov, dn = (np.nanmean(d, axis=0) for d in dark)  # (group, by, bx)
            mean, var, cov = fm - dmean, fv - dvar, fc - dcov
            n_dark = dark.shape[1]
    pts_mean, pts_var, pts_cov = points(mean), points(var), points(cov)
    amps = box_amp.reshape(-1)
    ncoef = int(degree) + 1
    out = {
        "amp_coeffs": np.full((namps, ncoef), np.nan),
        **{k: np.full(namps, np.nan) for k in ("amp_gain", "amp_gain_err", "amp_rms",
                                               "amp_alpha", "amp_alpha_err")},
        **{k: np.full((namps, npair * ngroup), np.nan)
           for k in ("amp_mean", "amp_var", "amp_var_measured", "amp_cov")},
        **{k: np.full(nbox, np.nan) for k in ("box_gain", "box_gain_err", "box_ratio_err",
                                              "box_alpha")},
    }
    for a in range(namps):
        cols = np.flatnonzero(amps == a)
        if not cols.size:
            continue
        fit, (am, av, ac), gain_err, alpha_err = _amplifier(
            pts_mean, pts_var, pts_cov, cols, degree=degree, intercept=intercept,
            ipc_correction=ipc_correction)
        c, factor, read = fit.coeffs, fit.factor, fit.read
        out["amp_coeffs"][a] = c
        out["amp_rms"][a] = fit.rms
        out["amp_alpha"][a], out["amp_alpha_err"][a] = fit.alpha, alpha_err
        out["amp_mean"][a], out["amp_var_measured"][a], out["amp_cov"][a] = am, av, ac
        out["amp_var"][a] = read + (av - read) / factor
        with np.errstate(invalid="ignore", divide="ignore"):
            out["amp_gain"][a] = 1.0 / c[1]
        out["amp_gain_err"][a] = gain_err
        if not np.all(np.isfinite(c[1:])):
            continue
        # each box: the scale of its points against the amplifier's curve shape
        m = mean.reshape(npair, ngroup, nbox)[..., cols].transpose(2, 0, 1)  # (box, p, g)
        v = var.reshape(npair, ngroup, nbox)[..., cols].transpose(2, 0, 1)
        x = ptc_shape(m, c)
        y = read + (v - read) / factor - c[0]
        # the expected (measured, before the IPC correction) variance of every point
        shot = factor * c[1] * x
        if dark is not None:
            dark_read = np.nanmean(dvar.reshape(ngroup, nbox)[:, cols], axis=1)  # (group,)
            read_pts = np.broadcast_to(dark_read, shot.shape)
        else:
            read_pts = np.full(shot.shape, read)
        n = np.nanmin(fn.reshape(npair, ngroup, nbox)[..., cols], axis=1).T  # (box, pair)
        kw = dict(clip_sigma=clip_sigma, maxiters=maxiters)
        pair_cov = pair_point_covariance(shot, read_pts, m, n, **kw) / factor**2
        common = None
        if dark is not None:
            nd = np.nanmin(dn.reshape(ngroup, nbox)[:, cols], axis=0)  # (box,)
            common = dark_point_covariance(np.broadcast_to(dark_read, (cols.size, ngroup)),
                                           nd, n_dark, **kw) / factor**2
        k, k_err = gls_scale(x, y, pair_cov, common)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio_err = k_err / k
            # the boxes relative to their weighted mean, on the amplifier's gain: the
            # map and the amplifier agree by construction (a scale fit and the curve's
            # slope at zero differ at the 0.1 % level)
            w = np.where(np.isfinite(k) & np.isfinite(k_err), 1.0 / k_err**2, 0.0)
            k_ref = np.sum(w * np.nan_to_num(k)) / np.sum(w)
            common_rel = gain_err / out["amp_gain"][a] if np.isfinite(gain_err) else 0.0
            box = out["amp_gain"][a] * k_ref / k
            out["box_gain"][cols] = box
            out["box_ratio_err"][cols] = ratio_err
            out["box_gain_err"][cols] = np.hypot(ratio_err, common_rel) * box
            # each box's own IPC measurement (noisy; the amplifier's is the one used)
            shot_pts = (v - read).reshape(cols.size, -1)
            cov_pts = cov.reshape(npair, ngroup, nbox)[..., cols].transpose(2, 0, 1)
            cov_pts = cov_pts.reshape(cols.size, -1)
            ok = np.isfinite(shot_pts) & np.isfinite(cov_pts)
            out["box_alpha"][cols] = ipc_alpha(np.where(ok, cov_pts, 0).sum(1)
                                               / np.where(ok, shot_pts, 0).sum(1))
    for key in ("box_gain", "box_gain_err", "box_ratio_err", "box_alpha"):
        out[key] = out[key].reshape(box_shape)
    for key in ("amp_mean", "amp_var", "amp_var_measured", "amp_cov"):
        out[key] = out[key].reshape(namps, npair, ngroup)
    return out


def _pixel_map(fit, iy, ix, amps_x, ref, back, what="gain"):
    """Every pixel's gain (``what="gain"``) or its error (``"gain_err"``), e-/DN.

    A pixel takes its box's value, or its amplifier's (reference pixels, boxes
    without a fit); ``back`` undoes a column permutation (None: none).
    """
    fallback = ref | ~np.isfinite(fit["box_gain"][iy][:, ix])
    pixel = fit[f"box_{what}"][iy][:, ix]
    amp = fit[f"amp_{what}"][amps_x][None, :]
    out = np.where(fallback, amp, pixel).astype(np.float32)
    return out if back is None else out[:, back]


def gain(
    flats: xr.Dataset,
    darks: xr.Dataset | None = None,
    *,
    box_size: int = 32,
    clip_sigma: float = 3.0,
    max_clipping_iters: int = 3,
    fit_degree: int = 3,
    ipc_correction: bool = False,
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
    ipc_correction : bool
        Correct the variances for the inter-pixel capacitance measured from the
        nearest-neighbour covariance of the difference images (per amplifier);
        without it the IPC is measured and reported only.

    Returns
    -------
    xarray.Dataset
        ``gain`` and its error ``gain_err`` (y, x) float32 e-/DN; ``box_gain``,
        ``box_gain_err`` (box_y, box_x), e-/DN, and ``box_ratio_err`` (fractional
        error of the box against its amplifier, its own statistics), ``box_alpha``
        (each box's IPC measurement);
        ``amp_gain``, ``amp_gain_err`` (e-/DN), ``amp_rms``, ``amp_alpha``,
        ``amp_alpha_err`` (amplifier); ``amp_coeffs`` (amplifier, power); the PTC
        points ``amp_mean`` (DN), ``amp_var`` (as fitted: IPC-corrected where asked),
        ``amp_var_measured`` and ``amp_cov`` (the neighbour covariance), DN^2, all
        (amplifier, pair, group).

    Notes
    -----
    Errors: a box's gain from generalised least squares with the covariance of its
    points (:func:`daskref.kernels.gain.gls_scale`), whose error is combined with
    its amplifier's (the curve shape and the IPC correction are the amplifier's, so
    that part is common to its boxes); an amplifier's gain and ``a`` by a jackknife
    over (up to 64 groups of) its boxes. Without dark pairs the covariance of the
    read noise (row noise) is not removed from the IPC measurement.
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
    kw = dict(box_size=bs, clip_sigma=clip_sigma, maxiters=max_clipping_iters,
              horizontal=not permuted)
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
        fstats, dstats, box_amp, namps, int(fit_degree), darks is None, bool(ipc_correction),
        float(clip_sigma), int(max_clipping_iters))
    ncoef = int(fit_degree) + 1

    def part(key, shp):
        return da.from_delayed(fit[key], shp, dtype=np.float64)

    box_gain = part("box_gain", (nby, nbx))
    iy = np.minimum(np.arange(shape[0]) // bs, nby - 1)
    ix = np.arange(shape[1]) // bs
    back = np.argsort(order) if permuted else None
    lazy = isinstance(flats.ramp.data, da.Array)

    def pixel_map(what):
        out = da.from_delayed(dask.delayed(_pixel_map, pure=True)(
            fit, iy, ix, amps_x, ~valid, back, what), shape, dtype=np.float32)
        if lazy:
            return out.rechunk((flats.ramp.data.chunks[2], (shape[1],)))
        return np.asarray(out)

    gain_map, gain_err = pixel_map("gain"), pixel_map("gain_err")

    params = {"box_size": bs, "clip_sigma": float(clip_sigma),
              "max_clipping_iters": int(max_clipping_iters), "fit_degree": int(fit_degree),
              "ipc_correction": bool(ipc_correction),
              "dark_pairs": 0 if darks is None else int(dstats.shape[1])}
    out_attrs = {k: v for k, v in attrs.items() if k != "parameters"}
    inputs = list(attrs.get("inputs", []))
    if darks is not None:
        inputs += list(darks.attrs.get("inputs", []))
    out_attrs.update(reftype="GAIN", parameters=params, inputs=inputs)

    def finish(x):
        return x if lazy else np.asarray(x)

    boxes, per_amp, ptc = ("box_y", "box_x"), ("amplifier",), ("amplifier", "pair", "group")
    e_dn, dn2 = {"units": "electrons/DN"}, {"units": "DN2"}
    variables = {"gain": (("y", "x"), gain_map, e_dn),
                 "gain_err": (("y", "x"), gain_err, e_dn),
                 "box_gain": (boxes, finish(box_gain), e_dn)}
    for name, dims, units in (
        ("box_gain_err", boxes, e_dn), ("box_ratio_err", boxes, {}), ("box_alpha", boxes, {}),
        ("amp_gain", per_amp, e_dn), ("amp_gain_err", per_amp, e_dn), ("amp_rms", per_amp, {}),
        ("amp_alpha", per_amp, {}), ("amp_alpha_err", per_amp, {}),
        ("amp_coeffs", ("amplifier", "power"), {}), ("amp_mean", ptc, {"units": "DN"}),
        ("amp_var", ptc, dn2), ("amp_var_measured", ptc, dn2), ("amp_cov", ptc, dn2),
    ):
        shp = {"box_y": nby, "box_x": nbx, "amplifier": namps, "power": ncoef,
               "pair": npair, "group": ngroup}
        variables[name] = (dims, finish(part(name, tuple(shp[d] for d in dims))), units)
    return xr.Dataset(variables, attrs=out_attrs)
