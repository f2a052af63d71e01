"""Chunking checks shared by the algorithms."""

from __future__ import annotations

from collections.abc import Iterable

import xarray as xr


def require_single_chunk(obj: xr.DataArray | xr.Dataset, dims: Iterable[str], name: str = "ramp"):
    """Raise an actionable error unless ``obj`` has one chunk along each of ``dims``.

    Statistics across a stack (sigma clipping, medians, ramp fits) need every sample
    of a pixel in one task; only the pixel axes may be split.

    Raises
    ------
    ValueError
        Naming the offending dimension and the ``.chunk(...)`` call that fixes it.
    """
    chunks = obj.chunksizes if isinstance(obj, xr.Dataset) else (
        dict(zip(obj.dims, obj.chunks, strict=True)) if obj.chunks is not None else {}
    )
    bad = [d for d in dims if d in chunks and len(chunks[d]) > 1]
    if bad:
        fix = ", ".join(f"{d}=-1" for d in bad)
        raise ValueError(
            f"{name} must have a single chunk along {bad!r} (statistics need every sample of a "
            f"pixel in one task); call `.chunk({fix})` and split only the pixel axes y/x"
        )


def lookup_values(index, values):
    """``values[index]`` element-wise (lazy for a dask ``index``).

    A class index of -1 takes the last entry of ``values`` and -2 the one before, the
    convention of the bad-pixel searches (none, reference pixel).
    """
    import dask.array as da

    if isinstance(index, da.Array):
        return da.map_blocks(_values_at, index, values, dtype=values.dtype)
    return _values_at(index, values)


def _values_at(index, values):
    import numpy as np

    return values[np.asarray(index).astype(np.intp)]
