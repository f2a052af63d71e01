"""The jwst pipeline applies daskref's DARK and MASK as they are (needs ``jwst``)."""

from __future__ import annotations

import numpy as np
import pytest

import daskref
from daskref import dq
from daskref.io import products
from daskref.prep import backend_jwst as bj
from daskref.prep import prep
from daskref.simulate import simulate_campaign, simulate_exposure, write_references

jwst = pytest.importorskip("jwst")
# the pipeline's own deprecation notices (crds, stpipe) are not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A DARK and a MASK made by daskref from 8 simulated SUB160 darks, and a science
    exposure of the same detector calibrated by daskref through linearity."""
    d = tmp_path_factory.mktemp("jwst_steps")
    camp = simulate_campaign(d / "darks", 8, nints=2, ngroups=10, seed=21, subarray="SUB160",
                             substrt=(1, 1), subsize=(160, 160), tframe=10.7,
                             hot_fraction=0.01, warm_fraction=0.01, rc_fraction=0.01,
                             telegraph_fraction=0.01)
    refs = write_references(camp.truth, d / "refs", 10,
                            kinds=["saturation", "superbias", "linearity", "readnoise",
                                   "gain"])
    dark_path, mask_path = d / "dark.fits", d / "mask.fits"
    daskref.write([daskref.dark(camp.paths, **refs), daskref.mask_from_darks(camp.paths, **refs)],
                  [dark_path, mask_path], pedigree="SIMULATION")
    sci_uncal = simulate_exposure(d / "sci_uncal.fits", camp.truth, nints=1, ngroups=8,
                                  seed=99).path
    ds = prep(sci_uncal, steps="saturation,superbias,refpix,linearity", **refs)
    products.write_products([ds], d)
    return camp, dark_path, mask_path, sci_uncal, d / "sci_linearity.fits"


def test_dark_current_step_subtracts_the_dark(made):
    from jwst.dark_current import DarkCurrentStep
    from stdatamodels.jwst import datamodels

    _, dark_path, _, _, ramp_path = made
    # opened as a model: Step.call(path) would ask CRDS for parameters first
    with bj.offline_crds(), datamodels.RampModel(str(ramp_path)) as model:
        # as in a pipeline-made ramp (daskref's ramp products do not carry the array)
        model.average_dark_current = np.zeros(model.data.shape[-2:], np.float32)
        result = DarkCurrentStep.call(model, override_dark=str(dark_path))
    assert result.meta.cal_step.dark_sub == "COMPLETE"
    with datamodels.RampModel(str(ramp_path)) as before, \
            datamodels.DarkModel(str(dark_path)) as dark:
        removed = before.data - result.data
        np.testing.assert_allclose(removed[0], dark.data[:8], atol=1e-3)
        # the dark's per-pixel average dark current reaches the science model
        np.testing.assert_allclose(result.average_dark_current, dark.average_dark_current)
        assert np.all((result.pixeldq & dark.dq) == dark.dq)


def test_dq_init_step_applies_the_mask(made):
    from jwst.dq_init import DQInitStep
    from stdatamodels.jwst import datamodels

    camp, _, mask_path, sci_uncal, _ = made
    with bj.offline_crds(), datamodels.RampModel(str(sci_uncal)) as model:
        result = DQInitStep.call(model, override_mask=str(mask_path))
    assert result.meta.cal_step.dq_init == "COMPLETE"
    with datamodels.MaskModel(str(mask_path)) as mask:
        assert np.array_equal(result.pixeldq & mask.dq, mask.dq)
        hot = (mask.dq & dq.HOT) != 0
        assert hot.sum() >= 0.9 * camp.truth.class_mask("hot").sum()
        assert np.all(result.pixeldq[camp.truth.reference] & dq.REFERENCE_PIXEL)


def test_dark_current_step_applies_the_miri_planes(tmp_path):
    from jwst.dark_current import DarkCurrentStep
    from stdatamodels.jwst import datamodels

    camp = simulate_campaign(tmp_path / "darks", 3, nints=3, ngroups=8, seed=4,
                             instrument="MIRI", subarray="SUB64", substrt=(1, 779),
                             subsize=(72, 64), readnoise=20.0, tframe=10.0)
    refs = write_references(camp.truth, tmp_path / "refs", 8,
                            kinds=["saturation", "linearity", "readnoise", "gain"])
    dark_path = daskref.write(daskref.dark(camp.paths, **refs), tmp_path / "dark.fits")[0]
    uncal = simulate_exposure(tmp_path / "sci_uncal.fits", camp.truth, nints=3, ngroups=8,
                              seed=50).path
    products.write_products([prep(uncal, steps="saturation,linearity", **refs)], tmp_path)
    with bj.offline_crds(), datamodels.RampModel(str(tmp_path / "sci_linearity.fits")) as m:
        m.average_dark_current = np.zeros(m.data.shape[-2:], np.float32)
        before = m.data.copy()
        result = DarkCurrentStep.call(m, override_dark=str(dark_path))
    with datamodels.DarkMIRIModel(str(dark_path)) as dark:
        removed = before - result.data
        np.testing.assert_allclose(removed[0], dark.data[0], atol=1e-2)
        np.testing.assert_allclose(removed[2], dark.data[1], atol=1e-2)


def test_dq_init_step_applies_the_combined_mask(made, tmp_path):
    """The MASK from darks and flats of one detector, as dq_init uses it."""
    from jwst.dq_init import DQInitStep
    from stdatamodels.jwst import datamodels

    from daskref.simulate import FLAT_DEFECT_DEFAULTS, make_truth, simulate_flats

    camp, _, _, sci_uncal, _ = made
    # the darks' detector with flat defects added (the dark classes are unchanged)
    truth = make_truth(**{**_truth_kwargs(camp.truth), **FLAT_DEFECT_DEFAULTS})
    flats = simulate_flats(tmp_path / "flats", truth, 2, nints=1, ngroups=8).paths
    refs = write_references(truth, tmp_path / "refs", 10,
                            kinds=["saturation", "superbias", "linearity", "readnoise",
                                   "gain", "dark"])
    mask_path = tmp_path / "combined.fits"
    daskref.write(daskref.bad_pixel_mask(darks=camp.paths, flats=flats, **refs), mask_path,
                  pedigree="SIMULATION")
    with bj.offline_crds(), datamodels.RampModel(str(sci_uncal)) as model:
        result = DQInitStep.call(model, override_mask=str(mask_path))
    assert result.meta.cal_step.dq_init == "COMPLETE"
    with datamodels.MaskModel(str(mask_path)) as mask:
        assert np.array_equal(result.pixeldq & mask.dq, mask.dq)
        dead = truth.class_mask("dead")
        assert np.all(result.pixeldq[dead] & (dq.DEAD | dq.DO_NOT_USE))
        assert np.mean((result.pixeldq[truth.class_mask("hot")] & dq.HOT) != 0) >= 0.9


def _truth_kwargs(truth):
    """make_truth arguments that give back ``truth`` (the fixture's detector)."""
    a = truth.attrs
    return dict(subarray=a["SUBARRAY"], substrt=(a["SUBSTRT1"], a["SUBSTRT2"]),
                subsize=(a["SUBSIZE1"], a["SUBSIZE2"]), tframe=a["TFRAME"], seed=truth.seed,
                hot_fraction=0.01, warm_fraction=0.01, rc_fraction=0.01,
                telegraph_fraction=0.01)
