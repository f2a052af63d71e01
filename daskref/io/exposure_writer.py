"""Write exposures (ramps, rates) in the JWST FITS layout, streaming plane by plane.

Used by the simulator (level-1b ``uncal`` files far larger than memory) and by the
calibration-prep products. Files are written to a temporary name in the target
directory and renamed when complete, so an interrupted run leaves no partial file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from astropy.io import fits

BLOCK = 2880


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
    removed = []
    for tmp in path.parent.glob(f".{path.name}.part-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    tmp = path.with_name(f".{path.name}.part-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
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
