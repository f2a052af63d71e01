"""The jwst pipeline applies daskref's SATURATION, LINEARITY and GAIN as they are (``jwst``)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

import daskref
import daskref.geometry
from daskref import dq
from daskref.prep import backend_jwst as bj
from daskref.simulate import (
    group_times,
    make_truth,
    simulate_exposure,
    simulate_ptc,
    simulate_ramps,
    write_references,
)

jwst = pytest.importorskip("jwst")
# the pipeline's own deprecation notices (crds, stpipe) are not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

WELL = {"full_well": 45000.0, "nonlin_quadratic": 0.03, "nonlin_cubic": 0.02}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """SATURATION and LINEARITY made by daskref from a 3-level campaign of a SUB64P
    window, and a science exposure of the same detector that saturates part-way."""
    d = tmp_path_factory.mktemp("jwst_illuminated")
    truth = make_truth(subarray="SUB64P", substrt=(1, 1), subsize=(64, 64), seed=77,
                       tframe=10.0, **WELL)
    camp = simulate_ramps(d / "ramps", truth, (0.6, 1.2, 2.0), nints=2, ngroups=20)
    sat_path, lin_path = d / "saturation.fits", d / "linearity.fits"
    daskref.write([daskref.saturation(camp.paths), daskref.linearity(camp.paths)],
                  [sat_path, lin_path], pedigree="SIMULATION")
    rate = 2.0 * float(np.median(truth.full_well)) / (12 * 10.0)
    sci = simulate_exposure(d / "sci_uncal.fits", truth, nints=1, ngroups=12, seed=5,
                            flux=np.where(truth.reference, 0.0, rate)).path
    refs = write_references(truth, d / "refs", 12, kinds=["superbias"])
    return truth, camp, sat_path, sci, refs, lin_path, rate


def test_saturation_step_flags_the_plateaus(made):
    from jwst.saturation import SaturationStep
    from stdatamodels.jwst import datamodels

    truth, _, sat_path, sci, refs, _, _ = made
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


def test_linearity_step_makes_the_ramps_linear(made):
    from jwst.linearity import LinearityStep
    from jwst.saturation import SaturationStep
    from jwst.superbias import SuperBiasStep
    from stdatamodels.jwst import datamodels

    truth, _, sat_path, sci, refs, lin_path, rate = made
    with bj.offline_crds(), datamodels.RampModel(str(sci)) as model:
        model = SaturationStep.call(model, override_saturation=str(sat_path),
                                    override_superbias=str(refs["superbias"]),
                                    n_pix_grow_sat=0)
        model = SuperBiasStep.call(model, override_superbias=str(refs["superbias"]))
        before = model.data.copy()
        result = LinearityStep.call(model, override_linearity=str(lin_path))
    assert result.meta.cal_step.linearity == "COMPLETE"
    t = group_times(truth.attrs, 12)
    linear = rate * t[:, None, None] + np.zeros(truth.shape)  # a uniform flux, DN/s
    normal = ~truth.reference
    unsaturated = (result.groupdq[0] & dq.SATURATED) == 0
    frac = linear / truth.full_well[None]
    for g in range(12):
        use = normal & unsaturated[g] & (frac[g] > 0.05) & (frac[g] < 0.95)
        if use.sum() < 500:
            continue
        corrected = np.median(result.data[0, g][use] / linear[g][use] - 1)
        raw = np.median(before[0, g][use] / linear[g][use] - 1)
        # corrected to the 0.3 %; uncorrected up to 5 % low at the top
        assert abs(corrected) < 0.003, (g, corrected, raw)
    assert raw < -0.02
    # identity (NO_LIN_CORR) on the reference pixels, flagged in the science DQ
    assert np.all(result.pixeldq[truth.reference] & dq.NO_LIN_CORR)
    np.testing.assert_array_equal(result.data[0][:, truth.reference],
                                  before[0][:, truth.reference])


def test_ramp_fit_step_uses_the_gain(tmp_path):
    """jwst ramp_fit takes daskref's GAIN: the Poisson variance of every amplifier's
    slopes scales as 1 / gain."""
    from jwst.ramp_fitting import RampFitStep
    from stdatamodels.jwst import datamodels

    truth = make_truth(subarray="SUBGRISM64", substrt=(1, 1), subsize=(2048, 64), seed=31,
                       tframe=10.0, amp_gains=(1.6, 2.0, 2.4, 1.8), gain_scatter=0.02, **WELL)
    camp = simulate_ptc(tmp_path / "ptc", truth, ngroups=5, n_pairs=2)
    gain_path = tmp_path / "gain.fits"
    daskref.write(daskref.gain(camp.paths), gain_path, pedigree="SIMULATION")
    refs = write_references(truth, tmp_path / "refs", 6, kinds=["readnoise"])
    rate = 0.3 * float(np.median(truth.full_well)) / (6 * 10.0)
    sci = simulate_exposure(tmp_path / "sci_uncal.fits", truth, nints=1, ngroups=6, seed=9,
                            flux=np.where(truth.reference, 0.0, rate)).path
    with bj.offline_crds(), datamodels.RampModel(str(sci)) as model:
        model.data = model.data.astype(np.float32)
        result = RampFitStep.call(model, override_gain=str(gain_path),
                                  override_readnoise=str(refs["readnoise"]))
    if isinstance(result, (list, tuple)):
        result = result[0]
    gmap = fits.getdata(gain_path, "SCI")
    amps = daskref.geometry.amplifier_index(truth.attrs, truth.shape)
    sci_px = ~truth.reference
    scaled = []
    for a in range(4):
        use = sci_px & (amps == a)[None, :]
        slope = np.median(result.data[use])
        np.testing.assert_allclose(slope, rate, rtol=0.05)  # read through a 1 % deficit
        scaled.append(np.median(result.var_poisson[use] * gmap[use]))
    # gains 1.6 ... 2.4 differ by 50 %; var_poisson x gain agrees to the gain's accuracy
    np.testing.assert_allclose(scaled, np.median(scaled), rtol=0.02)
