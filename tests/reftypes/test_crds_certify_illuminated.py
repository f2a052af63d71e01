"""CRDS certification checks of the SATURATION, LINEARITY and GAIN files.

The checks of :func:`test_crds_certify.certify_checks` (the ``crds`` package's TPN
validators, without a CRDS context). Skipped where ``crds`` is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest

import daskref
from daskref.simulate import make_truth, simulate_ptc, simulate_ramps

from .test_crds_certify import certify_checks

crds = pytest.importorskip("crds")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

WELL = {"full_well": 45000.0, "nonlin_quadratic": 0.03, "nonlin_cubic": 0.02}
PRODUCTS = ("saturation", "linearity", "gain")


@pytest.fixture(scope="module", params=["NIRCAM", "MIRI"])
def products(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    if request.param == "MIRI":
        truth = make_truth(instrument="MIRI", subarray="SUB64", substrt=(1, 779),
                           subsize=(72, 64), tframe=10.0, seed=8, **WELL)
    else:
        truth = make_truth(subarray="SUB64P", substrt=(1, 1), subsize=(64, 64), tframe=10.0,
                           seed=8, **WELL)
    camp = simulate_ramps(d / "in", truth, (0.6, 1.2, 2.0), nints=1, ngroups=20)
    ptc = simulate_ptc(d / "ptc", truth, (0.2, 0.5), ngroups=4)
    made = [daskref.saturation(camp.paths), daskref.linearity(camp.paths),
            daskref.gain(ptc.paths, fit_degree=1, box_size=16)]
    return daskref.write(made, [d / f"{n}.fits" for n in PRODUCTS], pedigree="SIMULATION")


@pytest.mark.parametrize("index", range(len(PRODUCTS)), ids=PRODUCTS)
def test_files_pass_the_crds_certify_checks(products, index):
    assert certify_checks(products[index]) == []


def test_gain_map_is_finite_on_interleaved_amplifiers(products):
    """MIRI's amplifiers interleave column by column: every one gets a gain."""
    from astropy.io import fits

    path = products[PRODUCTS.index("gain")]
    assert np.isfinite(fits.getdata(path, "SCI")).all()
    header = fits.getheader(path)
    gains = [header[f"GAINAMP{a}"] for a in range(1, 5) if f"GAINAMP{a}" in header]
    # MIRI: 4 amplifiers; a NIRCam 64 x 64 subarray reads through one
    assert len(gains) == (4 if header["INSTRUME"] == "MIRI" else 1)
    assert all(1.5 < g < 2.5 for g in gains)  # the true gain is 2
