"""daskref: JWST detector calibration reference files from ramp campaigns, with Dask."""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:
    __version__ = _version("daskref")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

from . import dq, simulate  # noqa: E402
from .api import (  # noqa: E402
    bad_pixel_mask,
    compute,
    dark,
    gain,
    linearity,
    mask_from_darks,
    mask_from_flats,
    open_inputs,
    qa,
    readnoise,
    saturation,
    superbias,
    write,
)
from .execution import cluster  # noqa: E402
from .io.fits import InputError, inventory, open_exposure, open_stack, scan  # noqa: E402

__all__ = [
    "InputError", "__version__", "bad_pixel_mask", "cluster", "compute", "dark", "dq", "gain",
    "inventory", "linearity",
    "mask_from_darks", "mask_from_flats",
    "open_exposure",
    "open_inputs", "open_stack", "qa", "readnoise", "saturation", "scan", "simulate",
    "superbias", "write",
]
