"""Reference-pixel statistics on plain numpy arrays (no xarray, no dask).

These are the per-chunk pieces of the ``refpix`` step
(:func:`daskref.algorithms.steps.refpix.refpix`):

* :func:`clipped_mean_by_label` -- 3-sigma clipped mean of reference pixels, one per
  class (amplifier, column or row parity, top/bottom or left/right edge), for every
  integration and group at once;
* :func:`running_median_rows` -- the side reference signal of the near-IR detectors, a
  running median over a box ``length`` rows tall and as wide as the side reference
  columns, reflected at the detector edges;
* :func:`mean_ignoring_nan` -- average two estimates, falling back to whichever exists.

All values are in DN. Missing estimates (no usable reference pixel) are NaN.
"""

from __future__ import annotations

import numba
import numpy as np

from ._clip_numba import nanmedian_rows

__all__ = ["clipped_mean_by_label", "mean_ignoring_nan", "reflect_index", "running_median_rows",
           "subtract_column_and_row"]


def clipped_mean_by_label(
    values: np.ndarray,
    labels: np.ndarray,
    nlabels: int,
    good: np.ndarray | None = None,
    *,
    sigma: float = 3.0,
    maxiters: int | None = None,
) -> np.ndarray:
    """Compute the iterated sigma-clipped mean of the samples of each label.

    For every leading index (integration, group, ...) and every label ``l``, the samples
    ``values[..., k]`` with ``labels[k] == l`` and ``good[k]`` are clipped the way
    ``scipy.stats.sigmaclip(a, sigma, sigma)`` clips: repeat ``keep = |a - mean| <= sigma
    * std`` (population std of the kept samples) until nothing more is rejected; the
    result is the mean of the kept samples.

    Parameters
    ----------
    values : numpy.ndarray, dims (..., sample), DN
        Reference-pixel values; the last axis runs over pixels.
    labels : numpy.ndarray of int, dims (sample,)
        Class of each pixel, ``0 <= label < nlabels``; negative labels are ignored.
    nlabels : int
        Number of classes.
    good : numpy.ndarray of bool, dims (sample,) or (..., sample), optional
        False for pixels to leave out (for example DO_NOT_USE in PIXELDQ).
    sigma : float
        Clipping threshold in standard deviations, both sides (3.0 in the pipeline).
    maxiters : int, optional
        Cap on the clipping iterations; by default iterate until convergence.

    Returns
    -------
    numpy.ndarray of float64, dims (..., label), DN
        Clipped means; NaN for a label without any good sample.

    Notes
    -----
    Sums run in float64 along the last (contiguous) axis, one leading index at a time
    as far as numpy is concerned, so a result does not depend on how many integrations
    or groups share the call.
    """
    values = np.asarray(values)
    labels = np.asarray(labels)
    lead = values.shape[:-1]
    nsample = values.shape[-1]
    if labels.shape != (nsample,):
        raise ValueError(f"labels must have shape ({nsample},), got {labels.shape}")
    flat = values.reshape(-1, nsample)
    if good is None:
        good_flat = np.ones((1, nsample), dtype=bool)
    else:
        good_flat = np.broadcast_to(np.asarray(good, dtype=bool), values.shape).reshape(
            -1, nsample
        )
    out = np.full((flat.shape[0], nlabels), np.nan)
    for label in range(nlabels):
        cols = np.flatnonzero(labels == label)
        if cols.size == 0:
            continue
        v = np.ascontiguousarray(flat[:, cols], dtype=np.float64)
        keep = np.ascontiguousarray(
            np.broadcast_to(good_flat[:, cols], v.shape), dtype=bool
        ).copy()
        out[:, label] = _clipped_mean_rows(v, keep, sigma, maxiters)
    return out.reshape(*lead, nlabels)


def _clipped_mean_rows(v: np.ndarray, keep: np.ndarray, sigma: float, maxiters: int | None):
    """Clipped mean of each row of ``v`` over the samples where ``keep``; NaN if none."""
    iteration = 0
    while True:
        count = keep.sum(axis=-1)
        mean = _masked_mean(v, keep, count)
        if maxiters is not None and iteration >= maxiters:
            return mean
        dev = np.where(keep, v - mean[:, None], 0.0)
        std = np.sqrt(_divide((dev * dev).sum(axis=-1), count))
        with_data = count > 0
        lo = (mean - sigma * std)[:, None]
        hi = (mean + sigma * std)[:, None]
        new = keep & (v >= lo) & (v <= hi)
        new[~with_data] = False
        # a row whose mask did not change has converged; re-evaluating it gives the
        # same mask again, so updating every row at once is safe
        if not (new != keep).any():
            return mean
        keep = new
        iteration += 1


def _masked_mean(v: np.ndarray, keep: np.ndarray, count: np.ndarray) -> np.ndarray:
    return _divide(np.where(keep, v, 0.0).sum(axis=-1), count)


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with NaN where ``den`` is 0 (no warning raised)."""
    return np.divide(num, den, out=np.full(np.shape(num), np.nan), where=den > 0)


def mean_ignoring_nan(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Average of two estimates; the one that exists where the other is NaN.

    Parameters
    ----------
    a, b : numpy.ndarray, same shape, DN
        Two estimates of the same quantity (top and bottom, or left and right).

    Returns
    -------
    numpy.ndarray of float64
        ``(a + b) / 2`` where both are finite, ``a`` or ``b`` where only one is, NaN
        where neither is.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    fa, fb = np.isfinite(a), np.isfinite(b)
    out = np.where(fa & fb, 0.5 * (np.where(fa, a, 0.0) + np.where(fb, b, 0.0)), np.nan)
    out = np.where(fa & ~fb, a, out)
    return np.where(fb & ~fa, b, out)


def reflect_index(index: np.ndarray, size: int) -> np.ndarray:
    """Reflect indices into ``[0, size)`` without repeating the edge element.

    ``-1 -> 1``, ``size -> size - 2`` (numpy's ``pad(mode="reflect")``), repeated for
    indices more than one period outside.
    """
    index = np.asarray(index)
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    m = np.mod(index, period)
    return np.where(m >= size, period - m, m)


def running_median_rows(
    values: np.ndarray,
    good: np.ndarray,
    length: int,
    *,
    row_start: int = 0,
    full_rows: int | None = None,
    compiled: bool = True,
) -> np.ndarray:
    """Compute a running median over a box ``length`` rows tall, all columns wide.

    The value for row ``i`` is the median of the good pixels of rows ``i - h .. i + h``
    (``h = length // 2``; an even ``length`` is raised to the next odd number, as the
    pipeline does) of all columns of ``values``. Rows are reflected at the detector
    edges (full-frame rows ``0`` and ``full_rows - 1``, the edge row not repeated);
    window rows that fall outside the data (a subarray) simply do not contribute.

    Parameters
    ----------
    values : numpy.ndarray, dims (..., y, column), DN
        Side reference pixels (the ``column`` axis holds the reference columns of one
        side).
    good : numpy.ndarray of bool, dims (y, column)
        False for pixels to leave out (DO_NOT_USE).
    length : int
        Height of the box in rows (``side_smoothing_length``, 11 by default).
    row_start : int
        Full-frame row of the first data row (``SUBSTRT2 - 1``).
    full_rows : int, optional
        Number of full-frame rows; default ``row_start + ny`` (reflect at the data
        edges).
    compiled : bool
        Slide a sorted window down the rows (:func:`_running_median_block`); False:
        the numpy reference, every box gathered and its median taken.

    Returns
    -------
    numpy.ndarray of float64, dims (..., y), DN
        The running median; NaN for rows whose box holds no good pixel.
    """
    values = np.asarray(values)
    good = np.asarray(good, dtype=bool)
    *lead, ny, ncol = values.shape
    if good.shape != (ny, ncol):
        raise ValueError(f"good must have shape {(ny, ncol)}, got {good.shape}")
    if length < 1:
        raise ValueError("length must be >= 1")
    if length % 2 == 0:
        length += 1
    half = length // 2
    if full_rows is None:
        full_rows = row_start + ny
    rows = row_start + np.arange(ny)[:, None] + np.arange(-half, half + 1)[None, :]
    local = reflect_index(rows, full_rows) - row_start  # (y, window)
    inside = (local >= 0) & (local < ny)
    local = np.clip(local, 0, max(ny - 1, 0))
    window_good = (inside[:, :, None] & good[local]).reshape(ny, -1)  # (y, window*column)
    empty = ~window_good.any(axis=-1)

    flat = values.reshape(-1, ny, ncol)
    out = np.empty((flat.shape[0], ny))
    if compiled:
        interior = inside.all(axis=1) & (np.diff(local, axis=1) == 1).all(axis=1)
        _running_median_block(flat, good, local, inside, interior, out)
        return out.reshape(*lead, ny)
    for k in range(flat.shape[0]):
        window = flat[k][local].reshape(ny, -1).astype(np.float64)
        window[~window_good] = np.nan
        window[empty] = 0.0  # no good pixel: placeholder, set to NaN below
        nanmedian_rows(window, out[k])
    out[:, empty] = np.nan
    return out.reshape(*lead, ny)


@numba.njit(cache=True, nogil=True)
def _running_median_block(values, good, local, inside, interior, out):
    """The running medians of :func:`running_median_rows` with a sliding sorted window.

    Where the boxes of two consecutive rows are both plain runs of data rows, the
    next box is the last one less its first row plus one new row: their good
    values leave and enter the sorted window by binary search and a shift, instead
    of a sort of the whole box per row. Elsewhere (reflected or clipped boxes at
    the edges) the box is gathered and sorted afresh. The medians are those of
    ``np.nanmedian`` of the boxes, bit for bit.
    """
    nlead, ny, ncol = values.shape
    window = local.shape[1]
    c = np.empty(window * ncol)
    for k in range(nlead):
        n = 0
        for yy in range(ny):
            if yy > 0 and interior[yy] and interior[yy - 1]:
                gone = local[yy - 1, 0]
                for col in range(ncol):
                    if good[gone, col]:
                        v = np.float64(values[k, gone, col])
                        if not np.isnan(v):
                            pos = np.searchsorted(c[:n], v)
                            for q in range(pos, n - 1):
                                c[q] = c[q + 1]
                            n -= 1
                new = local[yy, window - 1]
                for col in range(ncol):
                    if good[new, col]:
                        v = np.float64(values[k, new, col])
                        if not np.isnan(v):
                            pos = np.searchsorted(c[:n], v)
                            for q in range(n, pos, -1):
                                c[q] = c[q - 1]
                            c[pos] = v
                            n += 1
            else:
                n = 0
                for j in range(window):
                    if inside[yy, j]:
                        r = local[yy, j]
                        for col in range(ncol):
                            if good[r, col]:
                                v = np.float64(values[k, r, col])
                                if not np.isnan(v):
                                    c[n] = v
                                    n += 1
                c[:n].sort()
            if n == 0:
                out[k, yy] = np.nan
            elif n % 2 == 1:
                out[k, yy] = c[n // 2]
            else:
                out[k, yy] = (c[n // 2 - 1] + c[n // 2]) / 2.0


def subtract_column_and_row(target: np.ndarray, column: np.ndarray, row: np.ndarray) -> np.ndarray:
    """``target - (column + row)`` with its broadcasting, in one pass.

    Parameters
    ----------
    target : ndarray, (integration, group, y, x)
    column : ndarray, (integration, group, 1, x)
    row : ndarray, (integration, group, y, 1)
        Both of ``target``'s dtype (float32); the sum is rounded to it first, as
        numpy does.

    Returns
    -------
    ndarray, like ``target``
    """
    out = np.empty(target.shape, np.result_type(target, column, row))
    _subtract_column_and_row(target, column, row, out)
    return out


@numba.njit(cache=True, nogil=True)
def _subtract_column_and_row(target, column, row, out):
    nint, ngroup, ny, nx = target.shape
    for i in range(nint):
        for g in range(ngroup):
            for yy in range(ny):
                r = row[i, g, yy, 0]
                for xx in range(nx):
                    out[i, g, yy, xx] = target[i, g, yy, xx] - (column[i, g, 0, xx] + r)
