"""SUPERBIAS reference files (``SuperBiasModel``: SCI, ERR, DQ, DQ_DEF)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from astropy.io import fits

from .. import dq
from ..io.crds import CrdsMeta
from ..io.exposure_writer import atomic_path
from ._base import check_computed, provenance, write_product

REFTYPE = "SUPERBIAS"
DATAMODEL = "SuperBiasModel"
DESCRIPTION = "Superbias from {n_inputs} darks (daskref)"
VARIABLES = ("superbias", "err", "dq")
DQ_NAMES = ("GOOD", "DO_NOT_USE", "UNRELIABLE_BIAS")


def filled_path(path) -> Path:
    """Where the filled superbias goes: ``<name>_filled.fits`` beside ``path``."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(".fits") + "_filled.fits")


def write(ds: xr.Dataset, path, meta: CrdsMeta):
    """Write a computed :func:`daskref.algorithms.superbias.superbias` product.

    With ``superbias_filled`` in the product, also writes the filled superbias as a
    plain image to :func:`filled_path` (an ancillary file, not a reference file).
    """
    check_computed(ds, VARIABLES)
    images = [
        ("SCI", ds["superbias"].values.astype(np.float32), "DN"),
        ("ERR", ds["err"].values.astype(np.float32), "DN"),
        ("DQ", ds["dq"].values.astype(np.uint32), None),
    ]
    out = write_product(ds, path, meta, reftype=REFTYPE, datamodel=DATAMODEL,
                        function="superbias", template=DESCRIPTION, images=images,
                        dq_def=dq.dq_def(DQ_NAMES))
    if "superbias_filled" in ds:
        hdu = fits.PrimaryHDU(ds["superbias_filled"].values.astype(np.float32))
        hdu.header["BUNIT"] = "DN"
        hdu.header["FILETYPE"] = "FILLED SUPERBIAS"
        for line in provenance(ds, "superbias"):
            hdu.header.add_history(line[:70])
        with atomic_path(filled_path(path)) as tmp:
            hdu.writeto(tmp)
    return out
