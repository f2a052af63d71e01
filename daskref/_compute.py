"""One-pass computation of several lazy products (below io and api in the layers)."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import re
import sys
from collections.abc import Sequence

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.base import collections_to_expr, get_scheduler
from dask.delayed import Delayed

#: Key prefix of the tasks that store a block in temporary storage
#: (:func:`daskref.io.spill.spill`).
SPILL_SAVE = "spill-save-"
SPILL_LOAD = "spill-load-"
_SAVE_NAME = re.compile(re.escape(SPILL_SAVE) + "[0-9a-f]{32}")


def _data_node(key, value):
    try:
        from dask._task_spec import DataNode
    except ImportError:  # pragma: no cover - older dask: a literal in a task tuple
        return (lambda v: v, value)
    return DataNode(key, value)


def _flatten(nested, containers=(list, tuple)) -> list:
    """Leaves of nested containers: blocks in lists or tuples, keys in lists."""
    if isinstance(nested, containers):
        return [leaf for item in nested for leaf in _flatten(item, containers)]
    return [nested]


def _assemble(collection, result):
    """The computed value of a collection from the results of its keys."""
    if isinstance(collection, Delayed):
        return result

    def nested(x):  # schedulers hand nested key lists back as lists or tuples
        return [nested(v) for v in x] if isinstance(x, (list, tuple)) else x

    result = nested(result)
    if collection.ndim == 0:
        while isinstance(result, list):
            result = result[0]
        return np.asarray(result).reshape(())
    return da.core.concatenate3(result)


def spilled_first(collections: list, get=None) -> tuple[list, list[str]]:
    """Run every spill-save task first, then hand back collections that start from them.

    A graph that spills blocks to disk (refpix on data whose reference pixels lie
    in every row) is computed in two passes: first everything the spill-save tasks
    need (reading the inputs, the statistics), saving the blocks as they come; then
    the rest, whose graph now begins at the saved blocks. Collections that read no
    spilled block (a READNOISE from the raw stack beside a prepped DARK) are computed
    in the first pass, so the inputs they share with it are still read once. Done in
    one pass, the
    scheduler would be free to keep every block in memory after all. Inputs are
    still read once: the second pass reads only the spilled blocks.

    Parameters
    ----------
    collections : list
        Dask arrays and ``Delayed`` objects (others are returned unchanged).
    get : callable, optional
        ``get(graph, keys)``; default: the configured local scheduler.

    Returns
    -------
    (list, list of str)
        The same collections, their spill-save keys replaced by the saved paths
        (unchanged when the graph has no spill-save tasks), and those paths.
    """
    lazy = [c for c in collections if isinstance(c, (da.Array, Delayed))]
    if not lazy:
        return collections, []
    graph = dict(collections_to_expr(lazy, optimize_graph=False).__dask_graph__())
    # exactly the save tasks: a graph optimised earlier may hold fused
    # "spill-save-spill-load-..." tasks, which return data and stay where they are
    saves = [k for k in graph
             if isinstance(k, tuple) and isinstance(k[0], str) and _SAVE_NAME.fullmatch(k[0])]
    if not saves:
        return collections, []
    # Collections that never read a spilled block are computed in the first pass too,
    # so the inputs they share with the spilled work are read only once.
    independent = [i for i, c in enumerate(collections)
                   if isinstance(c, (da.Array, Delayed)) and not any(
                       isinstance(k, tuple) and str(k[0]).startswith(SPILL_LOAD)
                       for k in c.__dask_graph__())]
    keys = saves + [collections[i].__dask_keys__() for i in independent]
    results = list((get or get_scheduler(collections=lazy))(graph, keys))
    paths = results[:len(saves)]
    graph.update({k: _data_node(k, v) for k, v in zip(saves, paths, strict=True)})
    early = dict(zip(independent, results[len(saves):], strict=True))
    for i, result in early.items():  # the second pass starts from these blocks too
        if isinstance(collections[i], da.Array):
            keys_i = collections[i].__dask_keys__()
            graph.update({k: _data_node(k, v)
                          for k, v in zip(_flatten(keys_i, list), _flatten(result), strict=True)})
    out = []
    for i, c in enumerate(collections):
        if i in early:
            c = _assemble(c, early[i])
        elif isinstance(c, da.Array):
            c = da.Array(graph, c.name, c.chunks, c.dtype, meta=c._meta)
        elif isinstance(c, Delayed):
            c = Delayed(c.key, graph)
        out.append(c)
    return out, paths


#: glibc's ``M_TRIM_THRESHOLD`` (bytes): free heap memory above it goes back to the
#: system (the value ``distributed`` gives its workers' ``MALLOC_TRIM_THRESHOLD_``).
MALLOC_TRIM_THRESHOLD = 65536
_M_TRIM_THRESHOLD = -1


@functools.lru_cache(maxsize=1)
def return_freed_memory() -> bool:
    """Have glibc give freed memory back to the system promptly (once per process).

    Slab after slab, a computation allocates and frees arrays of a few to a few tens
    of megabytes. glibc serves them from its heap (its mmap threshold grows past
    that size after the first frees) and keeps what is freed: measured on ten
    full-frame darks, the process grew to 4.1 GB where its live arrays never
    exceeded 3 GB, and grew with the number of inputs. Setting the trim threshold
    (which also fixes the mmap threshold) brought the peak to 2.6 GB at no cost in
    time. Threaded and synchronous scheduling run in this process; ``distributed``
    workers get the same setting from their nanny. Skipped without glibc, or with
    ``DASKREF_MALLOC_TRIM=0``.

    Returns
    -------
    bool
        True if the setting was made.
    """
    if os.environ.get("DASKREF_MALLOC_TRIM", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD))
    except (OSError, AttributeError):  # not glibc
        return False


def compute(products: Sequence, *, progress: bool = False) -> list:
    """Compute several products (Datasets or other dask collections) in one pass.

    Every dask array of every product goes into one ``dask.compute`` (or one
    ``Client.compute`` when a ``distributed`` client is active, with its progress
    bar; else ``dask.diagnostics.ProgressBar``), so inputs shared by the products
    are read once. The arrays are gathered by hand rather than passing the Datasets
    to ``dask.compute``, which loses tasks of some graphs (map_overlap, full_like)
    with the dask and xarray versions of late 2026.
    """
    return_freed_memory()
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
    bar = contextlib.nullcontext()
    if progress and client is None:
        from dask.diagnostics import ProgressBar

        bar = ProgressBar(minimum=1.0)
    from daskref.io.spill import remove

    spilled: list[str] = []
    try:
        with bar:
            arrays, spilled = spilled_first(arrays,
                                            client.get if client is not None else None)
        # the second pass is not re-optimised: that could inline a cheap spill-load
        # task into each of its consumers and read a block several times
        optimize = not spilled
        if client is not None:
            futures = client.compute(arrays, optimize_graph=optimize)
            if progress:
                from distributed import progress as dist_progress

                dist_progress(futures)
            values = client.gather(futures)
        else:
            with bar:
                values = dask.compute(*arrays, optimize_graph=optimize)
    finally:
        remove(spilled)
    out = [obj.copy() if isinstance(obj, xr.Dataset) else obj for obj in products]
    for (i, name), value in zip(index, values, strict=True):
        if name is None:
            out[i] = value
        else:
            out[i].variables[name].data = value
    return out
