"""The prep engine: full NIR chain on a simulated flat, truth, chunking, laziness, IO once."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

import daskref.io.fits as dfits
from daskref import dq
from daskref.io import products
from daskref.prep import (
    MissingReferenceError,
    PrepError,
    StepNotImplementedError,
    UnknownStepError,
    prep,
    prep_many,
)
from daskref.simulate import group_times, simulate_campaign
from daskref.testing import assert_lazy

CHAIN = "dq_init,saturation,superbias,refpix,linearity,dark_current,jump,rate"
NGROUPS = 8
REF_SIZE = 96  # references are a larger subarray at the same origin: they get cut


def write_references(outdir, truth, ngroups=NGROUPS, bad=((10, 20), (30, 40))):
    """CRDS-like reference files matching a simulated detector; returns {arg: path}."""
    ny, nx = truth.shape
    size = (REF_SIZE, REF_SIZE)
    hdr = {"TELESCOP": "JWST", "INSTRUME": truth.attrs["INSTRUME"],
           "DETECTOR": truth.attrs["DETECTOR"], "SUBARRAY": "GENERIC",
           "SUBSTRT1": truth.attrs["SUBSTRT1"], "SUBSTRT2": truth.attrs["SUBSTRT2"],
           "SUBSIZE1": REF_SIZE, "SUBSIZE2": REF_SIZE}

    def embed(a, fill=0.0, dtype=np.float32):
        out = np.full(a.shape[:-2] + size, fill, dtype=dtype)
        out[..., :ny, :nx] = a
        return out

    def write(name, reftype, exts, extra=None):
        primary = fits.PrimaryHDU()
        for k, v in (hdr | {"REFTYPE": reftype} | (extra or {})).items():
            primary.header[k] = v
        hdus = [primary] + [fits.ImageHDU(data, name=ext) for ext, data in exts]
        path = outdir / f"{name}.fits"
        fits.HDUList(hdus).writeto(path, overwrite=True)
        return path

    mask = np.zeros(truth.shape, np.uint32)
    for y, x in bad:
        mask[y, x] = dq.DO_NOT_USE | dq.DEAD
    t = group_times(truth.attrs, ngroups)
    dark = truth.dark_current[None] * t[:, None, None]
    coeffs = np.zeros((3,) + truth.shape)
    coeffs[1] = 1.0
    zero_dq = np.zeros(size, np.uint32)
    outdir.mkdir(parents=True, exist_ok=True)
    return {
        "mask": write("mask", "MASK", [("DQ", embed(mask, 0, np.uint32))]),
        "saturation": write("saturation", "SATURATION",
                            [("SCI", embed(np.full(truth.shape, 60000.0))), ("DQ", zero_dq)]),
        "superbias": write("superbias", "SUPERBIAS", [("SCI", embed(truth.bias)),
                                                      ("DQ", zero_dq)]),
        "linearity": write("linearity", "LINEARITY", [("COEFFS", embed(coeffs)),
                                                      ("DQ", zero_dq)]),
        "dark": write("dark", "DARK", [("SCI", embed(dark)), ("DQ", zero_dq)],
                      {"NFRAMES": 1, "GROUPGAP": 0, "NGROUPS": ngroups}),
        "readnoise": write("readnoise", "READNOISE", [("SCI", embed(truth.readnoise_cds))]),
        "gain": write("gain", "GAIN", [("SCI", embed(np.full(truth.shape, truth.gain)))]),
    }


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    """2 NIRCam 64x64 corner-subarray flats (+dark current), 2 ints x 8 groups, amplifier
    offsets and cosmic rays, with matching reference files."""
    d = tmp_path_factory.mktemp("prep_flat")
    campaign = simulate_campaign(d / "in", 2, nints=2, ngroups=NGROUPS, seed=11,
                                 subarray="SUB64", substrt=(1, 1), subsize=(64, 64),
                                 flux=3000.0, amp_offset_sigma=20.0, odd_even_offset=5.0,
                                 cosmic_ray_rate=0.05)
    return campaign, write_references(d / "refs", campaign.truth)


def test_prep__full_chain_recovers_the_flux(flat):
    campaign, refs = flat
    truth = campaign.truth
    result = prep(campaign.paths[0], steps=CHAIN, **refs).compute()
    assert result.attrs["prep_steps"] == CHAIN.split(",")
    for key in ("S_DQINIT", "S_SATURA", "S_SUPERB", "S_REFPIX", "S_LINEAR", "S_DARK",
                "S_JUMP", "S_RAMP"):
        assert result.attrs[key] == "COMPLETE"
    rate, err = result["rate"].values, result["rate_err"].values
    # Pixels with an injected cosmic ray are judged separately.
    crs = campaign.exposures[0].cosmic_rays
    hit = np.zeros(truth.shape, bool)
    hit[crs["y"], crs["x"]] = True
    good = ~truth.reference & ~hit & (result["dq"].values == 0)
    pull = ((rate - truth.flux) / err)[good]
    n = pull.size
    assert n > 3000
    # Pulls are N(0, 1) when the rate is unbiased and rate_err right.
    assert abs(pull.mean()) < 5 / np.sqrt(n)
    assert abs(pull.std() - 1.0) < 5 / np.sqrt(2 * n) + 0.03
    # The MASK's DO_NOT_USE pixels are carried to the rate DQ.
    assert result["dq"].values[10, 20] & dq.DO_NOT_USE
    assert result["dq"].values[30, 40] & dq.DEAD
    # Cosmic rays well above the noise are flagged and do not bias the rate.
    big = crs[crs["amplitude"] > 500]
    gdq = result["groupdq"].values
    flagged = gdq[big["integration"], big["group"], big["y"], big["x"]] & dq.JUMP_DET
    assert flagged.all()
    pulls_cr = ((rate - truth.flux) / err)[big["y"], big["x"]]
    assert np.abs(pulls_cr).max() < 5


def test_prep__refpix_removes_amplifier_offsets(flat):
    campaign, refs = flat
    truth = campaign.truth
    base = dict(steps="dq_init,saturation,superbias,linearity,dark_current,jump,rate", **refs)
    without = prep(campaign.paths[0], **base)
    with_refpix = prep(campaign.paths[0], **(base | {"steps": CHAIN}))
    sci = ~truth.reference
    rms = [float(np.sqrt(np.nanmean((r["rate"].values - truth.flux)[sci] ** 2)))
           for r in (without.compute(), with_refpix.compute())]
    assert rms[1] < 0.8 * rms[0], rms


def test_prep__chunked_equals_eager(flat):
    campaign, refs = flat
    path = campaign.paths[0]
    kw = dict(steps=CHAIN, save_opt=True, **refs)
    one = prep(path, chunk_rows=64, **kw).compute()
    slabs = prep(path, chunk_rows=7, **kw)
    assert slabs["ramp"].chunks[2] == (7,) * 9 + (1,)
    eager_in = dfits.open_exposure(path).load()
    eager = prep(eager_in, **kw).compute()
    for other in (slabs.compute(), eager):
        for name in ("ramp", "groupdq", "pixeldq", "rate", "rate_err", "dq", "rateints",
                     "slope", "crmag"):
            np.testing.assert_allclose(other[name].values, one[name].values, rtol=1e-6,
                                       atol=1e-4, err_msg=name)


def test_prep__is_lazy(flat):
    campaign, refs = flat
    with assert_lazy():
        results = prep_many(campaign.paths, steps=CHAIN, save_opt=True, **refs)
    assert all(r["rate"].chunks is not None for r in results)


def test_prep__reads_each_input_once(flat, tmp_path, monkeypatch):
    """All products of all inputs, and the shared references, in one pass."""
    campaign, refs = flat
    calls: Counter = Counter()
    nbytes: Counter = Counter()
    original = dfits.read_rows

    def counting(layout, path, y0, y1, out=None):
        out = original(layout, path, y0, y1, out=out)
        calls[str(path)] += 1
        nbytes[str(path)] += (y1 - y0) * layout.nbytes // layout.shape[-2]
        return out

    monkeypatch.setattr(dfits, "read_rows", counting)  # before any graph exists
    results = prep_many(campaign.paths, steps=CHAIN, save_opt=True, chunk_rows=16, **refs)
    paths = products.write_products(results, tmp_path, save_ramp=True, zarr=True)
    assert len(paths) == 2 * 5
    for p in campaign.paths:
        info = dfits.read_info(p)
        assert nbytes[str(p)] == info.sci.nbytes  # every byte once
        assert calls[str(p)] == 4  # 64 rows in slabs of 16
    ny = dfits.read_info(campaign.paths[0]).shape[2]
    for name, p in refs.items():
        with fits.open(p) as hdul:
            exts = [h for h in hdul[1:] if h.name in ("SCI", "DQ", "COEFFS")]
            # only the rows of the science window, once, for all inputs
            window = sum(h.size * ny // h.data.shape[-2] for h in exts)
        assert nbytes[str(p)] == window, name


def test_prep__partial_calibration_matches_full_chain(flat, tmp_path, caplog):
    campaign, refs = flat
    path = campaign.paths[1]
    full = prep(path, steps=CHAIN, **refs).compute()
    first = prep(path, steps="dq_init,saturation,superbias,refpix", **refs)
    (refpix_file,) = products.write_products(first, tmp_path)
    assert refpix_file.name == "dark_001_refpix.fits"
    rest = prep(refpix_file, steps=CHAIN, **refs)
    assert rest.attrs["prep_steps"] == ["linearity", "dark_current", "jump", "rate"]
    rest = rest.compute()
    for name in ("rate", "rate_err", "dq", "rateints", "groupdq", "pixeldq", "ramp"):
        np.testing.assert_array_equal(rest[name].values, full[name].values, err_msg=name)
    # 'jump+' on the refpix product: only jump and rate, the rest is used as it is.
    assert prep(refpix_file, steps="jump+", **refs).attrs["prep_steps"] == ["jump", "rate"]
    with caplog.at_level(logging.WARNING, logger="daskref.prep"):
        only = prep(refpix_file, steps="rate", readnoise=refs["readnoise"], gain=refs["gain"])
    assert only.attrs["prep_steps"] == ["rate"]
    assert "dq_init, saturation, superbias, refpix" in caplog.text


def test_prep__missing_reference_fails_before_reading(flat, monkeypatch):
    campaign, refs = flat

    def refuse(*args, **kwargs):
        raise AssertionError("data read")

    monkeypatch.setattr(dfits, "read_rows", refuse)
    partial = {k: v for k, v in refs.items() if k != "readnoise"}
    with pytest.raises(MissingReferenceError) as err:
        prep_many(campaign.paths, steps=CHAIN, **partial)
    assert str(err.value).endswith(
        "step 'jump' needs a READNOISE reference: give readnoise=... / --readnoise FILE")
    with pytest.raises(MissingReferenceError, match="step 'dq_init' needs a MASK reference"):
        prep(campaign.paths[0], steps="dq_init")
    with pytest.raises(UnknownStepError):
        prep(campaign.paths[0], steps="dq_init,bogus", **refs)
    with pytest.raises(StepNotImplementedError, match="step 'ipc' is not implemented"):
        prep(campaign.paths[0], steps="ipc,dark_current", **refs)
    with pytest.raises(PrepError, match="only gain, readnoise, saturation"):
        prep(campaign.paths[0], steps="superbias", superbias=12000.0)
    with pytest.raises(dfits.InputError, match="no such file"):
        prep(campaign.paths[0], steps="superbias", superbias="nope.fits")
    with pytest.raises(TypeError, match="unknown step parameter"):
        prep(campaign.paths[0], steps="refpix", side_smoothing=3)


def test_prep__scalar_references(flat):
    campaign, refs = flat
    truth = campaign.truth
    a = prep(campaign.paths[0], steps="saturation,jump,rate", saturation=60000.0,
             readnoise=float(truth.readnoise_cds.mean()), gain=truth.gain).compute()
    assert a.attrs["prep_steps"] == ["saturation", "jump", "rate"]
    assert np.isfinite(a["rate"].values).all()


def _miri_ds(ngroups, **attrs):
    ramp = np.arange(2 * ngroups * 4 * 4, dtype=np.uint16).reshape(2, ngroups, 4, 4)
    return xr.Dataset({"ramp": (("integration", "group", "y", "x"), ramp)},
                      attrs={"INSTRUME": "MIRI", "NFRAMES": 1, "GROUPGAP": 0, "TGROUP": 2.8}
                      | attrs)


def test_prep__firstframe_lastframe():
    out = prep(_miri_ds(5), steps="firstframe,lastframe")
    gdq = out["groupdq"].values
    assert out["ramp"].dtype == np.float32
    assert (gdq[:, 0] == dq.DO_NOT_USE).all() and (gdq[:, -1] == dq.DO_NOT_USE).all()
    assert (gdq[:, 1:-1] == 0).all()
    assert out.attrs["S_FRSTFR"] == out.attrs["S_LASTFR"] == "COMPLETE"
    short = prep(_miri_ds(3), steps="firstframe,lastframe")
    assert short.attrs["S_FRSTFR"] == "SKIPPED" and short.attrs["S_LASTFR"] == "COMPLETE"
    assert (short["groupdq"].values[:, 0] == 0).all()


def test_prep__group_scale():
    ds = _miri_ds(4)
    assert prep(ds, steps="group_scale").attrs["S_GRPSCL"] == "SKIPPED"
    scaled = prep(ds.assign_attrs(NFRAMES=5, FRMDIVSR=8), steps="group_scale")
    assert scaled.attrs["S_GRPSCL"] == "COMPLETE"
    np.testing.assert_allclose(scaled["ramp"].values, ds["ramp"].values * 8 / 5, rtol=1e-6)
    with pytest.raises(StepNotImplementedError, match="FRMDIVSR"):
        prep(ds.assign_attrs(NFRAMES=5), steps="group_scale")
