"""Test and benchmark helpers: a compute guard, a read counter, a ramp-file writer, a full disk."""

from __future__ import annotations

from contextlib import contextmanager

import dask
import numpy as np

from .io.exposure_writer import write_exposure


class ComputeError(AssertionError):
    """Raised when a dask graph is computed inside :func:`assert_lazy`."""


def _refuse(*args, **kwargs):
    raise ComputeError("a dask graph was computed inside assert_lazy()")


@contextmanager
def assert_lazy():
    """Fail if any dask computation runs inside the block.

    Examples
    --------
    >>> with assert_lazy():
    ...     result = daskref.readnoise(stack)  # builds a graph only
    """
    with dask.config.set(scheduler=_refuse):
        yield


@contextmanager
def count_reads():
    """Count the bytes of image data read from each file inside the block.

    Patches :func:`daskref.io.fits.read_rows` (every lazy read goes through it), so
    it must be entered before the graphs are built.

    Yields
    ------
    collections.Counter
        ``{path: bytes}``, filled as the reads happen.
    """
    from collections import Counter

    import daskref.io.fits as dfits

    nbytes: Counter = Counter()
    original = dfits.read_rows

    def counting(layout, path, y0, y1, out=None):
        nbytes[str(path)] += (y1 - y0) * layout.nbytes // layout.shape[-2]
        return original(layout, path, y0, y1, out=out)

    dfits.read_rows = counting
    try:
        yield nbytes
    finally:
        dfits.read_rows = original


def write_ramp_file(path, sci, groupdq=None, pixeldq=None, header=None):
    """Write a calibrated-ramp-style file (float32 SCI, uint8 GROUPDQ, uint32 PIXELDQ).

    ``header`` entries override the default NIRCam-like primary keywords (NINTS and
    NGROUPS default to the shape of a 4-D ``sci``).
    """
    exts = [("SCI", sci.shape, np.float32, sci)]
    if groupdq is not None:
        exts.append(("GROUPDQ", groupdq.shape, np.uint8, groupdq))
    if pixeldq is not None:
        exts.append(("PIXELDQ", pixeldq.shape, np.uint32, pixeldq))
    hdr = {"TELESCOP": "JWST", "INSTRUME": "NIRCAM", "DETECTOR": "NRCB1", "SUBARRAY": "SUB64P",
           "SUBSTRT1": 101, "SUBSTRT2": 201, "READPATT": "RAPID", "NFRAMES": 1, "GROUPGAP": 0,
           "TFRAME": 1.0, "TGROUP": 1.0, "FASTAXIS": 1, "SLOWAXIS": -2, "EXP_TYPE": "NRC_DARK",
           "DATE-OBS": "2026-02-03", "TIME-OBS": "04:05:06.000", "S_SATURA": "COMPLETE"}
    if sci.ndim == 4:  # the counts a ramp's header gives (a header override wins)
        hdr.update(NINTS=sci.shape[0], NGROUPS=sci.shape[1])
    hdr.update(header or {})
    return write_exposure(path, hdr, exts)


def run_daskref(*args, cwd, timeout: float = 300):
    """``python -m daskref ARGS`` in a child process, this package first on its path.

    Runs that start a cluster are made in a child: its scheduler, the jobs' processes
    and their logging then end with it, not inside the test process.

    Returns
    -------
    subprocess.CompletedProcess
        With ``stdout`` and ``stderr`` as text.
    """
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "daskref", *map(str, args)], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": path}, capture_output=True,
                          text=True, timeout=timeout)


def assert_same_fits(a, b, *, header: bool = True):
    """Two FITS files with the same extensions and identical data arrays (NaN equal NaN).

    With ``header``, every header card is equal too, except the creation date (``DATE``)
    and the file's own name (``FILENAME``).
    """
    from astropy.io import fits

    with fits.open(a) as fa, fits.open(b) as fb:
        assert [h.name for h in fa] == [h.name for h in fb], (a, b)
        for ha, hb in zip(fa, fb, strict=True):
            if ha.data is None:
                assert hb.data is None
            elif hasattr(ha.data, "columns"):  # a table
                assert ha.data.tobytes() == hb.data.tobytes(), (a, ha.name)
            else:
                np.testing.assert_array_equal(ha.data, hb.data, err_msg=f"{a} {ha.name}")
                assert ha.data.dtype == hb.data.dtype
            if header:
                def cards(h):
                    return [(c.keyword, str(c.value)) for c in h.header.cards
                            if c.keyword not in ("DATE", "FILENAME", "CHECKSUM", "DATASUM")]
                assert cards(ha) == cards(hb), (a, ha.name)


def full_disk(monkeypatch, match: str = "") -> None:
    """Make astropy's ``writeto`` fail as on a full disk, for file names containing ``match``.

    Part of the file is written first, as by a real write that runs out of room. On
    Linux the error is the one astropy itself raises writing to ``/dev/full``
    (``OSError("[Errno 28] No space left on device")``, no ``errno``); elsewhere an
    ``OSError(ENOSPC)``.

    Parameters
    ----------
    monkeypatch : pytest.MonkeyPatch
        Undoes the patch at the end of the test (or of its ``context()``).
    match : str
        Only the writes of files whose name contains it fail.
    """
    import errno
    import os
    from pathlib import Path

    from astropy.io import fits

    real = fits.HDUList.writeto

    def writeto(self, fileobj, *args, **kwargs):
        if match not in str(fileobj):
            return real(self, fileobj, *args, **kwargs)
        Path(fileobj).write_bytes(b"SIMPLE  =                    T" + b" " * 2850)
        if os.path.exists("/dev/full"):
            with open("/dev/full", "wb") as full:
                return real(self, full, *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(fileobj))

    monkeypatch.setattr(fits.HDUList, "writeto", writeto)
