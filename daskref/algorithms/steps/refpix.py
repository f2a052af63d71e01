"""Reference-pixel correction (the ``refpix`` step of calwebb_detector1), lazy.

The reference pixels do not see light but do see the bias drifts of the readout
electronics. The JWST pipeline uses them in two ways (see the pipeline's refpix
description):

Near-IR detectors (4-pixel reference border, 4 amplifiers of 512 columns)
    For every integration and group, and for every amplifier, the 3-sigma clipped mean
    of the top reference rows and that of the bottom reference rows are computed
    (odd and even columns separately with ``odd_even_columns``), averaged, and
    subtracted from every pixel the amplifier (and parity) reads. Then, with
    ``use_side_ref_pixels``, the left and right reference columns give a signal per
    row: a running median over a box ``side_smoothing_length`` rows tall and 4 columns
    wide, left and right averaged, times ``side_gain``, is subtracted from every
    pixel of the row. A subarray read through one output (``NOUTPUTS = 1``) instead
    subtracts one clipped mean of all its reference pixels (per column parity).
MIRI (1024 x 1032, 4 reference columns each side, amplifiers interleaved ``x % 4``)
    Group 0 is subtracted from every group of the integration; for every later group
    the clipped means of the left and of the right reference column of each amplifier
    (odd and even rows separately with ``odd_even_rows``) are averaged and subtracted
    from the pixels of that amplifier; group 0 is added back. MIRI subarrays are not
    corrected.

Laziness and chunking: the statistics need only the reference rows and columns, a
few rows/columns of the ramp. They are gathered lazily into small arrays (the ramp's
chunks along integration and group), reduced by the kernels of
:mod:`daskref.kernels.refpix` to per-(integration, group, class) offsets and
per-(integration, group, row) side signals, and subtracted by broadcasting. Any
chunking of ``integration``, ``group``, ``y`` and ``x`` is accepted, and the result
does not depend on it.

Dependencies along ``y`` (what bounds memory on row slabs): near-IR full-width data
(4 outputs) need, for a row slab, the slab itself, the top/bottom reference rows and
``side_smoothing_length // 2`` rows of each neighbouring slab for the running median.
:func:`edge_row_chunks` makes the reference rows, and guards of that many rows
between big slabs, thin slabs of their own, so a big slab depends only on thin ones.
MIRI full frame, near-IR single-output subarrays with reference columns and the
transposed near-IR detectors use reference pixels found in every row, so each
corrected slab depends on every slab of its group (:func:`needs_all_rows`). With a
``spill`` function those slabs go to temporary storage while the offsets are
measured and are corrected when read back (the input is still read once); without
one they wait in memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

import dask.array as da
import numpy as np
import xarray as xr

from daskref import dq
from daskref.algorithms.steps._common import STEP_KEYWORDS, mark_done
from daskref.geometry import (
    MIRI_FULL,
    MIRI_REF_COLUMNS,
    NIR_BORDER,
    NIR_FULL,
    amplifier_index,
    is_miri,
    reference_pixel_mask,
)
from daskref.kernels.refpix import (
    clipped_mean_by_label,
    mean_ignoring_nan,
    running_median_rows,
    subtract_column_and_row,
)

__all__ = ["RefpixSkippedWarning", "edge_row_chunks", "needs_all_rows", "refpix"]

DIMS = ("integration", "group", "y", "x")

#: Near-IR detectors whose detector frame is the transpose of the DMS frame (their
#: amplifiers run along DMS ``y``). Flips do not matter to the algorithm: they map
#: amplifiers to amplifiers, parities to parities, top to bottom and left to right,
#: all of which are treated symmetrically.
TRANSPOSED_DETECTORS = frozenset({"NRS1", "NRS2", "NIS"})

#: Clipping threshold of the reference-pixel means (``scipy.stats.sigmaclip(a, 3, 3)``
#: in the pipeline).
CLIP_SIGMA = 3.0


class RefpixSkippedWarning(UserWarning):
    """The data have no usable reference pixels; ``refpix`` returned them unchanged."""


def refpix(
    ds: xr.Dataset,
    *,
    odd_even_columns: bool = True,
    use_side_ref_pixels: bool = True,
    side_smoothing_length: int = 11,
    side_gain: float = 1.0,
    odd_even_rows: bool = True,
    spill: Callable[[da.Array], da.Array] | None = None,
) -> xr.Dataset:
    """Subtract the bias drifts measured by the reference pixels.

    Parameters
    ----------
    ds : xarray.Dataset
        ``ramp`` (integration, group, y, x), DN, float (superbias-subtracted for the
        near-IR detectors); ``pixeldq`` (y, x), uint32, optional; other variables pass
        through. ``ds.attrs`` holds the header keywords ``INSTRUME``, ``DETECTOR``,
        ``SUBSTRT1``/``SUBSTRT2``/``SUBSIZE1``/``SUBSIZE2`` (full frame when absent) and
        ``NOUTPUTS`` (4 when absent).
    odd_even_columns : bool
        Near-IR: separate top/bottom means for even and odd (full-frame) columns.
    use_side_ref_pixels : bool
        Near-IR with 4 outputs: subtract the smoothed side reference signal per row.
    side_smoothing_length : int
        Height in rows of the running-median box of the side signal (odd; an even value
        is raised by one).
    side_gain : float
        Factor applied to the side signal before it is subtracted.
    odd_even_rows : bool
        MIRI: separate means for even and odd rows.
    spill : callable, optional
        ``spill(array) -> array``, the same values through temporary storage (e.g.
        :func:`daskref.io.spill.spill`). Used, when the ramp is split in row slabs,
        for the data whose correction needs every row (:func:`needs_all_rows`):
        the offsets are measured on the slabs as they come and the slabs are
        corrected when read back, so memory stays bounded by the slab size.

    Returns
    -------
    xarray.Dataset
        A lazy (dask-backed) copy of ``ds`` whose ``ramp`` (float32, DN) is corrected,
        other variables unchanged, with ``S_REFPIX = "COMPLETE"`` in its attrs, or
        ``"SKIPPED"`` (and a :class:`RefpixSkippedWarning`) when the data hold no
        reference pixels or are a MIRI subarray; then ``ramp`` is returned unchanged.

    Notes
    -----
    With ``R_c`` the clipped mean of the reference pixels of class ``c`` (amplifier, and
    parity when selected) in the bottom (``b``) and top (``t``) reference rows of a
    group, the near-IR correction of a pixel at row ``y`` of class ``c`` is::

        out = data - (R_c,b + R_c,t) / 2 - side_gain * (M_left(y) + M_right(y)) / 2

    where ``M(y)`` is the median of the good side reference pixels, themselves first
    corrected by their own class offset, in rows ``y - h .. y + h``
    (``h = side_smoothing_length // 2``, reflected at the detector edges). Only one of
    ``b``/``t`` (or ``left``/``right``) is used when the other is absent (subarrays)
    or entirely flagged; a class without any good reference pixel is not corrected.

    For MIRI, with ``D = data[g] - data[0]`` the group difference, the correction of a
    pixel of amplifier ``a`` at a row of parity ``p`` is the average of the clipped
    means of ``D`` over the left and right reference columns of ``a`` in rows of parity
    ``p``; group 0 is left unchanged.

    Reference pixels flagged DO_NOT_USE in ``pixeldq`` are left out of every
    statistic. ``groupdq`` is not used, like in the pipeline (reference pixels collect
    no charge, so they do not saturate).

    References
    ----------
    JWST pipeline documentation, ``refpix`` step: description and arguments
    (https://jwst-pipeline.readthedocs.io/en/latest/jwst/refpix/index.html).
    """
    if "ramp" not in ds:
        raise KeyError("refpix needs a 'ramp' variable (integration, group, y, x)")
    ramp = ds["ramp"]
    if set(ramp.dims) != set(DIMS):
        raise ValueError(f"ramp must have dims {DIMS}, got {ramp.dims}")
    if side_smoothing_length < 1:
        raise ValueError("side_smoothing_length must be >= 1")
    attrs = ds.attrs
    data = _as_dask(ramp.transpose(*DIMS))
    if not np.issubdtype(data.dtype, np.floating):
        data = data.astype(np.float32)
    ny, nx = data.shape[2:]
    if "pixeldq" in ds:
        pixeldq = _as_dask(ds["pixeldq"].transpose("y", "x"))
    else:
        pixeldq = da.zeros((ny, nx), dtype=dq.PIXEL_DTYPE, chunks=(ny, nx))

    # The statistics come from ``data``; the correction is applied to ``target``. When
    # every slab's correction needs all rows, ``target`` is ``data`` spilled to disk
    # slab by slab, and so are the (small) offsets and every other variable: the
    # spilled data wait on disk, not in memory, until the offsets exist, and what
    # follows depends on the input only through spilled blocks (see
    # ``daskref._compute``, which computes the spills first).
    target, keep = data, _same
    spilling = (spill is not None and len(data.chunks[2]) > 1
                and needs_all_rows(attrs, (ny, nx)))
    if spilling:
        target, keep = spill(data), spill
    if is_miri(attrs):
        if (ny, nx) != MIRI_FULL:
            return _skipped(ds, "MIRI subarray: the refpix correction is not applied to "
                            "MIRI subarrays; ramp returned unchanged")
        even, odd = _correction_miri(data, pixeldq, odd_even_rows=odd_even_rows,
                                     checkpoint=keep)
        corrected = _apply_miri(target, even, odd)
    else:
        transposed = str(attrs.get("DETECTOR", "")).upper() in TRANSPOSED_DETECTORS
        geo = _detector_frame_attrs(attrs, transposed)
        if transposed:
            data = data.transpose(0, 1, 3, 2)
            target = target.transpose(0, 1, 3, 2)
            pixeldq = pixeldq.T
        shape = data.shape[2:]
        if not reference_pixel_mask(geo, shape).any():
            return _skipped(ds, "the data contain no reference pixels (subarray "
                            f"{attrs.get('SUBARRAY', '?')}); ramp returned unchanged")
        single_output = shape != NIR_FULL and int(attrs.get("NOUTPUTS", 4) or 4) == 1
        if single_output:
            column = _correction_nir_single_output(
                data, pixeldq, geo, odd_even_columns=odd_even_columns, checkpoint=keep
            )
            side = None
        else:
            column, side = _correction_nir(
                data,
                pixeldq,
                geo,
                odd_even_columns=odd_even_columns,
                use_side_ref_pixels=use_side_ref_pixels,
                side_smoothing_length=side_smoothing_length,
                side_gain=side_gain,
                checkpoint=keep,
            )
        corrected = _subtract_nir(target, column, side)
        if transposed:
            corrected = corrected.transpose(0, 1, 3, 2)

    out_ramp = xr.DataArray(
        corrected, dims=DIMS, coords=ramp.coords, attrs=ramp.attrs, name=ramp.name
    ).transpose(*ramp.dims)
    out = ds.copy()
    out["ramp"] = out_ramp
    if spilling:
        for name, var in ds.data_vars.items():
            if name != "ramp" and isinstance(var.data, da.Array) and "y" in var.dims:
                out[name] = var.copy(data=spill(var.data))
    return mark_done(out, "refpix")


# ------------------------------------------------------------------- chunk planning


def _four_output_nir(attrs: Mapping, shape: tuple[int, int]) -> bool:
    """Near-IR data corrected per amplifier from the top/bottom rows (``_correct_nir``)."""
    if is_miri(attrs):
        return False
    transposed = str(attrs.get("DETECTOR", "")).upper() in TRANSPOSED_DETECTORS
    frame = shape[::-1] if transposed else shape
    return not (frame != NIR_FULL and int(attrs.get("NOUTPUTS", 4) or 4) == 1)


def needs_all_rows(attrs: Mapping, shape: tuple[int, int]) -> bool:
    """Whether the correction of any row slab depends on every row of its group.

    True for MIRI full frame (reference columns in every row), near-IR single-output
    subarrays with reference columns, and the transposed near-IR detectors (NIRSpec,
    NIRISS: their top/bottom detector rows are DMS columns). False for NIRCam-like
    4-output data (each slab needs only the reference-row slabs and its neighbours)
    and for data that :func:`refpix` passes through unchanged.

    Parameters
    ----------
    attrs : mapping
        Header attributes (``INSTRUME``, ``DETECTOR``, subarray keywords, ``NOUTPUTS``).
    shape : (int, int)
        ``(ny, nx)`` of the data (DMS frame).
    """
    if is_miri(attrs):
        return tuple(shape) == MIRI_FULL
    transposed = str(attrs.get("DETECTOR", "")).upper() in TRANSPOSED_DETECTORS
    geo = _detector_frame_attrs(attrs, transposed)
    frame = tuple(shape[::-1]) if transposed else tuple(shape)
    refmask = reference_pixel_mask(geo, frame)
    if not refmask.any():
        return False
    if transposed:
        return True
    if _four_output_nir(attrs, tuple(shape)):
        return False
    ref_rows = refmask.all(axis=1)
    return bool(refmask[~ref_rows].any())


def side_halo(side_smoothing_length: int) -> int:
    """Rows on each side a row's side reference signal depends on."""
    return (side_smoothing_length + (side_smoothing_length % 2 == 0)) // 2


def edge_row_chunks(attrs: Mapping, shape: tuple[int, int], rows: tuple[int, ...],
                    guard: int = 0) -> tuple[int, ...]:
    """Row slabs that keep refpix's dependencies between slabs small.

    For 4-output near-IR data, the per-amplifier offsets of every group come from
    the top/bottom reference rows: as slabs of their own they are read and
    calibrated alone, so the offsets never wait for (and never keep in memory) a
    whole first or last slab of science rows. The running median of the side
    reference signal needs ``side_halo`` rows beyond each slab: with ``guard``
    (``side_halo``) rows between consecutive slabs made a thin slab of their own,
    a slab depends only on thin slabs, never on its big neighbours, and the scheduler
    can finish slabs one at a time. (A guard of twice that made every slab at least
    ten rows high, so a slab of a stack grew with the number of inputs.)

    Parameters
    ----------
    attrs : mapping
        Header attributes.
    shape : (int, int)
        ``(ny, nx)`` of the data.
    rows : tuple of int
        Slab heights to start from (summing to ``ny``).
    guard : int
        Height of the thin slabs between big ones (0: none).

    Returns
    -------
    tuple of int
        ``rows`` unchanged unless the data are 4-output near-IR (not transposed);
        then about the same slab height, with the reference rows and the guards
        split off.
    """
    ny, nx = shape
    transposed = str(attrs.get("DETECTOR", "")).upper() in TRANSPOSED_DETECTORS
    if is_miri(attrs) or transposed or not _four_output_nir(attrs, tuple(shape)):
        return tuple(rows)
    y0, _ = _origin(attrs)
    rows_ff = y0 + np.arange(ny)
    n_bottom = int(np.count_nonzero(rows_ff < NIR_BORDER))
    n_top = int(np.count_nonzero(rows_ff >= NIR_FULL[0] - NIR_BORDER))
    middle = ny - n_bottom - n_top
    if middle <= 0 or (n_bottom == 0 and n_top == 0 and guard == 0):
        return tuple(rows)
    height = max(rows) if rows else middle
    body: list[int] = []
    left = middle
    step = max(height - guard, guard, 1) if guard else height
    while left > 0:
        if body and guard:
            if left <= guard + step // 4:  # a short remainder joins the last slab
                body[-1] += left
                break
            body.append(guard)
            left -= guard
        take = min(step, left)
        body.append(take)
        left -= take
    return tuple(r for r in (n_bottom, *body, n_top) if r > 0)


# --------------------------------------------------------------------------- helpers


def _as_dask(da_: xr.DataArray) -> da.Array:
    """Return the dask array behind ``da_`` (one chunk if it is numpy-backed)."""
    data = da_.data
    if isinstance(data, da.Array):
        return data
    return da.from_array(np.asarray(data), chunks=-1)


def _skipped(ds: xr.Dataset, message: str) -> xr.Dataset:
    warnings.warn(message, RefpixSkippedWarning, stacklevel=3)
    out = ds.copy()
    out.attrs = dict(ds.attrs)
    out.attrs[STEP_KEYWORDS["refpix"]] = "SKIPPED"
    return out


def _detector_frame_attrs(attrs: Mapping, transposed: bool) -> dict:
    """Header attrs describing the data in the detector frame (x = fast readout axis)."""
    geo = dict(attrs)
    if transposed:
        for a, b in (("SUBSTRT1", "SUBSTRT2"), ("SUBSIZE1", "SUBSIZE2")):
            va, vb = attrs.get(a), attrs.get(b)
            geo.pop(a, None)
            geo.pop(b, None)
            if vb is not None:
                geo[a] = vb
            if va is not None:
                geo[b] = va
    return geo


def _origin(attrs: Mapping) -> tuple[int, int]:
    """0-based full-frame (row, column) of the first data pixel."""
    return int(attrs.get("SUBSTRT2", 1)) - 1, int(attrs.get("SUBSTRT1", 1)) - 1


def _good(pixeldq: da.Array) -> da.Array:
    """Flag pixels that may enter the reference statistics (not DO_NOT_USE)."""
    return (pixeldq & dq.DO_NOT_USE) == 0


def _class_offsets(values: da.Array, good: da.Array, labels: np.ndarray, nsets: int,
                   nclasses: int) -> da.Array:
    """Clipped-mean offsets per (integration, group, class) from reference samples.

    ``values`` (integration, group, sample) and ``good`` (sample,) are gathered
    reference pixels; ``labels[k] = set * nclasses + class`` where ``set`` numbers the
    independent estimates to be averaged (top/bottom, left/right). Classes without
    any good sample get 0 (no correction).
    """
    values = values.rechunk({2: -1})
    good = good.rechunk(-1)
    return da.blockwise(
        _offsets_block, "igc",
        values, "igk",
        good, "k",
        new_axes={"c": nclasses},
        concatenate=True,
        dtype=np.float64,
        meta=np.empty((0, 0, 0), dtype=np.float64),
        labels=labels,
        nsets=nsets,
        nclasses=nclasses,
    )


def _offsets_block(values, good, *, labels, nsets, nclasses):
    means = clipped_mean_by_label(values, labels, nsets * nclasses, good, sigma=CLIP_SIGMA)
    combined = means[..., :nclasses]
    for s in range(1, nsets):
        combined = mean_ignoring_nan(combined, means[..., s * nclasses:(s + 1) * nclasses])
    return np.where(np.isfinite(combined), combined, 0.0)


def _per_column(offsets: da.Array, classes: np.ndarray, x_chunks) -> da.Array:
    """Offsets (integration, group, class) -> (integration, group, 1, x), float32."""
    col = offsets[:, :, classes].astype(np.float32)
    return col.rechunk({2: x_chunks})[:, :, None, :]


# ------------------------------------------------------------------------- near-IR


def _nir_classes(geo: Mapping, shape: tuple[int, int], odd_even_columns: bool):
    _, x0 = _origin(geo)
    amps = amplifier_index(geo, shape).astype(np.int64)
    if not odd_even_columns:
        return amps, 4
    parity = (x0 + np.arange(shape[1])) % 2
    return amps * 2 + parity, 8


def _same(arr):
    return arr


def _correction_nir(data, pixeldq, geo, *, odd_even_columns, use_side_ref_pixels,
                    side_smoothing_length, side_gain, checkpoint=_same):
    ni, ng, ny, nx = data.shape
    y0, x0 = _origin(geo)
    full_rows, full_cols = NIR_FULL
    b = NIR_BORDER
    rows_ff = y0 + np.arange(ny)
    cols_ff = x0 + np.arange(nx)
    classes, ncls = _nir_classes(geo, (ny, nx), odd_even_columns)
    good = _good(pixeldq)

    # top / bottom reference rows -> offsets per (integration, group, class). The
    # reference rows are basic slices at the ends of the data, so the offsets depend
    # only on the row slabs that hold them.
    bottom = np.flatnonzero(rows_ff < b)
    top = np.flatnonzero(rows_ff >= full_rows - b)
    edge_rows = np.r_[bottom, top]
    if edge_rows.size:
        is_top = (rows_ff[edge_rows] >= full_rows - b).astype(np.int64)
        labels = (is_top[:, None] * ncls + classes[None, :]).ravel()
        pieces = [(data[:, :, r[0]:r[-1] + 1, :], good[r[0]:r[-1] + 1, :])
                  for r in (bottom, top) if r.size]
        values = da.concatenate([v for v, _ in pieces], axis=2).rechunk({2: -1, 3: -1})
        values = values.reshape(ni, ng, edge_rows.size * nx)
        gsel = da.concatenate([g for _, g in pieces], axis=0).rechunk(-1).reshape(-1)
        offsets = checkpoint(_class_offsets(values, gsel, labels, nsets=2, nclasses=ncls))
    else:
        offsets = da.zeros((ni, ng, ncls), chunks=(data.chunks[0], data.chunks[1], ncls))

    correction = _per_column(offsets, classes, data.chunks[3])

    side_cols = np.flatnonzero((cols_ff < b) | (cols_ff >= full_cols - b))
    if use_side_ref_pixels and side_cols.size:
        side = _side_signal(
            data, good, offsets, side_cols,
            side_classes=classes[side_cols],
            is_left=cols_ff[side_cols] < b,
            length=side_smoothing_length,
            row_start=y0,
            full_rows=full_rows,
        )
        side = checkpoint((side_gain * side).astype(np.float32))
        return correction, side
    return correction, None


def _side_signal(data, good, offsets, side_cols, *, side_classes, is_left, length,
                 row_start, full_rows):
    """Side reference signal (integration, group, y), float64, DN, chunked like ``data``.

    The running median of row ``y`` needs the side reference pixels of rows
    ``y - h .. y + h`` only (``h = length // 2``; the rows reflected at a detector
    edge are within the same distance), so each row slab of ``data`` gets its signal
    from the side columns of its own rows plus ``h`` rows of each neighbour slab:
    memory and dependencies stay local along ``y``. Each slab's window is handed to
    :func:`running_median_rows` with its own first row, which gives exactly the
    values of the whole-column computation.
    """
    ny = data.shape[2]
    half = side_halo(length)
    values = data[:, :, :, side_cols].rechunk({3: -1})
    side_good = good[:, side_cols].rechunk({1: -1})
    # offsets removed elementwise, in float64, before the windows are cut
    offs = offsets.rechunk({2: -1})[:, :, side_classes].rechunk({2: -1})
    values = values.astype(np.float64) - offs[:, :, None, :]
    bounds = np.cumsum((0,) + data.chunks[2])
    slabs = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        a, z = max(lo - half, 0), min(hi + half, ny)
        window = values[:, :, a:z, :].rechunk({2: -1})
        slabs.append(da.map_blocks(
            _side_block, window, side_good[a:z].rechunk(-1),
            drop_axis=3,
            chunks=window.chunks[:2] + ((hi - lo,),),
            dtype=np.float64,
            meta=np.empty((0, 0, 0), dtype=np.float64),
            core=slice(lo - a, hi - a),
            is_left=is_left,
            length=length,
            row_start=row_start + a,
            full_rows=full_rows,
        ))
    return da.concatenate(slabs, axis=2)


def _side_block(values, good, *, core, is_left, length, row_start, full_rows):
    """Side signal of the ``core`` rows of a window of offset-corrected side pixels.

    ``values`` (integration, group, y, column) float64 and ``good`` (y, column) cover
    the window starting at full-frame row ``row_start``; returns (integration, group,
    core rows).
    """
    shape = values.shape[:2] + (core.stop - core.start,)
    estimates = []
    for mask in (is_left, ~is_left):
        if mask.any():
            estimates.append(running_median_rows(
                values[..., mask], good[:, mask], length,
                row_start=row_start, full_rows=full_rows,
            )[..., core])
        else:
            estimates.append(np.full(shape, np.nan))
    signal = mean_ignoring_nan(*estimates)
    return np.where(np.isfinite(signal), signal, 0.0)


def _subtract_nir(target, column, side):
    """``target - (column + side)``, in one pass per block (no full-size correction).

    ``column``: (integration, group, 1, x) per-column offsets; ``side``: the
    (integration, group, y) side signal, or None; float32.
    """
    if side is None:
        return target - column.astype(target.dtype)
    return da.map_blocks(subtract_column_and_row, target, column, side[:, :, :, None],
                         dtype=target.dtype, meta=np.empty((0,) * 4, target.dtype))


def _correction_nir_single_output(data, pixeldq, geo, *, odd_even_columns, checkpoint=_same):
    """Near-IR subarray read through one output: one clipped mean (per parity)."""
    ni, ng, ny, nx = data.shape
    classes, _ = _nir_classes(geo, (ny, nx), odd_even_columns)
    classes = classes - classes.min()  # one amplifier: 0/1 (parity) or 0
    ncls = 2 if odd_even_columns else 1
    refmask = reference_pixel_mask(geo, (ny, nx))
    good = _good(pixeldq)
    ref_rows = np.flatnonzero(refmask.all(axis=1))
    other_rows = np.setdiff1d(np.arange(ny), ref_rows)
    ref_cols = np.flatnonzero(refmask[other_rows].any(axis=0))
    parts, labels, goods = [], [], []
    if ref_rows.size:
        parts.append(data[:, :, ref_rows, :].rechunk({2: -1, 3: -1})
                     .reshape(ni, ng, ref_rows.size * nx))
        labels.append(np.broadcast_to(classes, (ref_rows.size, nx)).ravel())
        goods.append(good[ref_rows, :].rechunk(-1).reshape(-1))
    if ref_cols.size:
        # columns first: the selection never copies whole slabs
        sub = data[:, :, :, ref_cols][:, :, other_rows, :].rechunk({2: -1, 3: -1})
        parts.append(sub.reshape(ni, ng, other_rows.size * ref_cols.size))
        labels.append(np.broadcast_to(classes[ref_cols], (other_rows.size, ref_cols.size)).ravel())
        goods.append(good[other_rows, :][:, ref_cols].rechunk(-1).reshape(-1))
    values = da.concatenate(parts, axis=2) if len(parts) > 1 else parts[0]
    good_all = da.concatenate(goods) if len(goods) > 1 else goods[0]
    offsets = checkpoint(_class_offsets(values, good_all, np.concatenate(labels), nsets=1,
                                        nclasses=ncls))
    return _per_column(offsets, classes, data.chunks[3])


# ---------------------------------------------------------------------------- MIRI


def _correction_miri(data, pixeldq, *, odd_even_rows, checkpoint=_same):
    ni, ng, ny, nx = data.shape
    ncols = MIRI_REF_COLUMNS
    ref_cols = np.r_[np.arange(ncols), np.arange(nx - ncols, nx)]
    amps = np.arange(nx) % 4
    row_parity = np.arange(ny) % 2 if odd_even_rows else np.zeros(ny, dtype=np.int64)
    nrowcls = 2 if odd_even_rows else 1
    ncls = 4 * nrowcls

    ref = data[:, :, :, ref_cols]
    diff = (ref - ref[:, :1]).rechunk({2: -1, 3: -1})  # group 0 subtracted
    is_right = (ref_cols >= ncols).astype(np.int64)
    labels = (is_right[None, :] * ncls + amps[ref_cols][None, :] * nrowcls
              + row_parity[:, None]).ravel()
    values = diff.reshape(ni, ng, ny * ref_cols.size)
    gsel = _good(pixeldq)[:, ref_cols].rechunk(-1).reshape(-1)
    offsets = checkpoint(_class_offsets(values, gsel, labels, nsets=2, nclasses=ncls))

    even = _per_column(offsets, amps * nrowcls, data.chunks[3])
    odd = _per_column(offsets, amps * nrowcls + 1, data.chunks[3]) if odd_even_rows else None
    return even, odd


def _apply_miri(target, even, odd):
    """``target`` minus the even-row (and odd-row) corrections of :func:`_correction_miri`.

    The row choice is made on the corrected slabs themselves, so no full-size
    correction array exists on its own (it would be ready, and held, long before
    the data it applies to).
    """
    corrected = target - even.astype(target.dtype)
    if odd is None:
        return corrected
    ny = target.shape[2]
    is_odd = da.from_array((np.arange(ny) % 2 == 1)[None, None, :, None],
                           chunks=(1, 1, target.chunks[2], 1))
    return da.where(is_odd, target - odd.astype(target.dtype), corrected)
