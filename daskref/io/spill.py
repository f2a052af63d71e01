"""Temporary storage of dask blocks: let slabs wait on disk instead of in memory.

Some corrections of a slab need a statistic over every slab of the ramp (the MIRI
reference columns, for instance). The local schedulers keep every slab in memory
until that statistic exists. :func:`spill` routes an array through ``.npy`` files:
each block is saved as soon as it is computed and released, and read back (then
deleted) when a consumer needs it. Every input byte is still read once; the spilled
data are written and read once more, on local disk.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph


def spill_directory(directory: str | os.PathLike | None = None) -> Path:
    """Where spilled blocks go: ``directory``, else dask's ``temporary-directory``.

    On a multi-node cluster give a directory every worker can read (the spilled
    block may be read back on another node).
    """
    if directory is None:
        directory = dask.config.get("temporary-directory", None) or tempfile.gettempdir()
    return Path(directory)


def _save(block: np.ndarray, path: str) -> str:
    from .exposure_writer import OutputError, _errno_of, describe, is_write_failure

    tmp = f"{path}.{uuid.uuid4().hex}.part"
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(block), allow_pickle=False)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if not is_write_failure(exc):
            raise
        raise OutputError(Path(path).parent, f"spill directory: {describe(exc)} "
                          "(give another with --spill-dir)", _errno_of(exc)) from None
    return path


def _load(path: str) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def remove(paths) -> None:
    """Delete spilled blocks and their folders (what :func:`daskref.compute` does after use)."""
    folders = set()
    for path in paths:
        with contextlib.suppress(OSError):
            os.remove(path)
        folders.add(os.path.dirname(path))
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


#: ``daskref-spill-<host>-<pid>-<token>``: whose folder it is, so that a later run on
#: the same host can tell the folders of a killed run (SIGKILL skips the cleanup) from
#: those of a running one, also in a directory that several hosts share.
_FOLDER = re.compile(r"daskref-spill-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]+")
_swept: set[str] = set()


def remove_stale_spills(directory: str | os.PathLike | None = None) -> list[Path]:
    """Remove the spill folders that killed runs of this host left in ``directory``.

    Returns
    -------
    list of Path
        The folders removed.
    """
    from .exposure_writer import _alive

    directory = spill_directory(directory)
    removed = []
    with contextlib.suppress(OSError):
        for folder in directory.glob("daskref-spill-*"):
            m = _FOLDER.fullmatch(folder.name)
            if (m and m["host"] == socket.gethostname() and folder.is_dir()
                    and not _alive(int(m["pid"]))):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed


def spill(arr: da.Array, directory: str | os.PathLike | None = None) -> da.Array:
    """The same array, each block passed through a temporary ``.npy`` file.

    Parameters
    ----------
    arr : dask.array.Array
        Any dtype and shape.
    directory : path-like, optional
        See :func:`spill_directory`. Files go to
        ``<directory>/daskref-spill-<host>-<pid>-<token>/``;
        :func:`daskref._compute.compute` deletes them once the computation is over
        (a plain ``dask.compute`` leaves them to the end of the process), and the
        first spill of a later process removes those that a killed one left
        (:func:`remove_stale_spills`).

    Returns
    -------
    dask.array.Array
        Same shape, chunks and dtype. Lazy: nothing is written before it is computed.
        Compute it once (a second compute writes and reads the blocks again).
    """
    # unique per call: two spills of one array must not share files or keys
    token = tokenize(arr, uuid.uuid4().hex)
    where = spill_directory(directory)
    if str(where) not in _swept:  # once per directory and process
        _swept.add(str(where))
        remove_stale_spills(where)
    folder = where / f"daskref-spill-{socket.gethostname()}-{os.getpid()}-{token}"
    atexit.register(shutil.rmtree, folder, True)
    save, load = f"spill-save-{token}", f"spill-load-{token}"
    dsk = {}
    for index in np.ndindex(*arr.numblocks):
        path = str(folder / ("_".join(map(str, index)) + ".npy"))
        dsk[(save, *index)] = (_save, (arr.name, *index), path)
        dsk[(load, *index)] = (_load, (save, *index))
    graph = HighLevelGraph.from_collections(load, dsk, dependencies=[arr])
    return da.Array(graph, load, chunks=arr.chunks, dtype=arr.dtype, meta=arr._meta)
