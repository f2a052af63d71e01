"""``daskref.simulate.write_references``: CRDS-format references matching a simulated detector."""

import numpy as np
import pytest
from astropy.io import fits

from daskref import dq
from daskref.prep import prep
from daskref.simulate import (
    REFERENCE_TYPES,
    group_times,
    make_truth,
    simulate_exposure,
    write_references,
)

dm = pytest.importorskip("stdatamodels.jwst.datamodels")


@pytest.fixture(scope="module")
def nircam(tmp_path_factory):
    """A SUB64P NIRCam truth (50 DN/s flat) and its references for 8 groups."""
    truth = make_truth(subarray="SUB64P", substrt=(1, 1), subsize=(64, 64), flux=50.0,
                       tframe=10.73677, dark_current=0.05, seed=3)
    refs = write_references(truth, tmp_path_factory.mktemp("refs"), 8)
    return truth, refs


def _names(model):
    return [r["NAME"] if isinstance(r["NAME"], str) else r["NAME"].decode()
            for r in model.dq_def]


def test_write_references__every_file_validates_with_its_model(nircam):
    truth, refs = nircam
    assert set(refs) == set(REFERENCE_TYPES)
    for kind, path in refs.items():
        reftype, model_name = REFERENCE_TYPES[kind]
        with getattr(dm, model_name)(str(path)) as m:
            m.validate()
            assert m.meta.reftype == reftype
            assert m.meta.instrument.name == "NIRCAM" and m.meta.instrument.detector == "NRCA1"
            assert m.meta.subarray.name == "SUB64P"
            assert (m.meta.subarray.xstart, m.meta.subarray.ystart) == (1, 1)
            assert (m.meta.subarray.xsize, m.meta.subarray.ysize) == (64, 64)
            assert m.meta.pedigree == "SIMULATION"
            assert m.meta.telescope == "JWST"


def test_write_references__contents_match_the_truth(nircam):
    truth, refs = nircam
    shape = truth.shape
    with dm.MaskModel(str(refs["mask"])) as m:
        assert m.dq.dtype == np.uint32 and m.dq.shape == shape
        assert np.array_equal(m.dq == dq.REFERENCE_PIXEL, truth.reference)
        assert not (m.dq[~truth.reference]).any()
        assert _names(m) == ["GOOD", "REFERENCE_PIXEL"]
    with dm.SaturationModel(str(refs["saturation"])) as m:
        assert np.all(m.data == 65535.0) and not m.dq.any()
    with dm.SuperBiasModel(str(refs["superbias"])) as m:
        np.testing.assert_array_equal(m.data, truth.bias.astype(np.float32))
    with dm.LinearityModel(str(refs["linearity"])) as m:
        assert m.coeffs.shape == (3,) + shape
        assert np.all(m.coeffs[1] == 1) and not m.coeffs[0].any() and not m.coeffs[2].any()
    with dm.DarkModel(str(refs["dark"])) as m:
        # frame-resolved: 8 groups x (NFRAMES 1 + GROUPGAP 0) frames
        assert m.data.shape == (8,) + shape and m.dq.shape == shape
        assert (m.meta.exposure.nframes, m.meta.exposure.groupgap) == (1, 0)
        assert m.meta.exposure.ngroups == 8
        expected = truth.dark_current[None] * group_times(truth.attrs, 8)[:, None, None]
        np.testing.assert_allclose(m.data, expected, rtol=1e-6)
    with dm.ReadnoiseModel(str(refs["readnoise"])) as m:
        np.testing.assert_array_equal(m.data, truth.readnoise_cds.astype(np.float32))
    with dm.GainModel(str(refs["gain"])) as m:
        assert np.all(m.data == np.float32(truth.gain))
    assert fits.getheader(refs["gain"], "SCI")["BUNIT"] == "electrons/DN"


def test_write_references__dark_covers_frame_averaged_readouts(tmp_path):
    # MEDIUM8: 8 frames per group, 2 dropped: 3 groups span 30 frames.
    truth = make_truth(subarray="SUB64P", substrt=(1, 1), subsize=(64, 64),
                       readpatt="MEDIUM8", seed=4)
    refs = write_references(truth, tmp_path, 3, kinds=["dark"], saturation=60000)
    assert list(refs) == ["dark"]
    with dm.DarkModel(str(refs["dark"])) as m:
        m.validate()
        assert m.data.shape[0] == 30 and m.meta.exposure.nframes == 1
        assert m.meta.exposure.readpatt == "RAPID"
        t = float(truth.attrs["TFRAME"]) * np.arange(1, 31)
        np.testing.assert_allclose(m.data, truth.dark_current[None] * t[:, None, None],
                                   rtol=1e-6)


def test_write_references__miri_dark_is_a_darkmiri_model(tmp_path):
    truth = make_truth(instrument="MIRI", subarray="SUB64", substrt=(1, 779),
                       subsize=(72, 64), seed=5)
    refs = write_references(truth, tmp_path, 6)
    with dm.DarkMIRIModel(str(refs["dark"])) as m:
        m.validate()
        assert m.data.shape == (1, 6, 64, 72) and m.dq.shape == (1, 1, 64, 72)
    with dm.MaskModel(str(refs["mask"])) as m:
        assert np.array_equal(m.dq != 0, truth.reference)


def test_write_references__bad_arguments(tmp_path):
    truth = make_truth(subarray="SUB64P", substrt=(1, 1), subsize=(64, 64))
    with pytest.raises(ValueError, match="unknown reference kind"):
        write_references(truth, tmp_path, 5, kinds=["flat"])
    with pytest.raises(ValueError, match="ngroups"):
        write_references(truth, tmp_path, 0)


def test_write_references__feed_prep_and_recover_the_flux(nircam, tmp_path):
    """With exact references the rate is the illumination plus nothing else."""
    truth, refs = nircam
    exposure = simulate_exposure(tmp_path / "flat_uncal.fits", truth, nints=2, ngroups=8,
                                 seed=1)
    out = prep(exposure.path, steps="dq_init,saturation,superbias,refpix,linearity,"
               "dark_current,jump,rate", **refs).compute()
    science = ~truth.reference
    pull = ((out.rate.values - truth.flux) / out.rate_err.values)[science]
    # pulls of an unbiased rate with a correct error: mean 0 within 5 standard errors
    assert abs(pull.mean()) < 5 / np.sqrt(pull.size)
    assert 0.8 < pull.std() < 1.2
