"""CRDS-format reference-file writing (plain astropy; validated with stdatamodels in tests).

A reference file is a primary header with the CRDS selection and provenance
keywords, followed by image extensions (``SCI``, ``ERR``, ``DQ``) and, for files
with DQ, a ``DQ_DEF`` table. Files are written to a temporary name and renamed.
"""

from __future__ import annotations

import os
import re
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from astropy.io import fits

from .exposure_writer import atomic_path

PEDIGREES = ("GROUND", "INFLIGHT", "DUMMY", "SIMULATION", "MODEL")
MAX_DESCRIP = 65


class MetadataError(ValueError):
    """Invalid CRDS metadata given by the user (checked before any computation)."""


@dataclass
class CrdsMeta:
    """User-supplied CRDS metadata of a reference file.

    Attributes
    ----------
    author : str
        AUTHOR.
    description : str or None
        DESCRIP (at most 65 characters); None for the reference type's default.
    pedigree : str
        ``GROUND``, ``DUMMY``, ``SIMULATION``, ``MODEL``, or
        ``INFLIGHT YYYY-MM-DD YYYY-MM-DD``.
    useafter : str
        ``YYYY-MM-DDTHH:MM:SS`` (a bare date gets ``T00:00:00``).
    history : list of str
        Extra HISTORY entries.
    readpatt, subarray : str or None
        Override READPATT / SUBARRAY (default: READPATT ``ANY``, SUBARRAY from the inputs).
    """

    author: str = "daskref"
    description: str | None = None
    pedigree: str = "GROUND"
    useafter: str = "2000-01-01T00:00:00"
    history: list[str] = field(default_factory=list)
    readpatt: str | None = None
    subarray: str | None = None

    def __post_init__(self):
        if isinstance(self.history, str):
            self.history = [self.history] if self.history else []
        self.useafter = validate_useafter(self.useafter)
        self.pedigree = validate_pedigree(self.pedigree)
        if self.description is not None:
            validate_description(self.description)


def validate_description(text: str) -> str:
    """DESCRIP must be non-empty and at most 65 characters (CRDS)."""
    if not text.strip():
        raise MetadataError("description must not be empty")
    if len(text) > MAX_DESCRIP:
        raise MetadataError(
            f"description is {len(text)} characters; CRDS allows at most {MAX_DESCRIP}: {text!r}"
        )
    return text


def validate_useafter(value: str) -> str:
    """Normalise USEAFTER to ``YYYY-MM-DDTHH:MM:SS``, rejecting impossible dates."""
    text = str(value).strip().replace(" ", "T")
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        text += "T00:00:00"
    try:
        datetime.strptime(text, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise MetadataError(
            f"useafter {value!r} is not a date and time like 2022-01-01T00:00:00"
        ) from None
    return text


def validate_pedigree(value: str) -> str:
    """Check PEDIGREE: a known value, or ``INFLIGHT start end`` with ISO dates."""
    text = " ".join(str(value).split()).upper()
    parts = text.split(" ")
    if parts[0] not in PEDIGREES:
        raise MetadataError(f"pedigree {value!r} must start with one of {', '.join(PEDIGREES)}")
    if parts[0] == "INFLIGHT" and len(parts) != 1:
        if len(parts) != 3:
            raise MetadataError(f"pedigree {value!r}: expected 'INFLIGHT YYYY-MM-DD YYYY-MM-DD'")
        for d in parts[1:]:
            try:
                datetime.strptime(d, "%Y-%m-%d")
            except ValueError:
                raise MetadataError(f"pedigree {value!r}: {d!r} is not YYYY-MM-DD") from None
    elif parts[0] != "INFLIGHT" and len(parts) != 1:
        raise MetadataError(f"pedigree {value!r}: only INFLIGHT takes dates")
    return text


def history_lines(entries: Sequence[str], width: int = 70) -> list[str]:
    """Wrap HISTORY entries so each card fits."""
    lines: list[str] = []
    for entry in entries:
        lines.extend(textwrap.wrap(str(entry), width=width, break_long_words=True) or [""])
    return lines


def crds_header(
    attrs: Mapping,
    *,
    reftype: str,
    datamodel: str,
    meta: CrdsMeta,
    description: str,
    shape: tuple[int, int],
    use_readpatt: bool = True,
    filename: str,
) -> dict:
    """Primary-header keywords of a reference file.

    Parameters
    ----------
    attrs : mapping
        Header attributes of the inputs (first file).
    reftype, datamodel : str
        REFTYPE and DATAMODL.
    meta : CrdsMeta
    description : str
        DESCRIP when ``meta.description`` is None.
    shape : (ny, nx)
        Shape of the data (gives SUBSIZE1/2).
    use_readpatt : bool
        Whether the type is selected by READPATT.
    filename : str
        FILENAME.
    """
    header = {
        "DATE": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
        "FILENAME": filename,
        "DATAMODL": datamodel,
        "ORIGIN": "daskref",
        "TELESCOP": "JWST",
        "INSTRUME": str(attrs.get("INSTRUME", "")).upper(),
        "DETECTOR": str(attrs.get("DETECTOR", "")).upper(),
        "SUBARRAY": (meta.subarray or str(attrs.get("SUBARRAY", "FULL"))).upper(),
        "SUBSTRT1": int(attrs.get("SUBSTRT1", 1)),
        "SUBSTRT2": int(attrs.get("SUBSTRT2", 1)),
        "SUBSIZE1": int(shape[1]),
        "SUBSIZE2": int(shape[0]),
        "FASTAXIS": int(attrs.get("FASTAXIS", 1)),
        "SLOWAXIS": int(attrs.get("SLOWAXIS", 2)),
        "REFTYPE": reftype,
        "DESCRIP": validate_description(meta.description or description),
        "AUTHOR": meta.author,
        "PEDIGREE": meta.pedigree,
        "USEAFTER": meta.useafter,
    }
    if use_readpatt:
        header["READPATT"] = (meta.readpatt or "ANY").upper()
    return header


def write_reference(
    path: str | os.PathLike,
    header: Mapping,
    history: Sequence[str],
    images: Sequence[tuple[str, np.ndarray, str | None]],
    dq_def: np.ndarray | None = None,
) -> Path:
    """Write a reference file atomically.

    Parameters
    ----------
    path : path-like
        Output file; written to a temporary name beside it and renamed.
    header : mapping
        Primary-header keywords (:func:`crds_header`).
    history : sequence of str
        HISTORY entries (wrapped to fit the cards).
    images : sequence of (extname, array, bunit)
        Image extensions in order; ``bunit`` None for none.
    dq_def : structured ndarray, optional
        The ``DQ_DEF`` table (:func:`daskref.dq.dq_def`).

    Returns
    -------
    pathlib.Path
    """
    primary = fits.PrimaryHDU()
    for key, value in header.items():
        primary.header[key] = value
    for line in history_lines(history):
        primary.header.add_history(line)
    hdus = [primary]
    for name, array, bunit in images:
        hdu = fits.ImageHDU(np.ascontiguousarray(array), name=name)
        if bunit:
            hdu.header["BUNIT"] = bunit
        hdus.append(hdu)
    if dq_def is not None:
        hdus.append(fits.BinTableHDU(dq_def, name="DQ_DEF"))
    # The schema sees the headers, the extensions and their dtypes and dimensions,
    # not the pixel values: it validates a copy whose images are single pixels, so
    # a DARK of a gigabyte is not read back in full before it is renamed into place.
    validate_with_datamodel(_schema_probe(hdus), header.get("DATAMODL"), path)
    with atomic_path(path) as tmp:
        fits.HDUList(hdus).writeto(tmp)
    return Path(path)


def _schema_probe(hdus) -> fits.HDUList:
    """The HDUs with every image cut to one pixel (same dtype, same dimensions)."""
    probe = [fits.PrimaryHDU(header=hdus[0].header.copy())]
    for hdu in hdus[1:]:
        if isinstance(hdu, fits.ImageHDU):
            one = np.zeros((1,) * hdu.data.ndim, hdu.data.dtype)
            header = hdu.header.copy()
            probe.append(fits.ImageHDU(one, header=header, name=hdu.name))
        else:
            probe.append(hdu.copy())
    return fits.HDUList(probe)


def validate_with_datamodel(path, datamodel: str | None, name=None) -> bool:
    """Open and validate a file (or an HDUList) with its official ``stdatamodels`` model.

    daskref does not need stdatamodels; where it is installed, a file that its
    schema rejects (an unknown SUBARRAY name, say) is refused before it is renamed
    into place.

    Returns
    -------
    bool
        True if validated, False if stdatamodels is not installed.

    Raises
    ------
    MetadataError
        With the first line of the schema's complaint.
    """
    if not datamodel:
        return False
    try:
        from stdatamodels.jwst import datamodels
        from stdatamodels.validate import ValidationWarning
    except ImportError:
        return False
    model_class = getattr(datamodels, datamodel)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # On open, a value the schema rejects is dropped with a warning: refuse it.
            warnings.simplefilter("error", ValidationWarning)
            source = path if isinstance(path, fits.HDUList) else str(path)
            with model_class(source) as model:
                model.validate()
    except Exception as exc:  # schema errors come in several types
        lines = [s.strip() for s in str(exc).strip().splitlines() if s.strip()]
        detail = " ".join(lines[:2]) if lines else type(exc).__name__
        raise MetadataError(f"{name or path}: not a valid {datamodel}: {detail}") from None
    return True
