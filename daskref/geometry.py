"""Detector geometry: reference pixels and amplifier (output) layout.

Coordinates follow the FITS/DMS convention of level-1b files: ``x`` is the
fast (column) axis, ``y`` the slow (row) axis, and a subarray with 1-based origin
``SUBSTRT1`` (x) / ``SUBSTRT2`` (y) and size ``SUBSIZE1`` x ``SUBSIZE2`` is a window
into the full frame.

* Near-IR (NIRCam, NIRISS, NIRSpec, FGS) full frame is 2048 x 2048 with a 4-pixel
  reference border on all sides; its four amplifiers each read 512 adjacent columns.
* MIRI full frame is 1024 rows x 1032 columns with 4 reference columns at each side
  and no reference rows; its four amplifiers are interleaved column by column
  (column ``x`` is read by amplifier ``x % 4``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

NIR_FULL = (2048, 2048)
MIRI_FULL = (1024, 1032)
NIR_BORDER = 4
MIRI_REF_COLUMNS = 4
NIR_AMP_WIDTH = 512


def is_miri(attrs: Mapping) -> bool:
    """Return True when the header attributes describe a MIRI detector."""
    return str(attrs.get("INSTRUME", "")).upper() == "MIRI"


def full_frame_shape(attrs: Mapping) -> tuple[int, int]:
    """Full-frame ``(ny, nx)`` of the detector named in ``attrs``."""
    return MIRI_FULL if is_miri(attrs) else NIR_FULL


def subarray_window(attrs: Mapping, shape: tuple[int, int] | None = None):
    """0-based full-frame slices ``(ys, xs)`` covered by the data.

    Parameters
    ----------
    attrs : mapping
        Header attributes (``SUBSTRT1``, ``SUBSTRT2``, ``SUBSIZE1``, ``SUBSIZE2``).
    shape : (ny, nx), optional
        Data shape, used when the ``SUBSIZE`` keywords are absent.
    """
    x0 = int(attrs.get("SUBSTRT1", 1)) - 1
    y0 = int(attrs.get("SUBSTRT2", 1)) - 1
    if shape is None:
        shape = (int(attrs["SUBSIZE2"]), int(attrs["SUBSIZE1"]))
    ny = int(attrs.get("SUBSIZE2", shape[0]))
    nx = int(attrs.get("SUBSIZE1", shape[1]))
    return slice(y0, y0 + ny), slice(x0, x0 + nx)


def full_frame_reference_mask(attrs: Mapping) -> np.ndarray:
    """Boolean full-frame map, True on reference pixels."""
    ny, nx = full_frame_shape(attrs)
    mask = np.zeros((ny, nx), dtype=bool)
    if is_miri(attrs):
        mask[:, :MIRI_REF_COLUMNS] = True
        mask[:, -MIRI_REF_COLUMNS:] = True
    else:
        b = NIR_BORDER
        mask[:b, :] = mask[-b:, :] = True
        mask[:, :b] = mask[:, -b:] = True
    return mask


def reference_pixel_mask(attrs: Mapping, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Boolean ``(y, x)`` map of the data, True on reference pixels.

    Parameters
    ----------
    attrs : mapping
        Header attributes of the exposure (``INSTRUME`` and the subarray keywords).
    shape : (ny, nx), optional
        Shape of the data, when the ``SUBSIZE`` keywords are absent.

    Returns
    -------
    numpy.ndarray of bool, dims (y, x)
    """
    ys, xs = subarray_window(attrs, shape)
    return full_frame_reference_mask(attrs)[ys, xs]


def amplifier_index(attrs: Mapping, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Amplifier (output) number 0..3 of every column of the data.

    Near-IR subarrays read through a single output (``NOUTPUTS`` = 1) are all
    amplifier of their first column's full-frame position.

    Returns
    -------
    numpy.ndarray of int, dims (x,)
    """
    _, xs = subarray_window(attrs, shape)
    columns = np.arange(xs.start, xs.stop)
    if is_miri(attrs):
        return columns % 4
    amps = np.minimum(columns // NIR_AMP_WIDTH, 3)
    if int(attrs.get("NOUTPUTS", 4) or 4) == 1:
        amps = np.full_like(amps, amps[0])
    return amps
