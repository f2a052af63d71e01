"""Build READNOISE and SUPERBIAS reference files with the Python API.

Run: ``python examples/readnoise_superbias.py [OUTDIR]``. Uses simulated darks; point
``paths`` at your own ``*_uncal.fits`` files instead.
"""

import sys
from pathlib import Path

import numpy as np
from astropy.io import fits

import daskref

outdir = Path(sys.argv[1] if len(sys.argv) > 1 else "example-output")
campaign = daskref.simulate.simulate_campaign(
    outdir / "darks", 6, nints=2, ngroups=10, subarray="SUB160", substrt=(1, 1),
    subsize=(160, 160), cosmic_ray_rate=1e-4, seed=42,
)
paths = campaign.paths

print(daskref.inventory(paths))

stack = daskref.open_stack(paths)  # lazy: nothing is read yet
rn = daskref.readnoise(stack, method="stack", group_diff_type="independent")
sb = daskref.superbias(stack, save_filled=True)
print(rn)  # an xarray.Dataset of dask arrays

written = daskref.write(
    [rn, sb], [outdir / "readnoise.fits", outdir / "superbias.fits"],
    author="example", pedigree="SIMULATION", useafter="2026-01-01T00:00:00",
    progress=True,
)
truth = campaign.truth
rn_map = fits.getdata(written[0], "SCI")
print("written:", *written)
print(f"median READNOISE / truth = {np.nanmedian(rn_map / truth.readnoise_cds):.4f}")
