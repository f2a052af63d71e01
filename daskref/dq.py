"""JWST data-quality bit values, in one place.

The values are those of ``jwst.datamodels.dqflags.pixel`` (and ``group``): every
module of daskref takes its flags from here, so a reference file written by daskref
uses the same bits the JWST pipeline reads.
"""

from __future__ import annotations

import numpy as np

GOOD = 0
DO_NOT_USE = 1 << 0
SATURATED = 1 << 1
JUMP_DET = 1 << 2
DROPOUT = 1 << 3
OUTLIER = 1 << 4
PERSISTENCE = 1 << 5
AD_FLOOR = 1 << 6
CHARGELOSS = 1 << 7
RESERVED = 1 << 8
NON_SCIENCE = 1 << 9
DEAD = 1 << 10
HOT = 1 << 11
WARM = 1 << 12
LOW_QE = 1 << 13
RC = 1 << 14
TELEGRAPH = 1 << 15
NONLINEAR = 1 << 16
BAD_REF_PIXEL = 1 << 17
NO_FLAT_FIELD = 1 << 18
NO_GAIN_VALUE = 1 << 19
NO_LIN_CORR = 1 << 20
NO_SAT_CHECK = 1 << 21
UNRELIABLE_BIAS = 1 << 22
UNRELIABLE_DARK = 1 << 23
UNRELIABLE_SLOPE = 1 << 24
UNRELIABLE_FLAT = 1 << 25
OPEN = 1 << 26
ADJ_OPEN = 1 << 27
FLUX_ESTIMATED = 1 << 28
MSA_FAILED_OPEN = 1 << 29
OTHER_BAD_PIXEL = 1 << 30
REFERENCE_PIXEL = 1 << 31

#: Name -> value for every pixel flag, in bit order (the JWST ``dqflags.pixel`` table).
PIXEL: dict[str, int] = {
    name: value
    for name, value in sorted(
        ((k, v) for k, v in globals().items() if k.isupper() and isinstance(v, int)),
        key=lambda kv: kv[1],
    )
}

#: The group-DQ flags (uint8 GROUPDQ extension of ramp files).
GROUP: dict[str, int] = {
    "GOOD": GOOD,
    "DO_NOT_USE": DO_NOT_USE,
    "SATURATED": SATURATED,
    "JUMP_DET": JUMP_DET,
    "DROPOUT": DROPOUT,
    "OUTLIER": OUTLIER,
    "PERSISTENCE": PERSISTENCE,
    "AD_FLOOR": AD_FLOOR,
    "CHARGELOSS": CHARGELOSS,
}

#: dtype of PIXELDQ / reference-file DQ arrays, and of GROUPDQ.
PIXEL_DTYPE = np.uint32
GROUP_DTYPE = np.uint8


def dq_def(names: list[str] | tuple[str, ...]) -> np.ndarray:
    """Build a ``DQ_DEF`` table for the named flags.

    Parameters
    ----------
    names : sequence of str
        Flag names from :data:`PIXEL` (``GOOD`` may be included).

    Returns
    -------
    numpy.ndarray
        Structured array with fields ``BIT`` (int32), ``VALUE`` (uint32), ``NAME`` and
        ``DESCRIPTION`` (strings), the layout the JWST reference-file schemas use.
    """
    rows = []
    for name in names:
        value = PIXEL[name]
        bit = 0 if value == 0 else int(value).bit_length() - 1
        rows.append((bit, value, name, _DESCRIPTIONS.get(name, name.replace("_", " ").lower())))
    dtype = [("BIT", "<i4"), ("VALUE", "<u4"), ("NAME", "S40"), ("DESCRIPTION", "S80")]
    return np.array(rows, dtype=dtype)


_DESCRIPTIONS = {
    "GOOD": "Good pixel",
    "DO_NOT_USE": "Bad pixel. Do not use.",
    "SATURATED": "Pixel saturated during exposure",
    "JUMP_DET": "Jump detected during exposure",
    "UNRELIABLE_BIAS": "Bias variance large",
    "UNRELIABLE_DARK": "Dark variance large",
    "HOT": "Hot pixel",
    "WARM": "Warm pixel",
    "DEAD": "Dead pixel",
    "REFERENCE_PIXEL": "Pixel is a reference pixel",
}
