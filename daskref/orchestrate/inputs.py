"""The inputs of a campaign: which files are darks and which flats, and when each was taken.

Every file's headers are read and checked first (:func:`daskref.io.fits.scan`), before
any set is formed: a bad file ends the run with one line naming it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

from astropy.time import Time

from ..io.fits import ExposureInfo, InputError, scan
from .grouping import InputFile

#: JWST exposure types of darks and of flat-field / lamp / LED exposures.
DARK_EXP_TYPES = frozenset({
    "NRC_DARK", "NIS_DARK", "NRS_DARK", "FGS_DARK", "MIR_DARKIMG", "MIR_DARKMRS",
    "MIR_DARKALL",
})
FLAT_EXP_TYPES = frozenset({
    "NRC_FLAT", "NRC_LED", "NIS_LAMP", "NRS_LAMP", "NRS_AUTOFLAT", "FGS_INTFLAT",
    "MIR_FLATIMAGE", "MIR_FLATMRS", "MIR_FLATIMAGE-EXT", "MIR_FLATMRS-EXT",
})

#: The readout configuration a set must share (not NINTS: darks and flats with other
#: integration counts still group together).
READOUT_KEYS = ("SUBARRAY", "READPATT", "NGROUPS", "NFRAMES", "GROUPGAP")


def classify(info: ExposureInfo, dark_pattern: str, flat_pattern: str) -> str:
    """``dark`` or ``flat``: from EXP_TYPE, else the patterns on the file's basename.

    Raises
    ------
    InputError
        Neither the exposure type nor a pattern tells.
    """
    exp_type = str(info.extra.get("primary", info.header).get("EXP_TYPE", "")).upper()
    if exp_type in DARK_EXP_TYPES:
        return "dark"
    if exp_type in FLAT_EXP_TYPES:
        return "flat"
    name = os.path.basename(info.path)
    if dark_pattern and re.search(dark_pattern, name):
        return "dark"
    if flat_pattern and re.search(flat_pattern, name):
        return "flat"
    raise InputError(info.path, f"is neither a dark nor a flat: EXP_TYPE {exp_type or 'absent'}"
                     f" and the name matches neither dark_pattern {dark_pattern!r} nor "
                     f"flat_pattern {flat_pattern!r}")


def observation_mjd(info: ExposureInfo, mjdobs_fitskey: str, dateobs_fitskey: str,
                    timeobs_fitskey: str) -> float:
    """MJD of an exposure.

    ``mjdobs_fitskey`` where set and present, else the date and time keys, else
    EXPSTART.

    Raises
    ------
    InputError
        None of them is there.
    """
    header = info.extra.get("primary", info.header)
    if mjdobs_fitskey and header.get(mjdobs_fitskey) not in (None, ""):
        return float(header[mjdobs_fitskey])
    date = header.get(dateobs_fitskey) if dateobs_fitskey else None
    if date:
        time = header.get(timeobs_fitskey) if timeobs_fitskey else None
        stamp = f"{date}T{time}" if time and "T" not in str(date) else str(date)
        try:
            return float(Time(stamp, format="isot", scale="utc").mjd)
        except ValueError as exc:
            raise InputError(info.path, f"{dateobs_fitskey}/{timeobs_fitskey} = {stamp!r} is "
                             f"not a date and time ({exc})") from None
    if header.get("EXPSTART") not in (None, ""):
        return float(header["EXPSTART"])
    raise InputError(info.path, f"has no observation time: none of {mjdobs_fitskey or '-'}, "
                     f"{dateobs_fitskey}/{timeobs_fitskey}, EXPSTART")


def read_inputs(paths: Sequence[str | os.PathLike], inputfiles: Mapping) -> tuple[
        list[InputFile], dict[str, ExposureInfo], list[str]]:
    """Classify, time and check every input; the files ``basenamepattern`` keeps.

    Parameters
    ----------
    paths : sequence of path-like
    inputfiles : mapping
        The config's ``inputfiles`` section (``dark_pattern``, ``flat_pattern``,
        ``basenamepattern``, ``mjdobs_fitskey``, ``dateobs_fitskey``,
        ``timeobs_fitskey``, ``requiredfitskeys``).

    Returns
    -------
    (files, infos, notes)
        The kept inputs in input order, their scanned headers by path, and lines for
        the log (files dropped by the pattern).
    """
    notes = []
    pattern = inputfiles.get("basenamepattern") or ""
    kept = [os.fspath(p) for p in paths]
    if pattern:
        dropped = [p for p in kept if not re.search(pattern, os.path.abspath(p))]
        kept = [p for p in kept if p not in dropped]
        for p in dropped:
            notes.append(f"{p}: left out, its path does not match basenamepattern {pattern!r}")
        if not kept:
            raise InputError(None, f"no input matches basenamepattern {pattern!r}")
    infos = scan(kept)
    required = list(inputfiles.get("requiredfitskeys") or [])
    files = []
    for index, info in enumerate(infos):
        header = info.extra.get("primary", info.header)
        missing = [k for k in required if k not in header]
        if missing:
            raise InputError(info.path, f"has no {', '.join(missing)} keyword (required by "
                             "inputfiles.requiredfitskeys)")
        kind = classify(info, inputfiles.get("dark_pattern") or "",
                        inputfiles.get("flat_pattern") or "")
        mjd = observation_mjd(info, inputfiles.get("mjdobs_fitskey") or "",
                              inputfiles.get("dateobs_fitskey") or "",
                              inputfiles.get("timeobs_fitskey") or "")
        readout = tuple(_readout_value(info, k) for k in READOUT_KEYS)
        files.append(InputFile(path=info.path, kind=kind, mjd=mjd,
                               detector=str(info.header.get("DETECTOR", "")).upper(),
                               readout=readout, index=index))
    return files, {i.path: i for i in infos}, notes


def _readout_value(info: ExposureInfo, key: str):
    value = info.header.get(key)
    if key == "NGROUPS":
        return int(info.shape[1])
    if key in ("NFRAMES", "GROUPGAP"):
        return int(value if value is not None else (1 if key == "NFRAMES" else 0))
    return str(value if value is not None else "").upper()
