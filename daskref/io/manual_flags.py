"""Manual bad-pixel flag files (the jwst_reffiles text format).

A whitespace table with ``#`` comments and the column names ``x y flag``: each row
flags a rectangle of 0-based full-frame detector pixels with one JWST DQ mnemonic (any
case). A coordinate is a number, or an inclusive range ``a:b``, ``a:`` (to the last
pixel), ``:b`` (from the first) or ``:`` (all).

``default`` names the file daskref ships for the detector (``daskref/data/
manual_flags/<instrument>_<detector>.txt``; none means no flags).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..dq import PIXEL
from .fits import InputError

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "manual_flags"


@dataclass(frozen=True)
class ManualFlag:
    """One row: inclusive pixel ranges (None: open end) and the flag mnemonic."""

    line: int
    x: tuple[int | None, int | None]
    y: tuple[int | None, int | None]
    flag: str


def default_file(instrument: str, detector: str) -> Path | None:
    """The shipped file of a detector, or None."""
    path = DATA_DIR / f"{instrument.lower()}_{detector.lower()}.txt"
    return path if path.is_file() else None


def _coordinate(text: str, path: str, line: int, axis: str) -> tuple[int | None, int | None]:
    try:
        if ":" in text:
            a, b = text.split(":", 1)
            return (int(a) if a else None, int(b) if b else None)
        value = int(text)
        return value, value
    except ValueError:
        raise InputError(path, f"line {line}: {axis} {text!r} is not a pixel number or "
                         "range (a, a:b, a:, :b or :)") from None


def read_manual_flags(path: str | os.PathLike) -> list[ManualFlag]:
    """Parse a manual flag file.

    Raises
    ------
    InputError
        A missing file, a row without three columns, a bad coordinate or an unknown
        flag (naming the line).
    """
    path = str(path)
    if not os.path.isfile(path):
        raise InputError(path, "manual flag file not found")
    rows = []
    header_seen = False
    with open(path) as f:
        for number, raw in enumerate(f, start=1):
            text = raw.split("#", 1)[0].strip()
            if not text:
                continue
            fields = text.split()
            if not header_seen and [c.lower() for c in fields] == ["x", "y", "flag"]:
                header_seen = True
                continue
            if len(fields) != 3:
                raise InputError(path, f"line {number}: expected 'x y flag', got {text!r}")
            flag = fields[2].upper()
            if flag not in PIXEL:
                raise InputError(path, f"line {number}: unknown flag {fields[2]!r} (not a "
                                 "JWST DQ mnemonic)")
            rows.append(ManualFlag(number, _coordinate(fields[0], path, number, "x"),
                                   _coordinate(fields[1], path, number, "y"), flag))
    return rows
