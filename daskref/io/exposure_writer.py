"""Write exposures (ramps, rates) in the JWST FITS layout, streaming plane by plane.

Used by the simulator (level-1b ``uncal`` files far larger than memory) and by the
calibration-prep products. Files are written to a temporary name in the target
directory and renamed when complete, so an interrupted run leaves no partial file.

Every output of daskref goes through :func:`atomic_path` (or, for the streamed prep
products, the same ``.<name>.part-<pid>`` naming), which is also where failures to
write are turned into an :class:`OutputError` that names the output: a full disk, a
quota, a read-only or unwritable directory. :func:`check_writable` finds the last
two before any work is done.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from astropy.io import fits

BLOCK = 2880

#: Errors of writing a file (not of reading one), reported as an :class:`OutputError`.
WRITE_ERRNOS = {errno.ENOSPC: "no space left on device (the disk is full)",
                errno.EDQUOT: "disk quota exceeded",
                errno.EFBIG: "file too large for the file system",
                errno.EROFS: "read-only file system",
                errno.EACCES: "permission denied",
                errno.EPERM: "operation not permitted"}


class OutputError(OSError):
    """An output that cannot be written: the message starts with its path.

    Raised (by :func:`atomic_path`, :func:`check_writable` and the streaming prep
    writer) with nothing of the output left behind, so that the command line can
    report it in one line.

    Parameters
    ----------
    path : path-like
        The output (file or directory) that could not be written.
    problem : str or OSError
        What went wrong; an ``OSError`` is described by its errno (``ENOSPC``: "no
        space left on device (the disk is full)").
    """

    #: What the run leaves, for the one-line report (mkrefs: the files kept).
    note: str | None = None

    def __init__(self, path, problem, code: int | None = None):
        self.path = str(path)
        self.problem = problem if isinstance(problem, str) else describe(problem)
        if code is None and isinstance(problem, BaseException):
            code = _errno_of(problem)
        super().__init__(code, f"{self.path}: {self.problem}")

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"

    def __reduce__(self):  # raised in a dask worker, re-raised in the client
        return (type(self), (self.path, self.problem, self.errno))


def _errno_of(exc: BaseException) -> int | None:
    """The errno behind an exception, also where a library re-raised it without one.

    astropy's ``writeto`` turns ``OSError(ENOSPC)`` into ``OSError("[Errno 28] No
    space left on device")``: the number survives only in the text or the context.
    """
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc.errno
        m = re.search(r"\[Errno (\d+)\]", str(exc))
        if m:
            return int(m.group(1))
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def describe(exc: BaseException) -> str:
    """A short description of a failure to write (``no space left on device ...``)."""
    code = _errno_of(exc)
    if code in WRITE_ERRNOS:
        return WRITE_ERRNOS[code]
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)


def is_write_failure(exc: BaseException) -> bool:
    """Whether an exception is one of writing (disk full, quota, permissions...)."""
    return isinstance(exc, OutputError) or (isinstance(exc, OSError)
                                            and _errno_of(exc) in WRITE_ERRNOS)


def check_writable(directory: str | os.PathLike) -> Path:
    """Check that files can be made in ``directory`` (or that it can be created).

    Done before any work, so that a run does not compute for an hour to fail at its
    first write. The test is a real one (a probe file created and removed in the
    directory, or in its nearest existing ancestor when it does not exist yet):
    permission bits say nothing for root, a read-only mount or an ACL. Nothing is
    created that outlives the call.

    Returns
    -------
    pathlib.Path
        ``directory``, absolute.

    Raises
    ------
    OutputError
        Naming ``directory``: it lies under a regular file, or nothing can be
        written there.
    """
    target = Path(os.path.abspath(directory))
    existing = target
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(target, f"not writable: {existing} is not a directory")
    try:
        # named like a temporary of daskref's, so a sweep after a kill takes it too
        fd, probe = tempfile.mkstemp(prefix=".daskref-probe.", suffix=f".part-{os.getpid()}",
                                     dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        where = "" if existing == target else f"cannot create it in {existing}: "
        raise OutputError(target, f"not writable: {where}{describe(exc)}") from None
    return target


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def remove_stale(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of ``path`` left by runs that were killed (SIGKILL).

    A temporary is ``.<name>.part-<pid>`` (:func:`atomic_path`); one whose process no
    longer exists can only be the remains of a killed run. Those of running processes
    (another run writing the same file) are left alone.

    Returns
    -------
    list of Path
        The files removed.
    """
    path = Path(path)
    return remove_stale_in(path.parent, name=path.name)


_PART = re.compile(r"\..+\.part-(\d+)")


def remove_stale_in(directory: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove every temporary in ``directory`` (not below it) whose process is gone.

    :func:`remove_stale` takes those of one output (``name``) as it is written again;
    without ``name`` this takes them all, e.g. those of outputs that a rerun keeps or
    no longer makes.

    Returns
    -------
    list of Path
        The files removed.
    """
    directory = Path(directory)
    removed = []
    if not directory.is_dir():
        return removed
    for tmp in directory.glob(f".{name}.part-*" if name else ".*.part-*"):
        m = _PART.fullmatch(tmp.name)
        if m and tmp.is_file() and not _alive(int(m.group(1))):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched. A
    failure to write (a full disk, a quota, permissions, :data:`WRITE_ERRNOS`) is
    raised as an :class:`OutputError` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(path, f"cannot create its directory: {describe(exc)}") from None
    remove_stale(path)
    tmp = path.with_name(f".{path.name}.part-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        if isinstance(exc, OutputError) or not is_write_failure(exc):
            raise
        raise OutputError(path, exc) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _image_header(name: str, shape: tuple[int, ...], dtype: np.dtype, extra=None) -> fits.Header:
    dtype = np.dtype(dtype)
    bitpix = {"u1": 8, "i2": 16, "u2": 16, "i4": 32, "u4": 32, "f4": -32, "f8": -64}[
        f"{dtype.kind}{dtype.itemsize}"
    ]
    cards = [("XTENSION", "IMAGE"), ("BITPIX", bitpix), ("NAXIS", len(shape))]
    cards += [(f"NAXIS{i + 1}", n) for i, n in enumerate(reversed(shape))]
    cards += [("PCOUNT", 0), ("GCOUNT", 1)]
    if dtype.kind == "u" and dtype.itemsize > 1:
        cards += [("BSCALE", 1), ("BZERO", 1 << (8 * dtype.itemsize - 1))]
    cards += [("EXTNAME", name)]
    hdr = fits.Header(cards)
    for key, value in (extra or {}).items():
        hdr[key] = value
    return hdr


def _encode(plane: np.ndarray, dtype: np.dtype) -> bytes:
    dtype = np.dtype(dtype)
    a = np.asarray(plane)
    if dtype.kind == "u" and dtype.itemsize > 1:
        flip = dtype.type(1 << (8 * dtype.itemsize - 1))
        a = (a.astype(dtype) ^ flip).view(f"i{dtype.itemsize}")
        return a.astype(f">i{dtype.itemsize}").tobytes()
    return a.astype(dtype.newbyteorder(">")).tobytes()


def write_exposure(
    path: str | os.PathLike,
    primary: Mapping,
    extensions: Iterable[tuple[str, tuple[int, ...], np.dtype, Iterable[np.ndarray] | np.ndarray]],
    *,
    ext_headers: Mapping[str, Mapping] | None = None,
) -> Path:
    """Write a multi-extension FITS file, streaming each extension's planes.

    Parameters
    ----------
    path : path-like
        Output file (written atomically).
    primary : mapping
        Primary-header keywords and values (a value may be ``(value, comment)``).
    extensions : iterable of (name, shape, dtype, data)
        Image extensions in order. ``data`` is an array of ``shape`` or an iterable
        of C-ordered pieces (e.g. one ``(y, x)`` plane at a time) that together fill
        ``shape``. Unsigned integer types are stored with the FITS ``BZERO``
        convention.
    ext_headers : mapping, optional
        Extra keywords per extension name.

    Returns
    -------
    pathlib.Path
    """
    phdr = fits.PrimaryHDU().header
    phdr["EXTEND"] = True
    for key, value in primary.items():
        if key.upper() == "HISTORY":
            for line in value:
                phdr.add_history(line)
        else:
            phdr[key] = value
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(phdr.tostring(padding=True).encode("ascii"))
        for name, shape, dtype, data in extensions:
            dtype = np.dtype(dtype)
            hdr = _image_header(name, tuple(shape), dtype, (ext_headers or {}).get(name))
            f.write(hdr.tostring(padding=True).encode("ascii"))
            expected = int(np.prod(shape)) * dtype.itemsize
            written = 0
            pieces = [data] if isinstance(data, np.ndarray) else data
            for piece in pieces:
                buf = _encode(piece, dtype)
                f.write(buf)
                written += len(buf)
            if written != expected:
                raise ValueError(f"{name}: wrote {written} bytes, shape {shape} needs {expected}")
            f.write(b"\0" * (-written % BLOCK))
    return Path(path)
