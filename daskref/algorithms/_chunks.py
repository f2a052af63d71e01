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


def apply_stack(func, *args: xr.DataArray, input_core_dims, output_core_dims, output_dtypes,
                output_sizes: dict | None = None, kwargs: dict | None = None):
    """``xr.apply_ufunc(..., dask="parallelized")`` without copying every block.

    ``apply_ufunc`` moves the core (stack) dimensions last and dask's gufunc
    machinery then concatenates each argument's blocks along them, which copies
    the whole (transposed) block even when it is a single chunk: on a stack of
    darks that copy took as long as all the statistics. Here each task hands the
    kernel the transposed *views* of its blocks, exactly what the copy held but
    without making it; kernels read their samples along the last axes as before.

    Parameters
    ----------
    func : callable
        ``func(*blocks, **kwargs)``: numpy arrays with the core dimensions last;
        returns one array or a tuple, each with the loop dimensions first and then
        its output core dimensions.
    *args : DataArray
        All with the same loop (non-core) dimensions; each core dimension must be a
        single chunk.
    input_core_dims, output_core_dims, output_dtypes :
        As in :func:`xarray.apply_ufunc`.
    output_sizes : dict, optional
        Sizes of output core dimensions that are not input dimensions.
    kwargs : dict, optional
        Keyword arguments for ``func``.

    Returns
    -------
    DataArray or tuple of DataArray
        Lazy for dask inputs; eager inputs give eager results (``func`` called once).
    """
    kwargs = dict(kwargs or {})
    sizes = dict(output_sizes or {})
    for arg, core in zip(args, input_core_dims, strict=True):
        require_single_chunk(arg, core, arg.name or "input")
        sizes.update({d: arg.sizes[d] for d in core})
    out_core_sizes = [tuple(sizes[d] for d in dims) for dims in output_core_dims]
    ncore = [len(core) for core in input_core_dims]
    single = len(output_core_dims) == 1

    def run(*arrays):
        import dask.array as da

        if not any(isinstance(a, da.Array) for a in arrays):
            return func(*arrays, **kwargs)
        outs = _blockwise_views(func, arrays, ncore, out_core_sizes, output_dtypes, kwargs)
        return outs[0] if single else tuple(outs)

    return xr.apply_ufunc(run, *args, input_core_dims=input_core_dims,
                          output_core_dims=output_core_dims, dask="allowed")


def _unwrap(block):
    while isinstance(block, list):  # blockwise lists the (single) blocks of a dummy index
        block = block[0]
    return block


def _call_on_views(func, kwargs, *blocks):
    return func(*(_unwrap(b) for b in blocks), **kwargs)


def _blockwise_views(func, arrays, ncore, out_core_sizes, dtypes, kwargs):
    import itertools
    import operator

    import dask.array as da
    import numpy as np
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    arrays = [da.asarray(a) for a in arrays]
    nloop = arrays[0].ndim - ncore[0]
    loop = tuple(f"l{k}" for k in range(nloop))
    pairs = []
    for i, (a, n) in enumerate(zip(arrays, ncore, strict=True)):
        if a.ndim - n != nloop:
            raise ValueError("apply_stack: every argument needs the same loop dimensions")
        pairs += [a, loop + tuple(f"c{i}_{k}" for k in range(n))]
    token = tokenize(func, kwargs, *arrays)
    tmp = da.blockwise(_call_on_views, loop, func, None, kwargs, None, *pairs,
                       concatenate=False, name=f"{getattr(func, '__name__', 'stack')}-{token}",
                       meta=np.empty((0,) * nloop, dtype=object))
    outs = []
    block_ids = list(itertools.product(*(range(len(c)) for c in tmp.chunks)))
    for k, (core_sizes, dtype) in enumerate(zip(out_core_sizes, dtypes, strict=True)):
        name = f"{tmp.name}-out{k}"
        tail = (0,) * len(core_sizes)
        layer = {(name, *idx, *tail): (operator.getitem, (tmp.name, *idx), k)
                 for idx in block_ids}
        graph = HighLevelGraph.from_collections(name, layer, dependencies=[tmp])
        chunks = tmp.chunks + tuple((s,) for s in core_sizes)
        outs.append(da.Array(graph, name, chunks=chunks,
                             meta=np.empty((0,) * len(chunks), dtype=dtype)))
    return outs
