"""Prep products: pipeline FITS layout, stdatamodels, read-back, zarr, atomic writes."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from astropy.io import fits

from daskref.io import products
from daskref.io.fits import open_exposure
from daskref.prep import prep
from daskref.simulate import group_times, simulate_campaign

datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")

CHAIN = "dq_init,saturation,superbias,refpix,linearity,dark_current,jump,rate"


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """A lazy full-chain prep result (with the optional fit output) of a small flat."""
    d = tmp_path_factory.mktemp("products")
    campaign = simulate_campaign(d, 1, nints=2, ngroups=6, seed=5, subarray="SUB64",
                                 substrt=(1, 1), subsize=(48, 40), flux=500.0,
                                 cosmic_ray_rate=0.05)
    truth = campaign.truth
    t = group_times(truth.attrs, 6)
    coeffs = np.zeros((2,) + truth.shape)
    coeffs[1] = 1.0
    refs = dict(mask=np.zeros(truth.shape, np.uint32), saturation=60000.0,
                superbias=truth.bias, linearity=coeffs,
                dark=truth.dark_current[None] * t[:, None, None],
                readnoise=truth.readnoise_cds, gain=truth.gain)
    return campaign, refs


def test_base_name():
    assert products.base_name("/a/jw01_nrca1_uncal.fits") == "jw01_nrca1"
    assert products.base_name("x_dark_current.fits") == "x"
    assert products.base_name("x_refpix.fits") == "x"
    assert products.base_name("plain.fits") == "plain"
    assert products.base_name("uncal.fits") == "uncal"
    assert products.product_path("d/x_uncal.fits", "out", "jump").as_posix() == "out/x_jump.fits"


def test_write_products__models_and_layout(result, tmp_path):
    campaign, refs = result
    ds = prep(campaign.paths[0], steps=CHAIN, save_opt=True, **refs)
    paths = products.write_products(ds, tmp_path, save_ramp=True)
    names = [p.name for p in paths]
    assert names == ["dark_000_ramp.fits", "dark_000_rate.fits", "dark_000_rateints.fits",
                     "dark_000_fitopt.fits"]
    expected = {"ramp": datamodels.RampModel, "rate": datamodels.ImageModel,
                "rateints": datamodels.CubeModel, "fitopt": datamodels.RampFitOutputModel}
    computed = ds.compute()
    for path in paths:
        kind = path.stem.rsplit("_", 1)[1]
        with datamodels.open(path) as model:
            assert type(model) is expected[kind]
            model.validate()
            assert model.meta.instrument.name == "NIRCAM"
            if kind == "ramp":
                assert model.data.dtype.newbyteorder("=") == np.float32
                assert model.data.shape == (2, 6, 40, 48)
                assert model.groupdq.dtype == np.uint8
                assert model.pixeldq.dtype.newbyteorder("=") == np.uint32
                assert model.meta.cal_step.jump == "COMPLETE"
                assert model.meta.cal_step.ramp_fit is None  # not on the ramp
                np.testing.assert_array_equal(model.data, computed["ramp"].values)
                np.testing.assert_array_equal(model.groupdq, computed["groupdq"].values)
            elif kind == "rate":
                assert model.meta.cal_step.ramp_fit == "COMPLETE"
                np.testing.assert_array_equal(model.data, computed["rate"].values)
                np.testing.assert_array_equal(model.err, computed["rate_err"].values)
                np.testing.assert_array_equal(model.dq, computed["dq"].values)
                np.testing.assert_array_equal(model.var_rnoise,
                                              computed["rate_var_rnoise"].values)
            elif kind == "rateints":
                assert model.data.shape == (2, 40, 48)
                np.testing.assert_array_equal(model.var_poisson,
                                              computed["rateints_var_poisson"].values)
            else:
                assert model.slope.shape == (2, 4, 40, 48) and model.crmag.shape == (2, 3, 40, 48)
                np.testing.assert_array_equal(model.pedestal, computed["pedestal"].values)
                np.testing.assert_array_equal(model.weights, computed["weights"].values)
    header = fits.getheader(paths[1])
    assert header["DATAMODL"] == "ImageModel" and header["S_REFPIX"] == "COMPLETE"
    assert fits.getheader(paths[1], "SCI")["BUNIT"] == "DN/s"
    assert any("dark_000_uncal.fits" in str(h) for h in header["HISTORY"])
    assert not list(tmp_path.glob(".*part*"))


def test_ramp_product__reads_back_with_open_exposure(result, tmp_path):
    campaign, refs = result
    ds = prep(campaign.paths[0], steps="dq_init,saturation,superbias,refpix,jump",
              chunk_rows=10, **refs)
    (path,) = products.write_products(ds, tmp_path)
    assert path.name == "dark_000_jump.fits"
    back = open_exposure(path, chunk_rows=7)
    assert back["ramp"].dtype == np.float32
    assert back.attrs["S_JUMP"] == "COMPLETE" and back.attrs["S_REFPIX"] == "COMPLETE"
    assert "S_RAMP" not in back.attrs
    computed = ds.compute()
    for name in ("ramp", "groupdq", "pixeldq"):
        np.testing.assert_array_equal(back[name].values, computed[name].values)
    assert (back["groupdq"].values & 4).any()  # jumps survived the round trip


def test_to_zarr__lazy_atomic_round_trip(result, tmp_path):
    campaign, refs = result
    ds = prep(campaign.paths[0], steps=CHAIN, chunk_rows=10, **refs)
    store = tmp_path / "x.zarr"
    delayed = products.to_zarr(ds, store)
    assert not store.exists()  # nothing final before the compute
    delayed.compute()
    assert store.is_dir() and not (tmp_path / "x.zarr.part").exists()
    back = products.open_prep_zarr(store)
    assert back["rate"].chunks is not None
    computed = ds.compute()
    for name in ("rate", "rateints", "ramp", "groupdq", "dq"):
        np.testing.assert_array_equal(back[name].values, computed[name].values)
    assert back.attrs["prep_steps"] == CHAIN.split(",")
    assert back.attrs["S_RAMP"] == "COMPLETE"


def test_write_products__failure_leaves_nothing(result, tmp_path):
    campaign, refs = result
    ds = prep(campaign.paths[0], steps="dq_init,saturation", **refs)

    def boom(block):
        raise RuntimeError("disk on fire")

    bad = ds["ramp"].data.map_blocks(boom, dtype=np.float32)
    ds = ds.assign(ramp=(ds["ramp"].dims, bad))
    with pytest.raises(RuntimeError, match="disk on fire"):
        products.write_products(ds, tmp_path, zarr=True)
    assert list(tmp_path.iterdir()) == []


def test_fits_writer__any_chunking(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 17, 23)).astype(np.float32)
    b = rng.integers(0, 2**32, size=(17, 23), dtype=np.uint32)
    c = rng.integers(0, 256, size=(3, 17, 23), dtype=np.uint8)
    exts = [("SCI", da.from_array(a, chunks=(2, 5, 7)), np.float32, {"BUNIT": "DN"}),
            ("DQ", da.from_array(b, chunks=(4, 23)), np.uint32, {}),
            ("GROUPDQ", c, np.uint8, {})]
    path = tmp_path / "t.fits"
    products.fits_writer(path, {"INSTRUME": "NIRCAM", "HISTORY": ["h1"]}, exts).compute()
    with fits.open(path) as hdul:
        np.testing.assert_array_equal(hdul["SCI"].data, a)
        np.testing.assert_array_equal(hdul["DQ"].data, b)
        assert hdul["DQ"].data.dtype == np.uint32
        np.testing.assert_array_equal(hdul["GROUPDQ"].data, c)
        assert hdul[0].header["INSTRUME"] == "NIRCAM"
        assert hdul["SCI"].header["BUNIT"] == "DN"
