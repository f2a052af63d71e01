"""Lazy, slab-wise reading of JWST ramp exposures into xarray.

A level-1b ``uncal`` file holds a primary header and a ``SCI`` image of shape
``(integration, group, y, x)`` (uint16 DN, stored as int16 with ``BZERO`` = 32768);
a calibrated ramp file holds float32 ``SCI`` with uint8 ``GROUPDQ`` of the same
shape and uint32 ``PIXELDQ`` ``(y, x)``.

The readers build one dask task per (file, row slab): the task opens the file,
seeks to the rows it needs in each group plane and reads them straight into its
output buffer. FITS stores ``x`` fastest, so a slab of whole rows is one contiguous
read per (integration, group), nothing outside the slab is touched, and a run that
computes all its products in one ``dask.compute`` reads every input byte once.

Everything about a file that can be wrong (missing, unreadable, not FITS, truncated,
no ``SCI``, not a ramp, a header that disagrees with the data's shape, too few
groups, a copy of another input, incompatible with the other inputs) is checked
from the headers by :func:`scan` before any task exists, and reported as an
:class:`InputError` naming the file. :func:`open_infos` then reads a few rows of
the first group of each file (:func:`check_data`) and refuses a blank one (every
sampled pixel NaN, or all equal).
"""

from __future__ import annotations

import functools
import hashlib
import operator
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

#: Primary-header keywords kept as attributes of every opened exposure.
HEADER_KEYS = (
    "TELESCOP", "INSTRUME", "DETECTOR", "EXP_TYPE", "SUBARRAY", "SUBSTRT1", "SUBSTRT2",
    "SUBSIZE1", "SUBSIZE2", "FASTAXIS", "SLOWAXIS", "NOUTPUTS", "READPATT", "NINTS",
    "NGROUPS", "NFRAMES", "GROUPGAP", "TFRAME", "TGROUP", "EFFINTTM", "DATE-OBS",
    "TIME-OBS", "DATE-END", "TIME-END", "EXPSTART", "EXPEND", "FILTER", "PUPIL",
    "S_GRPSCL", "S_DQINIT", "S_SATURA", "S_IPC", "S_SUPERB", "S_REFPIX", "S_LINEAR",
    "S_PERSIS", "S_DARK", "S_FRSTFR", "S_LASTFR", "S_RSCD", "S_JUMP", "S_RAMP",
)

#: Keywords that must agree across a stack of inputs.
STACK_KEYS = ("INSTRUME", "DETECTOR", "SUBARRAY", "SUBSTRT1", "SUBSTRT2", "READPATT")

DEFAULT_CHUNK_MB = 64.0


class InputError(ValueError):
    """A problem with an input file, found before any data is read.

    The message starts with the file name, so a command-line user sees which
    file to fix.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")


@dataclass(frozen=True)
class ArrayLayout:
    """Where an image extension's data lie in its file, and how to decode them."""

    offset: int
    shape: tuple[int, ...]
    raw_dtype: str  # big-endian on disk, e.g. '>i2'
    bzero: float = 0.0
    bscale: float = 1.0

    @property
    def dtype(self) -> np.dtype:
        """Native dtype of the decoded values."""
        raw = np.dtype(self.raw_dtype)
        if self.bscale == 1.0 and raw.kind == "i" and self.bzero == 2 ** (8 * raw.itemsize - 1):
            return np.dtype(f"u{raw.itemsize}")  # FITS unsigned-integer convention
        if self.bscale == 1.0 and self.bzero == 0.0:
            return raw.newbyteorder("=")
        return np.dtype(np.float32 if raw.itemsize <= 2 else np.float64)

    @property
    def nbytes(self) -> int:
        """Bytes of data on disk."""
        return int(np.prod(self.shape)) * np.dtype(self.raw_dtype).itemsize


@dataclass
class ExposureInfo:
    """Headers and data layout of one input file, read without touching the data."""

    path: str
    header: dict
    sci: ArrayLayout
    groupdq: ArrayLayout | None = None
    pixeldq: ArrayLayout | None = None
    #: ``primary``: every keyword of the primary header (for configurable keys).
    extra: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(integration, group, y, x)`` shape of SCI."""
        return self.sci.shape  # type: ignore[return-value]

    @property
    def name(self) -> str:
        """File name without directories."""
        return os.path.basename(self.path)


_BITPIX = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


def _layout(hdul: fits.HDUList, index: int) -> ArrayLayout:
    hdr = hdul[index].header
    info = hdul.fileinfo(index)
    naxis = hdr.get("NAXIS", 0)
    shape = tuple(int(hdr[f"NAXIS{i}"]) for i in range(naxis, 0, -1))
    return ArrayLayout(
        offset=int(info["datLoc"]),
        shape=shape,
        raw_dtype=_BITPIX[int(hdr["BITPIX"])],
        bzero=float(hdr.get("BZERO", 0.0)),
        bscale=float(hdr.get("BSCALE", 1.0)),
    )


def _scan_file(path: str):
    """Headers and layouts (header, primary, SCI, GROUPDQ, PIXELDQ, DQ) of a FITS file.

    Checked for existence, readability, an SCI extension and truncation.
    """
    path = str(path)
    p = Path(path)
    if not p.exists():
        raise InputError(path, "no such file")
    if p.is_dir():
        raise InputError(path, "is a directory, not a FITS file")
    size = p.stat().st_size
    if size == 0:
        raise InputError(path, "is empty, not a FITS file")
    try:
        with open(path, "rb") as f:
            first = f.read(80)
    except PermissionError:
        raise InputError(path, "cannot be read: permission denied (check the file's mode "
                         "and owner)") from None
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not first.startswith(b"SIMPLE  ="):
        # astropy would guess at such a file; a FITS file begins with its SIMPLE card
        raise InputError(path, "is not a readable FITS file (it does not begin with "
                         "'SIMPLE  =', the first card of every FITS file)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False, lazy_load_hdus=False) as hdul:
                names = [h.name.upper() for h in hdul]
                if "SCI" not in names:
                    if size % 2880:
                        raise InputError(path, f"is truncated ({size} bytes is not a whole "
                                         "number of 2880-byte FITS blocks)")
                    raise InputError(path, f"has no SCI extension (extensions: {names})")
                header = {k: hdul[0].header[k] for k in HEADER_KEYS if k in hdul[0].header}
                primary = {k: v for k, v in hdul[0].header.items()
                           if k not in ("", "COMMENT", "HISTORY")}
                sci_hdr = hdul["SCI"].header
                sci = _layout(hdul, names.index("SCI"))
                gdq = _layout(hdul, names.index("GROUPDQ")) if "GROUPDQ" in names else None
                pdq = _layout(hdul, names.index("PIXELDQ")) if "PIXELDQ" in names else None
                dqx = _layout(hdul, names.index("DQ")) if "DQ" in names else None
                ends = [
                    hdul.fileinfo(i)["datLoc"] + hdul.fileinfo(i)["datSpan"]
                    for i in range(len(hdul))
                ]
    except InputError:
        raise
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise InputError(path, f"is not a readable FITS file ({exc})") from None
    if max(ends) > size or size % 2880:
        raise InputError(
            path,
            f"is truncated: its headers describe {max(ends)} bytes but the file has {size}",
        )
    if "BUNIT" in sci_hdr:
        header["BUNIT"] = sci_hdr["BUNIT"]
    return header, primary, sci, gdq, pdq, dqx


def is_raw(header: dict) -> bool:
    """True when no ``S_*`` keyword says a calibration step ran: a level-1b ``uncal`` ramp."""
    return not any(str(v).strip().upper() == "COMPLETE"
                   for k, v in header.items() if k.startswith("S_"))


def _count_keyword(path: str, header: dict, key: str, expected: int, axis: str,
                   shape: tuple[int, ...]) -> None:
    """Refuse a missing, non-integer or wrong NGROUPS/NINTS: it describes the data."""
    counted = f"{expected} {axis}" + ("" if expected == 1 else "s")
    if key not in header:
        raise InputError(path, f"has no {key} keyword; SCI {shape} has {counted} "
                         "(a ramp's header must say so)")
    value = header[key]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(path, f"{key} is {value!r}, not a whole number of {axis}s")
    if int(value) != expected:
        raise InputError(path, f"{key} is {value} but SCI {shape} has {counted}: "
                         "header and data disagree")


def read_info(path: str | os.PathLike) -> ExposureInfo:
    """Read the headers of one exposure and check that it is a usable ramp.

    Parameters
    ----------
    path : str or path-like
        An ``uncal`` or calibrated ramp FITS file.

    Raises
    ------
    InputError
        The file is missing, a directory, unreadable, not FITS, truncated, has no
        ``SCI`` extension, ``SCI`` is not 4-D ``(integration, group, y, x)``, it
        has fewer than 2 groups, ``NGROUPS``/``NINTS`` are missing or disagree with
        the shape (``INTSTART``/``INTEND`` of a segment taken into account), so do
        ``SUBSIZE1``/``SUBSIZE2`` where given, a raw (``uncal``: no ``S_*`` step
        COMPLETE) ``SCI`` is float64, or ``GROUPDQ``/``PIXELDQ`` have another shape
        than ``SCI``.
    """
    path = str(path)
    header, primary, sci, gdq, pdq, _ = _scan_file(path)
    if len(sci.shape) != 4:
        kind = ("a ramp-fitted (_rate/_rateints) file" if len(sci.shape) in (2, 3)
                and str(header.get("S_RAMP", "")).upper() == "COMPLETE" else "not a ramp")
        raise InputError(
            path,
            f"SCI is {len(sci.shape)}-D {sci.shape}, {kind}; expected a 4-D ramp "
            "(integration, group, y, x) such as an _uncal or _ramp file",
        )
    raw = is_raw(header)
    if raw and np.dtype(sci.raw_dtype).kind == "f" and np.dtype(sci.raw_dtype).itemsize == 8:
        # level-1b data are uint16 DN; float64 means the file was made by a tool
        # that converted it (and doubled its size), not by the ground system
        raise InputError(path, "SCI is float64 in a raw ramp (no S_* step COMPLETE); an "
                         "_uncal file holds integer DN (uint16): write SCI as uint16, or "
                         "mark the steps it had in its S_* keywords")
    if sci.shape[1] < 2:
        raise InputError(path, f"has {sci.shape[1]} group; at least 2 groups are needed")
    _count_keyword(path, header, "NGROUPS", sci.shape[1], "group", sci.shape)
    start, end = primary.get("INTSTART"), primary.get("INTEND")
    if isinstance(start, (int, np.integer)) and isinstance(end, (int, np.integer)):
        # a segment (_segNNN) of a long exposure: NINTS counts the whole exposure
        nints = header.get("NINTS")
        if nints is None:
            raise InputError(path, f"has no NINTS keyword (a segment {start}-{end})")
        if isinstance(nints, bool) or not isinstance(nints, (int, np.integer)):
            raise InputError(path, f"NINTS is {nints!r}, not a whole number of integrations")
        if end - start + 1 != sci.shape[0] or nints < end:
            raise InputError(path, f"INTSTART/INTEND {start}-{end} (of NINTS {nints}) but "
                             f"SCI {sci.shape} has {sci.shape[0]} integration"
                             f"{'' if sci.shape[0] == 1 else 's'}: header and data disagree")
    else:
        _count_keyword(path, header, "NINTS", sci.shape[0], "integration", sci.shape)
    if not str(header.get("READPATT", "")).upper().startswith("NRSIRS2"):
        # (IRS2 frames interleave reference rows: more rows than SUBSIZE2 says)
        for key, n, axis in (("SUBSIZE1", sci.shape[3], "columns"),
                             ("SUBSIZE2", sci.shape[2], "rows")):
            value = header.get(key)
            if value is not None and value != n:
                raise InputError(path, f"{key} is {value!r} but SCI {sci.shape} has {n} "
                                 f"{axis}: header and data disagree")
    if gdq is not None and gdq.shape != sci.shape:
        raise InputError(path, f"GROUPDQ shape {gdq.shape} differs from SCI shape {sci.shape}")
    if pdq is not None and pdq.shape != sci.shape[2:]:
        raise InputError(path, f"PIXELDQ shape {pdq.shape} differs from SCI (y, x) {sci.shape[2:]}")
    header.setdefault("SUBSIZE1", sci.shape[3])
    header.setdefault("SUBSIZE2", sci.shape[2])
    header.setdefault("SUBSTRT1", 1)
    header.setdefault("SUBSTRT2", 1)
    header["NINTS"], header["NGROUPS"] = sci.shape[0], sci.shape[1]
    info = ExposureInfo(path=path, header=header, sci=sci, groupdq=gdq, pixeldq=pdq,
                        extra={"primary": primary})
    info.extra["fingerprint"] = _fingerprint(path, primary, [sci, gdq, pdq])
    return info


#: Primary keywords a copy may change without changing the exposure.
_NOT_CONTENT = frozenset({"FILENAME", "DATE", "CHECKSUM", "DATASUM", "IRAF-TLM"})


def _fingerprint(path: str, primary: dict, layouts) -> str:
    """A digest of a file's exposure: its primary keywords and samples of its data.

    Two inputs with the same digest are the same exposure (a copy under another
    name, or a hard link): the primary header (but the file's own name and dates)
    and the first, middle and last FITS block of each data extension. Cheap: a few
    seeks, whatever the file's size.
    """
    digest = hashlib.sha1(usedforsecurity=False)
    for key in sorted(k for k in primary if k not in _NOT_CONTENT):
        digest.update(f"{key}={primary[key]!r};".encode())
    with open(path, "rb") as f:
        for layout in layouts:
            if layout is None:
                digest.update(b"-")
                continue
            digest.update(f"{layout.shape}{layout.raw_dtype}".encode())
            n = layout.nbytes
            for at in sorted({0, max(0, n // 2 - 1440), max(0, n - 2880)}):
                f.seek(layout.offset + at)
                digest.update(f.read(min(2880, n - at)))
    return digest.hexdigest()


def group_time_problem(value) -> str | None:
    """What is wrong with a ``TGROUP`` value (missing, not a positive number), or None."""
    if value is None:
        return "has no TGROUP keyword (the group time, s)"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
            or not np.isfinite(value) or value <= 0:
        return f"TGROUP is {value!r}, not a positive number of seconds (the group time)"
    return None


def check_group_time(infos: Sequence[ExposureInfo], why: str) -> None:
    """Every input has a positive ``TGROUP`` (s), which ``why`` needs.

    Raises
    ------
    InputError
        Naming the first file without one, or with zero, a negative number or text.
    """
    for info in infos:
        problem = group_time_problem(info.header.get("TGROUP"))
        if problem:
            raise InputError(info.path, f"{problem}; {why} needs it")


def scan(paths: Sequence[str | os.PathLike] | str | os.PathLike, *,
         group_time: str | None = None) -> list[ExposureInfo]:
    """Read and check the headers of every input; see :func:`read_info`.

    Parameters
    ----------
    paths : path-like or sequence of path-like
    group_time : str, optional
        What needs the group time (e.g. ``"the DARK"``): then every input must have a
        positive ``TGROUP`` (:func:`check_group_time`).

    Raises
    ------
    InputError
        For an empty list, a path given twice, two inputs with the same content
        (a copy under another name) or the first bad file.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise InputError(None, "no input files given")
    _check_paths(paths)
    infos = [read_info(p) for p in paths]
    check_duplicates(infos)
    if group_time is not None:
        check_group_time(infos, group_time)
    return infos


def _check_paths(paths) -> None:
    """Refuse a file given twice (also through a symbolic link)."""
    seen: dict[str, str] = {}
    for p in paths:
        key = os.path.realpath(p)
        if key in seen:
            raise InputError(p, f"is given twice (also as {seen[key]})")
        seen[key] = str(p)


def check_duplicates(infos) -> None:
    """Refuse two inputs that are one exposure by content (see :func:`_fingerprint`)."""
    first: dict[str, str] = {}
    for info in infos:
        fp = getattr(info, "extra", {}).get("fingerprint") or getattr(info, "fingerprint", None)
        if fp is None:
            continue
        if fp in first:
            raise InputError(info.path, f"has the same header and data as {first[fp]} (a "
                             "copy under another name?); give each exposure once")
        first[fp] = info.path


def check_stackable(infos: Sequence[ExposureInfo], keys: Iterable[str] = STACK_KEYS) -> None:
    """Check that exposures can be stacked along ``integration``.

    They must come from one instrument and detector, with the same subarray
    (name, origin and size), readout pattern and number of groups.

    Raises
    ------
    InputError
        Naming the first file that differs from the first input, and how.
    """
    first = infos[0]
    for info in infos[1:]:
        for key in keys:
            a, b = first.header.get(key), info.header.get(key)
            if a != b:
                raise InputError(
                    info.path,
                    f"{key} is {b!r} but {first.name} has {a!r}; inputs to one reference file "
                    "must share detector, subarray and readout pattern",
                )
        if info.shape[2:] != first.shape[2:]:
            raise InputError(
                info.path,
                f"frame size {info.shape[2:]} differs from {first.shape[2:]} in {first.name}",
            )
        if info.shape[1] != first.shape[1]:
            raise InputError(
                info.path,
                f"has {info.shape[1]} groups but {first.name} has {first.shape[1]}; "
                "stack exposures with the same number of groups",
            )


# --------------------------------------------------------------------------- reading


def read_rows(layout: ArrayLayout, path: str, y0: int, y1: int,
              out: np.ndarray | None = None) -> np.ndarray:
    """Read rows ``y0:y1`` of every plane of an image extension.

    Parameters
    ----------
    layout : ArrayLayout
        From :func:`read_info`.
    path : str
        The file.
    y0, y1 : int
        Row range (0-based, end exclusive) along the second-to-last axis.
    out : ndarray, optional
        Where to decode into (shape as returned, dtype ``layout.dtype``), so that a
        stack of files lands in one buffer without a concatenation.

    Returns
    -------
    numpy.ndarray
        Shape ``layout.shape[:-2] + (y1 - y0, nx)``, native byte order, decoded
        with BZERO/BSCALE.
    """
    *lead, ny, nx = layout.shape
    raw_dtype = np.dtype(layout.raw_dtype)
    nplanes = int(np.prod(lead)) if lead else 1
    raw = np.empty((nplanes, y1 - y0, nx), dtype=raw_dtype)
    plane_bytes = ny * nx * raw_dtype.itemsize
    row_bytes = nx * raw_dtype.itemsize
    with open(path, "rb", buffering=0) as f:
        for k in range(nplanes):
            f.seek(layout.offset + k * plane_bytes + y0 * row_bytes)
            view = memoryview(raw[k]).cast("B")
            got = f.readinto(view)
            if got != len(view):
                raise OSError(f"{path}: short read (file truncated while reading?)")
    return _decode(raw.reshape(tuple(lead) + (y1 - y0, nx)), layout, out)


def _decode(raw: np.ndarray, layout: ArrayLayout, out: np.ndarray | None = None) -> np.ndarray:
    """Raw big-endian values -> native values with BZERO/BSCALE applied (into ``out``)."""
    raw_dtype = np.dtype(layout.raw_dtype)
    dtype = layout.dtype
    if out is None:
        out = np.empty(raw.shape, dtype)
    if dtype.kind == "u" and raw_dtype.kind == "i":
        # uint16 stored as int16 with BZERO = 32768: flipping the sign bit is the
        # offset, done in the same pass as the byte swap.
        np.bitwise_xor(raw.view(f">u{raw_dtype.itemsize}"),
                       dtype.type(1 << (8 * raw_dtype.itemsize - 1)), out=out)
    elif layout.bscale == 1.0 and layout.bzero == 0.0:
        out[...] = raw
    else:
        np.multiply(raw, dtype.type(layout.bscale), out=out, casting="unsafe")
        out += dtype.type(layout.bzero)
    return out


def read_stack_rows(layouts: Sequence[ArrayLayout], paths: Sequence[str], y0: int,
                    y1: int) -> np.ndarray:
    """Rows ``y0:y1`` of the same extension of several files, stacked on axis 0.

    Each file is decoded straight into its place in one buffer (one read, one
    decoding pass, no concatenation copy).
    """
    nx = layouts[0].shape[-1]
    lead = layouts[0].shape[1:-2]
    total = sum(layout.shape[0] for layout in layouts)
    dtype = np.result_type(*(layout.dtype for layout in layouts))
    out = np.empty((total, *lead, y1 - y0, nx), dtype)
    i0 = 0
    for layout, path in zip(layouts, paths, strict=True):
        i1 = i0 + layout.shape[0]
        if layout.dtype == dtype:
            read_rows(layout, path, y0, y1, out=out[i0:i1])
        else:
            out[i0:i1] = read_rows(layout, path, y0, y1)
        i0 = i1
    return out


def _lazy_stack_rows(layouts: Sequence[ArrayLayout], paths: Sequence[str],
                     row_chunks: tuple[int, ...], label: str):
    """Dask array of one extension of several files stacked along axis 0.

    One task per slab of ``row_chunks`` rows reads that slab of every file, so the
    stacked axis is a single chunk (as the stack statistics need) and no
    concatenation copy is made.
    """
    if len(layouts) == 1:
        return _lazy_rows(layouts[0], paths[0], row_chunks, label)
    total = sum(layout.shape[0] for layout in layouts)
    lead = layouts[0].shape[1:-2]
    nx = layouts[0].shape[-1]
    stats = [(p, os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths]
    name = f"read-{label}-" + tokenize(stats, list(layouts), row_chunks)
    dsk = {}
    y0 = 0
    for j, rows in enumerate(row_chunks):
        key = (name, 0) + (0,) * len(lead) + (j, 0)
        dsk[key] = (read_stack_rows, list(layouts), list(paths), y0, y0 + rows)
        y0 += rows
    chunks = ((total,),) + tuple((n,) for n in lead) + (row_chunks, (nx,))
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
    dtype = np.result_type(*(layout.dtype for layout in layouts))
    return da.Array(graph, name, chunks=chunks, dtype=dtype)


#: Rows of the first group read by :func:`check_data` (spread over the frame).
SAMPLE_ROWS = 8


def sample_first_group(info: ExposureInfo, nrows: int = SAMPLE_ROWS) -> np.ndarray:
    """``nrows`` whole rows, spread over the frame, of group 0 of the first integration.

    A few kB per file (one seek per row), so every input can be looked at before
    any graph is built.
    """
    layout = info.sci
    ny, nx = layout.shape[-2:]
    rows = np.unique(np.linspace(0, ny - 1, min(ny, nrows)).round().astype(int))
    raw = np.dtype(layout.raw_dtype)
    out = np.empty((len(rows), nx), dtype=raw)
    with open(info.path, "rb", buffering=0) as f:
        for k, y in enumerate(rows):
            f.seek(layout.offset + int(y) * nx * raw.itemsize)
            view = memoryview(out[k]).cast("B")
            if f.readinto(view) != len(view):
                raise InputError(info.path, "is truncated (short read of SCI)")
    return _decode(out, layout)


def check_data(infos: Sequence[ExposureInfo]) -> None:
    """Refuse inputs whose data are blank, from a sample of each (not the whole file).

    Reads :data:`SAMPLE_ROWS` rows of the first group of each file
    (:func:`sample_first_group`): a file whose every sampled pixel is NaN, or
    whose sampled pixels all have one value (a fill value, a zeroed or copied
    frame: real reads always have noise), is refused. A file that is blank only
    outside the sampled rows is not found here; reading all of it would be a pass
    over the data before the real one.

    Raises
    ------
    InputError
        Naming the file, the extension and what was found.
    """
    for info in infos:
        sample = sample_first_group(info)
        if sample.dtype.kind == "f":
            finite = np.isfinite(sample)
            if not finite.any():
                raise InputError(info.path, f"SCI is NaN (or infinite) in every sampled "
                                 f"pixel ({sample.shape[0]} rows of the first group): no "
                                 "usable data")
            sample = sample[finite]
        if sample.size > 1 and (sample == sample.flat[0]).all():
            raise InputError(info.path, f"SCI is constant: every sampled pixel "
                             f"({sample.size} in {min(info.shape[2], SAMPLE_ROWS)} rows of "
                             f"the first group) is {sample.flat[0]}; a blank or "
                             "fill-value exposure, not a detector read")


def _lazy_rows(layout: ArrayLayout, path: str, row_chunks: tuple[int, ...], label: str):
    """Dask array of an image extension, one task per slab of ``row_chunks`` rows."""
    *lead, ny, nx = layout.shape
    st = os.stat(path)
    name = f"read-{label}-" + tokenize(path, st.st_size, st.st_mtime_ns, layout, row_chunks)
    dsk = {}
    y0 = 0
    for j, rows in enumerate(row_chunks):
        key = (name,) + (0,) * len(lead) + (j, 0)
        dsk[key] = (read_rows, layout, path, y0, y0 + rows)
        y0 += rows
    chunks = tuple((n,) for n in lead) + (row_chunks, (nx,))
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
    return da.Array(graph, name, chunks=chunks, dtype=layout.dtype)


def row_chunks_for(ny: int, bytes_per_row: int, chunk_mb: float | None = None,
                   chunk_rows: int | None = None) -> tuple[int, ...]:
    """Split ``ny`` rows into slabs of about ``chunk_mb`` (or exactly ``chunk_rows``)."""
    if chunk_rows is None:
        target = (DEFAULT_CHUNK_MB if chunk_mb is None else chunk_mb) * 2**20
        chunk_rows = int(max(1, min(ny, target // max(bytes_per_row, 1))))
    chunk_rows = max(1, min(int(chunk_rows), ny))
    n, rem = divmod(ny, chunk_rows)
    return (chunk_rows,) * n + ((rem,) if rem else ())


def _stack_bytes_per_row(infos: Sequence[ExposureInfo]) -> int:
    nx = infos[0].shape[3]
    total = 0
    for info in infos:
        nint, ngroup = info.shape[:2]
        per_sample = info.sci.dtype.itemsize + (1 if info.groupdq else 0)
        total += nint * ngroup * nx * per_sample
    return total


def _dataset(infos, ramp, gdq, pdq, attrs) -> xr.Dataset:
    files = np.concatenate([[i.name] * i.shape[0] for i in infos])
    int_in_file = np.concatenate([np.arange(i.shape[0]) for i in infos])
    coords = {
        "integration": np.arange(ramp.shape[0]),
        "group": np.arange(ramp.shape[1]),
        "file": ("integration", files),
        "exposure": ("integration", np.concatenate(
            [[k] * i.shape[0] for k, i in enumerate(infos)]).astype(np.int32)),
        "int_in_file": ("integration", int_in_file),
    }
    dims4 = ("integration", "group", "y", "x")
    data = {"ramp": xr.DataArray(ramp, dims=dims4, attrs={"units": "DN"})}
    if gdq is not None:
        data["groupdq"] = xr.DataArray(gdq, dims=dims4)
    if pdq is not None:
        data["pixeldq"] = xr.DataArray(pdq, dims=("y", "x"))
    return xr.Dataset(data, coords=coords, attrs=attrs)


def open_exposure(
    path: str | os.PathLike,
    *,
    chunk_mb: float | None = None,
    chunk_rows: int | None = None,
    row_chunks: Sequence[int] | None = None,
) -> xr.Dataset:
    """Open one ramp exposure lazily.

    Parameters
    ----------
    path : str or path-like
        ``uncal`` (uint16 SCI) or calibrated ramp (float32 SCI, GROUPDQ, PIXELDQ).
    chunk_mb : float, optional
        Target size of one row slab of SCI (default 64 MB).
    chunk_rows : int, optional
        Rows per slab, overriding ``chunk_mb``.
    row_chunks : sequence of int, optional
        Explicit slab heights (summing to the number of rows), overriding both.

    Returns
    -------
    xarray.Dataset
        ``ramp`` (integration, group, y, x) in DN, ``groupdq`` (integration, group,
        y, x) uint8 and ``pixeldq`` (y, x) uint32 when the file has them;
        coordinates ``file`` and ``int_in_file`` along ``integration``; the header
        keywords of :data:`HEADER_KEYS` as attributes, and ``inputs`` (the path).
        Nothing is read until computed.
    """
    info = read_info(path)
    return open_infos([info], chunk_mb=chunk_mb, chunk_rows=chunk_rows, row_chunks=row_chunks)


def open_stack(
    paths: Sequence[str | os.PathLike] | str | os.PathLike,
    *,
    chunk_mb: float | None = None,
    chunk_rows: int | None = None,
    group_time: str | None = None,
) -> xr.Dataset:
    """Open compatible exposures lazily as one stack along ``integration``.

    Every file's headers are checked first (:func:`scan`, :func:`check_stackable`).
    The slab height is chosen so that one slab of the whole stack is about
    ``chunk_mb``, and the ``integration`` and ``group`` axes are single chunks, as
    the stack statistics need: memory per task is bounded by ``chunk_mb`` whatever
    the number of files.

    Parameters
    ----------
    paths : sequence of path-like
        Exposures of one detector, subarray, readout pattern and group count.
    chunk_mb, chunk_rows : optional
        As in :func:`open_exposure`, for a slab of the whole stack.
    group_time : str, optional
        What needs the group time: every input must then have a positive
        ``TGROUP`` (see :func:`scan`).

    Returns
    -------
    xarray.Dataset
        As :func:`open_exposure`, with the integrations of all files in input order;
        ``pixeldq`` is the bitwise OR of the files' PIXELDQ. Attributes come from the
        first file, with ``inputs`` listing every path.
    """
    infos = scan(paths, group_time=group_time)
    check_stackable(infos)
    return open_infos(infos, chunk_mb=chunk_mb, chunk_rows=chunk_rows)


def open_infos(infos: Sequence[ExposureInfo], *, chunk_mb=None, chunk_rows=None,
               row_chunks: Sequence[int] | None = None, check: bool = True) -> xr.Dataset:
    """Open already scanned (and, for several, stack-checked) exposures.

    The data of each are looked at first (:func:`check_data`: a few rows) unless
    ``check`` is False. The Dataset's ``encoding["infos"]`` keeps ``infos``, so that
    it can be opened again with other row slabs (:func:`reopen_rows`).
    """
    if check:
        check_data(infos)
    ny = infos[0].shape[2]
    if row_chunks is not None:
        rows = tuple(int(r) for r in row_chunks)
        if sum(rows) != ny or min(rows) < 1:
            raise ValueError(f"row_chunks {rows} do not split the {ny} rows")
    else:
        rows = row_chunks_for(ny, _stack_bytes_per_row(infos), chunk_mb, chunk_rows)
    paths = [info.path for info in infos]
    ramp = _lazy_stack_rows([i.sci for i in infos], paths, rows, "sci")
    gdq = pdq = None
    if all(i.groupdq is not None for i in infos):
        gdq = _lazy_stack_rows([i.groupdq for i in infos], paths, rows, "groupdq")
    if all(i.pixeldq is not None for i in infos):
        pdq = functools.reduce(
            operator.or_, [_lazy_rows(i.pixeldq, i.path, rows, "pixeldq") for i in infos])
    attrs = dict(infos[0].header)
    attrs["inputs"] = [i.path for i in infos]
    ds = _dataset(infos, ramp, gdq, pdq, attrs)
    ds.encoding["infos"] = tuple(infos)
    return ds


def reopen_rows(ds: xr.Dataset, row_chunks: Sequence[int]) -> xr.Dataset | None:
    """``ds`` as opened by :func:`open_infos`, opened again with other row slabs.

    Reading with the new slabs reads each row once; rechunking the opened stack
    would read the old slabs and copy them into the new ones, holding both. None
    when ``ds`` is not a freshly opened stack.
    """
    infos = ds.encoding.get("infos")
    if not infos:
        return None
    out = open_infos(infos, row_chunks=row_chunks, check=False)
    out.attrs = ds.attrs
    return out


# --------------------------------------------------------------------------- slope files


@dataclass
class SlopeInfo:
    """Headers and layout of a ramp-fitted file (``_rate`` or ``_rateints``)."""

    path: str
    header: dict
    sci: ArrayLayout
    dq: ArrayLayout | None = None
    #: Digest of the content, to find copies among the inputs.
    fingerprint: str | None = None

    @property
    def nints(self) -> int:
        """Integrations (1 for a ``_rate`` image)."""
        return self.sci.shape[0] if len(self.sci.shape) == 3 else 1

    @property
    def name(self) -> str:
        """File name without directories."""
        return os.path.basename(self.path)


def read_slope_info(path: str | os.PathLike) -> SlopeInfo:
    """Read the headers of a ramp-fitted file and check it.

    Raises
    ------
    InputError
        Missing, unreadable or truncated; no SCI; SCI not 2-D ``(y, x)`` or 3-D
        ``(integration, y, x)``; ``S_RAMP`` not ``COMPLETE``; a DQ of another shape.
    """
    path = str(path)
    header, primary, sci, _, _, dqx = _scan_file(path)
    if len(sci.shape) not in (2, 3):
        raise InputError(path, f"SCI is {len(sci.shape)}-D {sci.shape}; a slope file "
                         "(_rate or _rateints) has a 2-D or 3-D SCI")
    if str(header.get("S_RAMP", "")).upper() != "COMPLETE":
        raise InputError(path, f"S_RAMP is {header.get('S_RAMP')!r}, not 'COMPLETE': "
                         "not a ramp-fitted (_rate/_rateints) file")
    if dqx is not None and dqx.shape[-2:] != sci.shape[-2:]:
        raise InputError(path, f"DQ shape {dqx.shape} does not match SCI {sci.shape}")
    header.setdefault("SUBSIZE1", sci.shape[-1])
    header.setdefault("SUBSIZE2", sci.shape[-2])
    header.setdefault("SUBSTRT1", 1)
    header.setdefault("SUBSTRT2", 1)
    return SlopeInfo(path=path, header=header, sci=sci, dq=dqx,
                     fingerprint=_fingerprint(path, primary, [sci, dqx]))


def open_slopes(paths: Sequence[str | os.PathLike], *, chunk_mb: float | None = None,
                row_chunks: Sequence[int] | None = None) -> xr.Dataset:
    """Open ``_rate``/``_rateints`` files lazily as one stack of slopes.

    Every header is read and checked first; the files must share detector, subarray
    and frame size (not the readout: slopes of any ramp length stack).

    Returns
    -------
    xarray.Dataset
        ``rateints`` (integration, y, x) DN/s with every integration of every file
        in input order, and ``dq_ints`` (integration, y, x) uint32 where every file has
        a DQ (a 2-D DQ applies to each integration). Attributes from the first file,
        ``inputs`` the paths, ``S_RAMP`` COMPLETE. Nothing is read.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise InputError(None, "no input files given")
    _check_paths(paths)
    infos = [read_slope_info(p) for p in paths]
    check_duplicates(infos)
    first = infos[0]
    for info in infos[1:]:
        for key in ("INSTRUME", "DETECTOR", "SUBARRAY", "SUBSTRT1", "SUBSTRT2"):
            if info.header.get(key) != first.header.get(key):
                raise InputError(info.path, f"{key} is {info.header.get(key)!r} but "
                                 f"{first.name} has {first.header.get(key)!r}")
        if info.sci.shape[-2:] != first.sci.shape[-2:]:
            raise InputError(info.path, f"frame size {info.sci.shape[-2:]} differs from "
                             f"{first.sci.shape[-2:]} in {first.name}")
    ny, nx = first.sci.shape[-2:]
    if row_chunks is None:
        per_row = sum(i.nints * nx * (4 + (4 if i.dq else 0)) for i in infos)
        row_chunks = row_chunks_for(ny, per_row, chunk_mb)
    rows = tuple(int(r) for r in row_chunks)

    def cube(layout, path, n, label):
        arr = _lazy_rows(layout, path, rows, label)
        if arr.ndim == 2:
            arr = arr[None]
        return da.broadcast_to(arr, (n,) + arr.shape[1:], chunks=((n,),) + arr.chunks[1:])

    sci = da.concatenate([cube(i.sci, i.path, i.nints, "slopes").astype(np.float32)
                          for i in infos], axis=0).rechunk({0: -1})
    data = {"rateints": xr.DataArray(sci, dims=("integration", "y", "x"),
                                     attrs={"units": "DN/s"})}
    if all(i.dq is not None for i in infos):
        dqs = da.concatenate([cube(i.dq, i.path, i.nints, "slopedq").astype(np.uint32)
                              for i in infos], axis=0).rechunk({0: -1})
        data["dq_ints"] = xr.DataArray(dqs, dims=("integration", "y", "x"))
    files = np.concatenate([[i.name] * i.nints for i in infos])
    attrs = dict(first.header)
    attrs["inputs"] = [i.path for i in infos]
    return xr.Dataset(data, coords={"file": ("integration", files)}, attrs=attrs)


# --------------------------------------------------------------------------- inventory

INVENTORY_COLUMNS = (
    "INSTRUME", "DETECTOR", "EXP_TYPE", "SUBARRAY", "SUBSTRT1", "SUBSTRT2", "SUBSIZE1",
    "SUBSIZE2", "READPATT", "NINTS", "NGROUPS", "TGROUP", "FASTAXIS", "SLOWAXIS",
)


def observation_mjd(header: dict, which: str = "start") -> float:
    """Exposure start or end time as MJD (UTC).

    Uses ``EXPSTART``/``EXPEND`` when present, else ``DATE-OBS`` + ``TIME-OBS``
    (``DATE-END`` + ``TIME-END``); NaN when neither is there.
    """
    mjd_key, date_key, time_key = (
        ("EXPSTART", "DATE-OBS", "TIME-OBS")
        if which == "start"
        else ("EXPEND", "DATE-END", "TIME-END")
    )
    if header.get(mjd_key) not in (None, ""):
        return float(header[mjd_key])
    date = header.get(date_key)
    if not date:
        return float("nan")
    stamp = f"{date}T{header[time_key]}" if header.get(time_key) and "T" not in str(date) else date
    return float(Time(str(stamp), format="isot", scale="utc").mjd)


def inventory(paths_or_infos) -> Table:
    """Table of the inputs' header values that matter, one row per file.

    Parameters
    ----------
    paths_or_infos : sequence of path-like or ExposureInfo
        Input files (their headers are read and checked) or scanned infos.

    Returns
    -------
    astropy.table.Table
        Columns ``file``, the keywords of :data:`INVENTORY_COLUMNS`,
        ``MJD_START`` and ``MJD_END``; rows in input order.
    """
    infos = [i if isinstance(i, ExposureInfo) else None for i in paths_or_infos]
    if any(i is None for i in infos):
        infos = scan(paths_or_infos)
    rows = []
    for info in infos:
        row = {"file": info.path}
        for key in INVENTORY_COLUMNS:
            row[key] = info.header.get(key, "")
        row["MJD_START"] = observation_mjd(info.header, "start")
        row["MJD_END"] = observation_mjd(info.header, "end")
        rows.append(row)
    table = Table(rows=rows, names=list(rows[0]))
    for col in ("MJD_START", "MJD_END"):
        table[col].format = ".6f"
    return table
