"""The jwst pipeline applies daskref's SATURATION and LINEARITY as they are (needs ``jwst``)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

import daskref
from daskref import dq
from daskref.prep import backend_jwst as bj
from daskref.simulate import make_truth, simulate_exposure, simulate_ramps, write_references

jwst = pytest.importorskip("jwst")
# the pipeline's own deprecation notices (crds, stpipe) are not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

WELL = {"full_well": 45000.0, "nonlin_quadratic": 0.03, "nonlin_cubic": 0.02}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """SATURATION made by daskref from a 3-level campaign of a SUB64P window, and a
    science exposure of the same detector that saturates part-way."""
    d = tmp_path_factory.mktemp("jwst_illuminated")
    truth = make_truth(subarray="SUB64P", substrt=(1, 1), subsize=(64, 64), seed=77,
                       tframe=10.0, **WELL)
    camp = simulate_ramps(d / "ramps", truth, (0.6, 1.6, 3.0), nints=2, ngroups=12)
    sat_path = d / "saturation.fits"
    daskref.write(daskref.saturation(camp.paths), sat_path, pedigree="SIMULATION")
    rate = 2.0 * float(np.median(truth.full_well)) / (12 * 10.0)
    sci = simulate_exposure(d / "sci_uncal.fits", truth, nints=1, ngroups=12, seed=5,
                            flux=np.where(truth.reference, 0.0, rate)).path
    refs = write_references(truth, d / "refs", 12, kinds=["superbias"])
    return truth, camp, sat_path, sci, refs


def test_saturation_step_flags_the_plateaus(made):
    from jwst.saturation import SaturationStep
    from stdatamodels.jwst import datamodels

    truth, _, sat_path, sci, refs = made
    with bj.offline_crds(), datamodels.RampModel(str(sci)) as model:
        result = SaturationStep.call(model, override_saturation=str(sat_path),
                                     override_superbias=str(refs["superbias"]),
                                     n_pix_grow_sat=0)
    assert result.meta.cal_step.saturation == "COMPLETE"
    raw = fits.getdata(sci).astype(np.float64)
    threshold = fits.getdata(sat_path, "SCI")
    flagged = (result.groupdq & dq.SATURATED) != 0
    normal = ~truth.reference
    # exactly the groups at or above the threshold, on every checked pixel
    np.testing.assert_array_equal(flagged[:, :, normal], (raw >= threshold)[:, :, normal])
    # and those are the groups after the onset: the science ramp fills its well at
    # about group 6 of 12, so half of each normal pixel's groups are saturated
    frac = flagged[0][:, normal].mean(axis=0)
    assert np.all((frac > 0.3) & (frac < 0.7))
    # NO_SAT_CHECK pixels (the reference pixels here) carry the flag and are not flagged
    assert np.all(result.pixeldq[truth.reference] & dq.NO_SAT_CHECK)
    assert not flagged[:, :, truth.reference].any()
