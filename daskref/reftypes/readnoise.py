"""READNOISE reference files (``ReadnoiseModel``: SCI, CDS noise in DN)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..io.crds import CrdsMeta
from ._base import check_computed, write_product

REFTYPE = "READNOISE"
DATAMODEL = "ReadnoiseModel"
DESCRIPTION = "CDS read noise from {n_inputs} darks (daskref)"
VARIABLES = ("readnoise",)


def write(ds: xr.Dataset, path, meta: CrdsMeta):
    """Write a computed :func:`daskref.algorithms.readnoise.readnoise` product."""
    check_computed(ds, VARIABLES)
    images = [("SCI", ds["readnoise"].values.astype(np.float32), "DN")]
    return write_product(ds, path, meta, reftype=REFTYPE, datamodel=DATAMODEL,
                         function="readnoise", template=DESCRIPTION, images=images)
