"""The complete bad-pixel MASK from darks and flats of one detector, with the Python API.

Run: ``python examples/bad_pixel_mask.py [OUTDIR]``. Simulates darks and lamp flats of a
NIRCam subarray with every kind of bad pixel; point ``darks``/``flats`` at your own
files (``uncal`` ramps, or ``_rateints`` files for the flats) instead.
"""

import sys
from pathlib import Path

import numpy as np
from astropy.io import fits

import daskref
from daskref.simulate import (
    BAD_PIXEL_DEFAULTS,
    FLAT_DEFECT_DEFAULTS,
    make_truth,
    simulate_exposure,
    simulate_flats,
    write_references,
)

outdir = Path(sys.argv[1] if len(sys.argv) > 1 else "example-output")
truth = make_truth(subarray="SUB160", substrt=(1, 1), subsize=(160, 160), tframe=10.7,
                   seed=7, **BAD_PIXEL_DEFAULTS, **FLAT_DEFECT_DEFAULTS)
(outdir / "darks").mkdir(parents=True, exist_ok=True)
darks = [simulate_exposure(outdir / "darks" / f"dark_{k}_uncal.fits", truth, nints=2,
                           ngroups=20, seed=k).path for k in range(6)]
flats = simulate_flats(outdir / "flats", truth, 3, nints=2, ngroups=8).paths
# the calibration's references (your own files, or CRDS's, in real use)
refs = write_references(truth, outdir / "refs", 20,
                        kinds=["saturation", "superbias", "linearity", "readnoise", "gain",
                               "dark"])

mask = daskref.bad_pixel_mask(darks=darks, flats=flats, hot_threshold=1.0,
                              flat_mean_normalization_method="smoothed", **refs)
print(mask)  # lazy: both halves are read, calibrated and reduced in the next step
out = outdir / "mask.fits"
written = daskref.write(mask, out, pedigree="SIMULATION", useafter="2026-01-01T00:00:00")
print("wrote", *written, *daskref.qa(out))

dq = fits.getdata(out, "DQ")
for name in ("HOT", "WARM", "RC", "TELEGRAPH", "DEAD", "LOW_QE", "OPEN", "ADJ_OPEN"):
    print(f"{name:>9}: {np.count_nonzero(dq & daskref.dq.PIXEL[name])} pixels")
