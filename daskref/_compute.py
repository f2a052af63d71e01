"""One-pass computation of several lazy products (below io and api in the layers)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import dask
import dask.array as da
import xarray as xr


def compute(products: Sequence, *, progress: bool = False) -> list:
    """Compute several products (Datasets or other dask collections) in one pass.

    Every dask array of every product goes into one ``dask.compute`` (or one
    ``Client.compute`` when a ``distributed`` client is active, with its progress
    bar; else ``dask.diagnostics.ProgressBar``), so inputs shared by the products
    are read once. The arrays are gathered by hand rather than passing the Datasets
    to ``dask.compute``, which loses tasks of some graphs (map_overlap, full_like)
    with the dask and xarray versions of late 2026.
    """
    products = list(products)
    index, arrays = [], []
    for i, obj in enumerate(products):
        if not isinstance(obj, xr.Dataset):  # any other dask collection, whole
            index.append((i, None))
            arrays.append(obj)
            continue
        for name, var in obj.variables.items():
            if isinstance(var.data, da.Array):
                index.append((i, name))
                arrays.append(var.data)
    client = None
    with contextlib.suppress(ImportError, ValueError):
        from distributed import get_client

        client = get_client()
    if client is not None:
        futures = client.compute(arrays)
        if progress:
            from distributed import progress as dist_progress

            dist_progress(futures)
        values = client.gather(futures)
    elif progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar(minimum=1.0):
            values = dask.compute(*arrays)
    else:
        values = dask.compute(*arrays)
    out = [obj.copy() if isinstance(obj, xr.Dataset) else obj for obj in products]
    for (i, name), value in zip(index, values, strict=True):
        if name is None:
            out[i] = value
        else:
            out[i].variables[name].data = value
    return out
