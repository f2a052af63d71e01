"""Calibration-prep products on disk: pipeline-layout FITS, zarr stores, reference input.

Products and names (``<base>`` is the input's file name without ``.fits`` and without
a trailing pipeline suffix such as ``_uncal`` or ``_refpix``):

=====================  ==========================  =====================================
file                   DATAMODL                    extensions
=====================  ==========================  =====================================
``<base>_<step>.fits`` ``RampModel``               SCI f4 (integration, group, y, x),
                                                   PIXELDQ u4 (y, x), GROUPDQ u1
``<base>_ramp.fits``   ``RampModel``               the same, just before ramp fitting
``<base>_rate.fits``   ``ImageModel``              SCI, ERR, DQ, VAR_POISSON, VAR_RNOISE
                                                   (y, x)
``<base>_rateints``    ``CubeModel``               the same, (integration, y, x)
``<base>_fitopt.fits`` ``RampFitOutputModel``      SLOPE, SIGSLOPE, YINT, SIGYINT,
                                                   WEIGHTS, VAR_POISSON, VAR_RNOISE
                                                   (integration, segment, y, x),
                                                   PEDESTAL (integration, y, x),
                                                   CRMAG (integration, cr, y, x)
=====================  ==========================  =====================================

``<step>`` is the suffix calwebb_detector1 gives a step's saved result: the step
name (``dq_init``, ``saturation``, ``superbias``, ``refpix``, ``linearity``,
``dark_current``, ``jump``, ...). The primary header carries the input's header
keywords with the updated ``S_*`` status keys.

How the writing streams
-----------------------
Each FITS file is laid out before any data exist: headers are built and the byte
offset of every extension's data is known. The compute graph then holds, per
product, one *allocate* task (writes the headers to ``.<name>.part-<pid>`` and sizes
the file), one *write* task per chunk of every array (stores the chunk's region,
big-endian, with ``os.pwrite`` at its byte offsets), and a *finalize* task that
renames the part file once every chunk is written. (Not a ``numpy.memmap``: a store
into a mapped page of the sparse file that the disk has no room for kills the process
with SIGBUS, where ``pwrite`` fails with ``ENOSPC``, which is reported as an
:class:`~daskref.io.exposure_writer.OutputError` naming the product, its part file
removed.) The arrays' chunks are row
slabs, as they are read, so each task holds one slab and memory stays bounded by the
chunk size whatever the file size; a plane-by-plane writer would instead need every
slab of a plane at once. Because the write tasks refer to the products' own dask keys
(``to_delayed(optimize_graph=False)``), a single ``dask.compute`` over all products
of all inputs shares their common work and reads every input byte once.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import xarray as xr
from astropy.io import fits

from daskref import __version__
from daskref.io.exposure_writer import BLOCK, _image_header
from daskref.io.fits import _layout, _lazy_rows, row_chunks_for

#: Suffixes removed from an input name to get ``<base>`` (jwst's known-suffix idea).
KNOWN_SUFFIXES = (
    "uncal", "ramp", "rate", "rateints", "fitopt", "group_scale", "dq_init", "saturation",
    "ipc", "superbias", "refpix", "linearity", "persistence", "dark_current", "firstframe",
    "lastframe", "rscd", "jump",
)

#: FITS extensions of each product: (EXTNAME, variable, dims, dtype, BUNIT).
LAYOUTS: dict[str, list[tuple[str, str, tuple[str, ...], str, str]]] = {
    "ramp": [
        ("SCI", "ramp", ("integration", "group", "y", "x"), "f4", "DN"),
        ("PIXELDQ", "pixeldq", ("y", "x"), "u4", ""),
        ("GROUPDQ", "groupdq", ("integration", "group", "y", "x"), "u1", ""),
    ],
    "rate": [
        ("SCI", "rate", ("y", "x"), "f4", "DN/s"),
        ("ERR", "rate_err", ("y", "x"), "f4", "DN/s"),
        ("DQ", "dq", ("y", "x"), "u4", ""),
        ("VAR_POISSON", "rate_var_poisson", ("y", "x"), "f4", "(DN/s)**2"),
        ("VAR_RNOISE", "rate_var_rnoise", ("y", "x"), "f4", "(DN/s)**2"),
    ],
    "rateints": [
        ("SCI", "rateints", ("integration", "y", "x"), "f4", "DN/s"),
        ("ERR", "rateints_err", ("integration", "y", "x"), "f4", "DN/s"),
        ("DQ", "dq_ints", ("integration", "y", "x"), "u4", ""),
        ("VAR_POISSON", "rateints_var_poisson", ("integration", "y", "x"), "f4", "(DN/s)**2"),
        ("VAR_RNOISE", "rateints_var_rnoise", ("integration", "y", "x"), "f4", "(DN/s)**2"),
    ],
    "fitopt": [
        ("SLOPE", "slope", ("integration", "segment", "y", "x"), "f4", "DN/s"),
        ("SIGSLOPE", "sigslope", ("integration", "segment", "y", "x"), "f4", "DN/s"),
        ("YINT", "yint", ("integration", "segment", "y", "x"), "f4", "DN"),
        ("SIGYINT", "sigyint", ("integration", "segment", "y", "x"), "f4", "DN"),
        ("PEDESTAL", "pedestal", ("integration", "y", "x"), "f4", "DN"),
        ("WEIGHTS", "weights", ("integration", "segment", "y", "x"), "f4", ""),
        ("CRMAG", "crmag", ("integration", "cr", "y", "x"), "f4", "DN"),
        ("VAR_POISSON", "var_poisson", ("integration", "segment", "y", "x"), "f4", ""),
        ("VAR_RNOISE", "var_rnoise", ("integration", "segment", "y", "x"), "f4", ""),
    ],
}
DATAMODELS = {"ramp": "RampModel", "rate": "ImageModel", "rateints": "CubeModel",
              "fitopt": "RampFitOutputModel"}

_KEYWORD = re.compile(r"^[A-Z0-9_-]{1,8}$")
_SKIP_KEYS = {"BUNIT", "SIMPLE", "BITPIX", "NAXIS", "EXTEND", "DATAMODL", "FILENAME"}


# --------------------------------------------------------------------------- naming


def base_name(path: str | os.PathLike) -> str:
    """Input file name without directories, ``.fits`` and one known pipeline suffix.

    Examples
    --------
    >>> base_name("/data/jw01_nrca1_uncal.fits")
    'jw01_nrca1'
    >>> base_name("ssb/dark_003_refpix.fits")
    'dark_003'
    """
    name = Path(path).name
    if name.lower().endswith(".fits"):
        name = name[:-5]
    for suffix in sorted(KNOWN_SUFFIXES, key=len, reverse=True):
        if name.endswith("_" + suffix) and len(name) > len(suffix) + 1:
            return name[: -len(suffix) - 1]
    return name


def product_path(input_path: str | os.PathLike, outdir: str | os.PathLike, suffix: str) -> Path:
    """``<outdir>/<base>_<suffix>.fits``."""
    return Path(outdir) / f"{base_name(input_path)}_{suffix}.fits"


def product_kinds(ds: xr.Dataset, *, save_ramp: bool = False) -> dict[str, str]:
    """Products to write for a prep result: ``{kind: suffix}``.

    A result without ramp fitting gives its ramp under the suffix of the last
    requested step; a ramp-fit result gives ``rate`` and ``rateints`` (and
    ``fitopt`` when it holds the optional output), plus ``ramp`` with ``save_ramp``.
    """
    if "rate" not in ds.data_vars:
        return {"ramp": str(ds.attrs.get("prep_last_step", "ramp"))}
    kinds = {"rate": "rate", "rateints": "rateints"}
    if "slope" in ds.data_vars:
        kinds["fitopt"] = "fitopt"
    if save_ramp:
        kinds = {"ramp": "ramp"} | kinds
    return kinds


# --------------------------------------------------------------------------- headers


def _fits_value(value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, str):
        return value
    return None


def primary_header(attrs: Mapping, *, datamodel: str, filename: str, kind: str) -> dict:
    """Primary-header keywords of a product from the prep result's attributes."""
    header: dict = {}
    for key, value in attrs.items():
        key_u = str(key).upper()
        if not _KEYWORD.match(key_u) or key_u in _SKIP_KEYS:
            continue
        v = _fits_value(value)
        if v is not None:
            header[key_u] = v
    if kind == "ramp":
        header.pop("S_RAMP", None)
    header["DATAMODL"] = datamodel
    header["FILENAME"] = filename
    header.setdefault("TELESCOP", "JWST")
    header["ORIGIN"] = "daskref"
    steps = ", ".join(attrs.get("prep_steps", [])) or "none"
    history = [f"daskref {__version__} prep: steps run {steps}"]
    for p in attrs.get("inputs", []) or []:
        history.append(f"input {Path(p).name}")
    header["HISTORY"] = history
    return header


# --------------------------------------------------------------------------- streaming FITS


class _FileRegion:
    """Writes array regions into the data area of one extension of a FITS file.

    ``final`` is the name the file gets once complete, the one an error names.
    """

    def __init__(self, path: str, offset: int, shape: tuple[int, ...], dtype: np.dtype,
                 final: str | None = None):
        self.path, self.offset, self.shape, self.dtype = path, offset, tuple(shape), np.dtype(dtype)
        self.final = final or path

    def disk_dtype(self) -> np.dtype:
        if self.dtype.kind == "u" and self.dtype.itemsize > 1:
            return np.dtype(f">i{self.dtype.itemsize}")
        return self.dtype.newbyteorder(">")

    def encode(self, block: np.ndarray) -> np.ndarray:
        if self.dtype.kind == "u" and self.dtype.itemsize > 1:
            flip = self.dtype.type(1 << (8 * self.dtype.itemsize - 1))
            return (np.asarray(block).astype(self.dtype) ^ flip).view(f"i{self.dtype.itemsize}")
        return np.asarray(block).astype(self.dtype, copy=False)

    def runs(self, region: tuple[slice, ...]):
        """``(byte offset in the file, start, stop)`` of each contiguous run of a region.

        ``start:stop`` index the region's block flattened in C order. The trailing
        axes the region covers whole, with the partial axis before them, form one
        run per index of the axes before that (a row slab of a ``(nint, ngroup, y,
        x)`` array: one run per group).
        """
        shape = self.shape
        region = tuple(slice(*r.indices(n)[:2]) for r, n in zip(region, shape, strict=True))
        k = len(shape)
        while k > 0 and region[k - 1] == slice(0, shape[k - 1]):
            k -= 1
        lead = max(k - 1, 0)  # axes of one run each; axis ``lead`` and after: contiguous
        strides = [int(np.prod(shape[d + 1:])) for d in range(len(shape))]
        counts = [r.stop - r.start for r in region]
        run = int(np.prod(counts[lead:]))
        base = sum(r.start * st for r, st in zip(region, strides, strict=True))
        size = self.dtype.itemsize
        for n, index in enumerate(np.ndindex(*counts[:lead])):
            start = base + sum(i * st for i, st in zip(index, strides, strict=False))
            yield self.offset + start * size, n * run, (n + 1) * run

    def write(self, region: tuple[slice, ...], block: np.ndarray) -> None:
        data = np.ascontiguousarray(self.encode(block), dtype=self.disk_dtype()).reshape(-1)
        raw = memoryview(data).cast("B")
        size = data.dtype.itemsize
        fd = os.open(self.path, os.O_WRONLY)
        try:
            for offset, start, stop in self.runs(region):
                view = raw[start * size:stop * size]
                while view:  # pwrite may write less than asked
                    done = os.pwrite(fd, view, offset)
                    view, offset = view[done:], offset + done
        finally:
            os.close(fd)


def _allocate(path: str, headers: Sequence[tuple[int, bytes]], size: int,
              final: str | None = None) -> str:
    from daskref.io.exposure_writer import OutputError, remove_stale

    final = final or path
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        remove_stale(final)  # the part files of a run that was killed
        with open(path, "wb") as f:
            for offset, text in headers:
                f.seek(offset)
                f.write(text)
            f.truncate(size)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.remove(path)
        raise OutputError(final, exc) from None
    return path


def _write_slab(_allocated, targets, regions, *blocks) -> int:
    """Store one row slab of several arrays (possibly of several files).

    ``regions``: per block, the list of its slices (lists, not tuples, in the graph).
    """
    from daskref.io.exposure_writer import OutputError

    for target, region, block in zip(targets, regions, blocks, strict=True):
        try:
            target.write(tuple(region), block)
        except OSError as exc:
            # the part file is removed by whoever computes the graph (write_products,
            # mkrefs), which knows every file of the run
            raise OutputError(target.final, exc) from None
    return 0


def _finalize(_writes, tmp: str, path: str) -> str:
    os.replace(tmp, path)
    return path


def _regions(chunks: tuple[tuple[int, ...], ...]):
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(int) for c in chunks]
    for index in np.ndindex(*[len(c) for c in chunks]):
        yield index, tuple(slice(int(starts[d][i]), int(starts[d][i] + chunks[d][i]))
                           for d, i in enumerate(index))


def tmp_path(path: str | os.PathLike) -> Path:
    """The part-file name a product is written to before its rename."""
    path = Path(path)
    return path.with_name(f".{path.name}.part-{os.getpid()}")


class FitsPlan:
    """The byte layout of one FITS file to stream, and the arrays that fill it.

    Parameters
    ----------
    path : path-like
        Final file name.
    primary : mapping
        Primary-header keywords (``HISTORY``: list of lines).
    extensions : sequence of (EXTNAME, array, dtype, extra header keywords)
        ``array`` is a dask or numpy array in C order of the FITS axes reversed
        (e.g. (integration, group, y, x)).
    """

    def __init__(self, path: str | os.PathLike,
                 primary: Mapping, extensions: Sequence[tuple[str, object, np.dtype, Mapping]]):
        self.path = Path(path)
        self.tmp = str(tmp_path(self.path))
        phdr = fits.PrimaryHDU().header
        phdr["EXTEND"] = True
        for key, value in primary.items():
            if key == "HISTORY":
                for line in value:
                    phdr.add_history(line)
            else:
                phdr[key] = value
        self.headers = [(0, phdr.tostring(padding=True).encode("ascii"))]
        pos = len(self.headers[0][1])
        self.targets: list[tuple[da.Array, _FileRegion]] = []
        for name, array, dtype, extra in extensions:
            dtype = np.dtype(dtype)
            shape = tuple(int(n) for n in np.shape(array))
            text = _image_header(name, shape, dtype, extra).tostring(padding=True).encode("ascii")
            self.headers.append((pos, text))
            pos += len(text)
            nbytes = int(np.prod(shape)) * dtype.itemsize
            arr = array if isinstance(array, da.Array) else da.from_array(np.asarray(array))
            self.targets.append((arr, _FileRegion(self.tmp, pos, shape, dtype,
                                                  str(self.path))))
            pos += nbytes + (-nbytes % BLOCK)
        self.size = pos


def _row_range(region: tuple[slice, ...]) -> tuple[int, int]:
    """The rows (second-to-last axis) a block covers; (0, 1) for 1-D arrays."""
    if len(region) < 2:
        return (0, 1)
    return (region[-2].start, region[-2].stop)


def stream_fits(plans: Sequence[FitsPlan], groups: Sequence[int] | None = None):
    """Lazy, streaming, atomic writes of several FITS files, one task per row slab.

    Every block covering the same rows, of every array of the files of one group (the
    products of one input), is written by one task, and each such task waits for
    the previous slab's. A slab's whole chain (read, calibrate, write all its
    products) thus ends in a single task and the slabs form a sequence, which the
    scheduler follows: slabs are finished one after another, so memory stays bounded
    by the chunk size whatever the number of slabs, groups or inputs. (Without the
    sequence, dask's static ordering was seen to run the cheap branches of many slabs
    (data quality, reference reads) long before their writes, holding most of a
    ramp in memory.)

    Parameters
    ----------
    plans : sequence of FitsPlan
    groups : sequence of int, optional
        Which plans share slabs (the products of one input); by default all do.
        Slab writes run in the order of (group, rows): input after input, slab after
        slab. (Slab-major order was measured to hold about two slabs per input;
        input-major order holds, beyond one input's slabs, the reference data
        shared by all inputs, which does not grow with their number.)

    Returns
    -------
    list of dask.delayed.Delayed
        One per plan; each computes to its final path once all its slabs are written
        and the part file renamed. Nothing touches the disk before they are computed.
    """
    # The tasks are written as one graph layer by hand: built call by call with
    # dask.delayed, each call re-optimised the whole graph so far, which cost
    # seconds per file for a few dozen slabs.
    from dask.base import tokenize
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    token = tokenize([(p.tmp, str(p.path)) for p in plans],
                     [[a.name for a, _ in p.targets] for p in plans], groups)
    name = f"write-fits-{token}"
    layer: dict = {}
    allocs = [(f"{name}-allocate", k) for k in range(len(plans))]
    for key, p in zip(allocs, plans, strict=True):
        layer[key] = (_allocate, p.tmp, p.headers, p.size, str(p.path))
    groups = [0] * len(plans) if groups is None else list(groups)
    slabs: dict[tuple[int, int, int], list] = {}
    arrays = []
    for k, plan in enumerate(plans):
        for array, target in plan.targets:
            arrays.append(array)
            keys = np.empty([len(c) for c in array.chunks], dtype=object)
            for index in np.ndindex(*keys.shape):
                keys[index] = (array.name, *index)
            for index, region in _regions(array.chunks):
                slabs.setdefault((groups[k], *_row_range(region)), []).append(
                    (k, target, region, keys[index]))
    writes_of: list[list] = [[] for _ in plans]
    previous = None
    for j, rows in enumerate(sorted(slabs)):
        items = slabs[rows]
        files = sorted({k for k, *_ in items})
        key = (f"{name}-slab", j)
        layer[key] = (_write_slab, [[allocs[k] for k in files], previous],
                      [t for _, t, _, _ in items], [list(r) for _, _, r, _ in items],
                      *[b for *_, b in items])
        previous = key
        for k in files:
            writes_of[k].append(key)
    finals = [(f"{name}-finalize", k) for k in range(len(plans))]
    for key, writes, p in zip(finals, writes_of, plans, strict=True):
        layer[key] = (_finalize, writes, p.tmp, str(p.path))
    graph = HighLevelGraph.from_collections(name, layer, dependencies=arrays)
    return [Delayed(key, graph, layer=name) for key in finals]


def fits_writer(path: str | os.PathLike, primary: Mapping,
                extensions: Sequence[tuple[str, object, np.dtype, Mapping]]):
    """Lazy, streaming, atomic write of a multi-extension FITS file.

    Parameters
    ----------
    path, primary, extensions
        As for :class:`FitsPlan`.

    Returns
    -------
    dask.delayed.Delayed
        Computes to the final path; nothing touches the disk before it is computed.
    """
    return stream_fits([FitsPlan(path, primary, extensions)])[0]


def _data(da_: xr.DataArray, dims: tuple[str, ...]):
    return da_.transpose(*dims).data


def product_plan(ds: xr.Dataset, kind: str, path: str | os.PathLike) -> FitsPlan:
    """The :class:`FitsPlan` of one product (``ramp``, ``rate``, ``rateints``, ``fitopt``)."""
    layout = LAYOUTS[kind]
    missing = [var for _, var, *_ in layout if var not in ds.variables]
    if missing:
        raise ValueError(f"cannot write a {kind} product: the result lacks {missing}")
    path = Path(path)
    primary = primary_header(ds.attrs, datamodel=DATAMODELS[kind], filename=path.name,
                             kind=kind)
    exts = []
    for extname, var, dims, dtype, bunit in layout:
        data = _data(ds[var], dims)
        if np.dtype(dtype) != data.dtype:
            data = data.astype(dtype)
        exts.append((extname, data, np.dtype(dtype), {"BUNIT": bunit} if bunit else {}))
    return FitsPlan(path, primary, exts)


def product_writer(ds: xr.Dataset, kind: str, path: str | os.PathLike):
    """Lazy writer of one product (``ramp``, ``rate``, ``rateints``, ``fitopt``).

    Returns
    -------
    dask.delayed.Delayed
        Computes to the written path.
    """
    return stream_fits([product_plan(ds, kind, path)])[0]


# --------------------------------------------------------------------------- zarr


def _zarr_attrs(attrs: Mapping) -> dict:
    out = {}
    for key, value in attrs.items():
        if isinstance(value, (list, tuple)):
            out[key] = [str(v) if isinstance(v, os.PathLike) else v for v in value]
        elif isinstance(value, os.PathLike):
            out[key] = str(value)
        elif isinstance(value, np.generic):
            out[key] = value.item()
        else:
            out[key] = value
    return out


def _regular(ds: xr.Dataset) -> xr.Dataset:
    """Rechunk variables whose dask chunks zarr cannot take (irregular ones)."""
    out = ds.copy()
    for name, var in ds.data_vars.items():
        if not isinstance(var.data, da.Array):
            continue
        fix = {}
        for dim, chunks in zip(var.dims, var.data.chunks, strict=True):
            if len(chunks) > 1 and (len(set(chunks[:-1])) > 1 or chunks[-1] > chunks[0]):
                fix[dim] = chunks[0]
        if fix:
            out[name] = var.chunk(fix)
    return out


def to_zarr(ds: xr.Dataset, store: str | os.PathLike):
    """Lazily persist a prep result as a zarr store, atomically.

    The store is written to ``<store>.part`` (its metadata now, its chunks when the
    returned object is computed) and renamed to ``store`` at the end.

    Returns
    -------
    dask.delayed.Delayed
        Compute it (together with other writers) to write; computes to the path.
    """
    store = Path(store)
    part = store.with_name(store.name + ".part")
    if part.exists():
        shutil.rmtree(part)
    out = _regular(ds)
    out.attrs = _zarr_attrs(ds.attrs)
    for name in out.variables:
        out[name].encoding = {}
    delayed = out.to_zarr(part, mode="w", compute=False, consolidated=False, zarr_format=2)
    return dask.delayed(_finalize_store, pure=False)(delayed, str(part), str(store))


def _finalize_store(_written, part: str, store: str) -> str:
    if os.path.exists(store):
        shutil.rmtree(store)
    os.replace(part, store)
    return store


def open_prep_zarr(store: str | os.PathLike) -> xr.Dataset:
    """Open a store written by :func:`to_zarr` lazily (dask-backed, same variables)."""
    return xr.open_zarr(store, consolidated=False, zarr_format=2)


# --------------------------------------------------------------------------- all at once


def writers(results: Sequence[xr.Dataset], outdir: str | os.PathLike, *,
            fits_products: bool = True, zarr: bool = False, save_ramp: bool = False):
    """Lazy writers of every product of every prep result, and their final paths.

    The FITS products stream slab by slab, input after input (:func:`stream_fits`).

    Returns
    -------
    (list of Delayed, list of pathlib.Path)
    """
    outdir = Path(outdir)
    plans, groups, stores, store_tasks = [], [], [], []
    for n, ds in enumerate(results):
        inputs = ds.attrs.get("inputs") or []
        if not inputs:
            raise ValueError("a prep result without attrs['inputs'] has no name; "
                             "write it with product_writer(ds, kind, path)")
        if fits_products:
            for kind, suffix in product_kinds(ds, save_ramp=save_ramp).items():
                plans.append(product_plan(ds, kind, product_path(inputs[0], outdir, suffix)))
                groups.append(n)
        if zarr:
            last = product_kinds(ds)
            suffix = next(iter(last.values())) if "ramp" in last else "rate"
            store = outdir / f"{base_name(inputs[0])}_{suffix}.zarr"
            store_tasks.append(to_zarr(ds, store))
            stores.append(store)
    tasks = (stream_fits(plans, groups) if plans else []) + store_tasks
    return tasks, [p.path for p in plans] + stores


def write_products(results: xr.Dataset | Sequence[xr.Dataset], outdir: str | os.PathLike, *,
                   fits_products: bool = True, zarr: bool = False, save_ramp: bool = False,
                   progress: bool = False) -> list[Path]:
    """Write every product of every prep result in one compute.

    Parameters
    ----------
    results : Dataset or sequence of Dataset
        Lazy results of :func:`daskref.prep.prep` / ``prep_many``.
    outdir : path-like
        Output directory (created).
    fits_products : bool
        Write the FITS products (see the module docstring).
    zarr : bool
        Also persist each result as ``<base>_<suffix>.zarr``.
    save_ramp : bool
        With ramp fitting, also write the calibrated ramp ``<base>_ramp.fits``.
    progress : bool
        Show a progress bar.

    Returns
    -------
    list of pathlib.Path
        Every file or store written. On failure no final file is left behind.
    """
    from daskref._compute import compute
    from daskref.io.exposure_writer import check_writable

    if isinstance(results, xr.Dataset):
        results = [results]
    check_writable(outdir)  # before the work, not at its first write
    tasks, paths = writers(results, outdir, fits_products=fits_products, zarr=zarr,
                           save_ramp=save_ramp)
    try:
        compute(tasks, progress=progress)
    except BaseException:
        for p in paths:
            for leftover in (tmp_path(p), p.with_name(p.name + ".part")):
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                elif leftover.exists():
                    leftover.unlink()
        raise
    return paths


# --------------------------------------------------------------------------- references

#: Extensions read from a CRDS reference file, per reference argument of ``prep``,
#: and the variable name each becomes.
REFERENCE_EXTENSIONS: dict[str, dict[str, str]] = {
    "mask": {"DQ": "dq"},
    "saturation": {"SCI": "saturation", "DQ": "dq"},
    "superbias": {"SCI": "superbias", "DQ": "dq"},
    "linearity": {"COEFFS": "coeffs", "DQ": "dq"},
    "dark": {"SCI": "dark", "DQ": "dq"},
    "readnoise": {"SCI": "readnoise"},
    "gain": {"SCI": "gain"},
}
_DIMS = {"dark": ("group", "y", "x"), "linearity": ("coeff", "y", "x")}
#: Dimensions the value extension of each kind may have (a DQ of more is OR-ed to (y, x)).
_NDIMS = {"mask": (2,), "saturation": (2,), "superbias": (2,), "linearity": (3,),
          "dark": (3, 4), "readnoise": (2,), "gain": (2,)}
_REF_KEYS = ("SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2", "NFRAMES", "GROUPGAP",
             "INSTRUME", "DETECTOR", "REFTYPE", "NGROUPS", "NINTS", "READPATT", "SUBARRAY")
#: The REFTYPE of the file each reference argument takes.
REFERENCE_REFTYPES = {"mask": "MASK", "saturation": "SATURATION", "superbias": "SUPERBIAS",
                      "linearity": "LINEARITY", "dark": "DARK", "readnoise": "READNOISE",
                      "gain": "GAIN"}


def open_reference(path: str | os.PathLike, kind: str, *, chunk_mb: float | None = None,
                   rows: Sequence[int] | None = None) -> xr.Dataset:
    """Open a CRDS reference file lazily as a Dataset the prep steps accept.

    Parameters
    ----------
    path : path-like
        MASK, SATURATION, SUPERBIAS, LINEARITY, DARK, READNOISE or GAIN file.
    kind : str
        ``prep`` argument name: ``mask``, ``saturation``, ``superbias``,
        ``linearity``, ``dark``, ``readnoise`` or ``gain``.
    chunk_mb : float, optional
        Row-slab size of the lazy reads.
    rows : sequence of int, optional
        Explicit row slabs (summing to the reference's ``y`` size), e.g. those of
        :func:`daskref.algorithms.steps._reference.aligned_rows`; overrides
        ``chunk_mb`` for the extensions of that height.

    Returns
    -------
    xarray.Dataset
        The value variable (``saturation``, ``superbias``, ``coeffs`` (coeff, y, x),
        ``dark`` (group, y, x) or (integration, group, y, x), ``readnoise``, ``gain``)
        and ``dq`` (y, x; a DQ with more dims is OR-ed down to (y, x)), read in row
        slabs when computed. Attributes (also on each variable): the subarray origin
        and size, ``NFRAMES``/``GROUPGAP`` and ``path``.

    Raises
    ------
    daskref.io.fits.InputError
        Missing, a directory or unreadable file, a ``REFTYPE`` keyword of another
        type, or a required extension absent.
    """
    from daskref.io.fits import InputError

    path = os.fspath(path)
    if kind not in REFERENCE_EXTENSIONS:
        raise ValueError(f"unknown reference kind {kind!r}")
    if not os.path.exists(path):
        raise InputError(path, f"no such file (given as the {kind} reference)")
    if os.path.isdir(path):
        raise InputError(path, f"is a directory (given as the {kind} reference)")
    try:
        with open(path, "rb") as f:
            first = f.read(80)
    except PermissionError:
        raise InputError(path, f"cannot be read: permission denied (given as the {kind} "
                         "reference)") from None
    if not first.startswith(b"SIMPLE  ="):
        raise InputError(path, f"is not a readable FITS file (it does not begin with "
                         f"'SIMPLE  ='; given as the {kind} reference)")
    try:
        with fits.open(path, memmap=False) as hdul:
            names = [h.name.upper() for h in hdul]
            header = hdul[0].header
            attrs = {k: header[k] for k in _REF_KEYS if k in header}
            layouts = {ext: _layout(hdul, names.index(ext))
                       for ext in REFERENCE_EXTENSIONS[kind] if ext in names}
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise InputError(path, f"is not a readable FITS reference file ({exc}; given as "
                         f"the {kind} reference)") from None
    want = REFERENCE_REFTYPES[kind]
    have = str(attrs.get("REFTYPE", "")).strip().upper()
    # a file without REFTYPE (not from CRDS) is taken on its extensions alone
    if have and have != want:
        raise InputError(path, f"REFTYPE is {have}, but it is given as the {kind} reference, "
                         f"which needs a {want} file")
    value_ext = next((e for e, v in REFERENCE_EXTENSIONS[kind].items() if v != "dq"), "DQ")
    if value_ext not in layouts:
        raise InputError(path, f"has no {value_ext} extension; not a {kind} reference file")
    shape = layouts[value_ext].shape
    if len(shape) not in _NDIMS[kind]:
        want = " or ".join(f"{n}-D" for n in _NDIMS[kind])
        raise InputError(path, f"{value_ext} is {len(shape)}-D {shape}, but a "
                         f"{REFERENCE_REFTYPES[kind]} reference's {value_ext} is {want} "
                         f"(given as the {kind} reference)")
    attrs["path"] = path
    data_vars = {}
    for ext, layout in layouts.items():
        name = REFERENCE_EXTENSIONS[kind][ext]
        ny, nx = layout.shape[-2:]
        lead = int(np.prod(layout.shape[:-2])) if len(layout.shape) > 2 else 1
        slabs = (tuple(int(r) for r in rows) if rows is not None and sum(rows) == ny
                 else row_chunks_for(ny, lead * nx * layout.dtype.itemsize, chunk_mb))
        arr = _lazy_rows(layout, path, slabs, f"ref-{kind}-{ext.lower()}")
        if name == "dq":
            while arr.ndim > 2:
                arr = _or_reduce(arr)
            dims = ("y", "x")
        elif arr.ndim == 2:
            dims = ("y", "x")
        elif kind == "dark" and arr.ndim == 4:
            dims = ("integration", "group", "y", "x")
        else:
            dims = _DIMS.get(kind, tuple(f"dim_{i}" for i in range(arr.ndim - 2)) + ("y", "x"))
        data_vars[name] = xr.DataArray(arr, dims=dims, attrs=dict(attrs))
    return xr.Dataset(data_vars, attrs=attrs)


def _or_reduce(arr: da.Array) -> da.Array:
    out = arr[0]
    for k in range(1, arr.shape[0]):
        out = out | arr[k]
    return out

