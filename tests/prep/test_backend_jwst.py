"""The jwst backend: the official Detector1Pipeline, offline, against daskref's own prep.

The configuration tests run everywhere; the pipeline tests need ``jwst`` (not a
dependency of daskref) and are skipped without it.
"""

import os

import dask
import numpy as np
import pytest
from astropy.io import fits

from daskref import dq
from daskref.io import products
from daskref.prep import MissingReferenceError, PrepError, prep
from daskref.prep import backend_jwst as bj
from daskref.simulate import simulate_campaign, write_references

STEPS = "dq_init,saturation,superbias,refpix,linearity,dark_current,jump,rate"
NGROUPS = 12


# --------------------------------------------------------------------------- configuration


def test_pipeline_config__neutralises_references_daskref_does_not_use():
    cfg = bj.pipeline_config(["saturation", "refpix"], refs={"saturation": "s.fits"})
    sat, ref = cfg["steps"]["saturation"], cfg["steps"]["refpix"]
    assert sat["override_saturation"] == "s.fits" and sat["override_superbias"] == "N/A"
    assert ref["override_refpix"] == "N/A" and ref["override_sirskernel"] == "N/A"
    assert ref["refpix_algorithm"] == "median"
    cfg = bj.pipeline_config(["saturation", "superbias"], refs={"superbias": "b.fits"})
    assert cfg["steps"]["saturation"]["override_superbias"] == "b.fits"
    assert "override_refpix" not in cfg["steps"]["superbias"]


def test_pipeline_config__jwst_only_and_daskref_only_parameters():
    cfg = bj.pipeline_config(["jump", "rate"], params={"maximum_cores": 2, "weighting": "optimal"})
    assert cfg["steps"]["jump"]["maximum_cores"] == "2"
    assert cfg["steps"]["ramp_fit"]["maximum_cores"] == "2"
    assert "weighting" not in cfg["steps"]["ramp_fit"]  # not a jwst ramp_fit parameter
    with pytest.raises(PrepError, match="weighting='unweighted' has no equivalent"):
        bj.pipeline_config(["rate"], params={"weighting": "unweighted"})
    with pytest.raises(PrepError, match="dark_nframes=2 has no equivalent"):
        bj.pipeline_config(["dark_current"], params={"dark_nframes": 2})


def test_offline_crds__sets_and_restores_the_environment(monkeypatch):
    monkeypatch.delenv("CRDS_PATH", raising=False)
    monkeypatch.setenv("CRDS_CONTEXT", "jwst_0001.pmap")
    with bj.offline_crds(), bj.offline_crds():
        assert os.environ["CRDS_CONTEXT"] == bj.OFFLINE_CONTEXT
        config = os.path.join(os.environ["CRDS_PATH"], "config", "jwst", "server_config")
        assert os.path.isfile(config)
    assert "CRDS_PATH" not in os.environ
    assert os.environ["CRDS_CONTEXT"] == "jwst_0001.pmap"


# --------------------------------------------------------------------------- with jwst


@pytest.fixture(scope="module")
def jwst():
    return pytest.importorskip("jwst")


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    """A NIRCam SUB160 flat (50 DN/s, full-frame 10.7 s frame timing), 2 x 12 groups,
    with cosmic rays (~4 % of the pixels hit per integration), and its references."""
    d = tmp_path_factory.mktemp("jwst_backend")
    camp = simulate_campaign(d / "in", 1, nints=2, ngroups=NGROUPS, seed=7, subarray="SUB160",
                             substrt=(1, 1), subsize=(160, 160), tframe=10.73677, flux=50.0,
                             amp_offset_sigma=5.0, cosmic_ray_rate=3e-4)
    refs = write_references(camp.truth, d / "refs", NGROUPS)
    return camp, refs, d


@pytest.fixture(scope="module")
def both(jwst, flat):
    """daskref's and jwst's ``_rate``/``_rateints`` of the same exposure."""
    camp, refs, d = flat
    ds = prep(camp.paths[0], steps=STEPS, **refs)
    products.write_products([ds], d / "daskref")
    env_before = {k: os.environ.get(k) for k in ("CRDS_PATH", "CRDS_CONTEXT")}
    tasks = bj.prep_jwst(camp.paths, steps=STEPS, outdir=d / "jwst",
                         refs={k: str(v) for k, v in refs.items()})
    assert dask.compute(*tasks) == (str(camp.paths[0]),)
    assert {k: os.environ.get(k) for k in env_before} == env_before
    return d / "daskref", d / "jwst"


def _read(directory, suffix):
    with fits.open(directory / f"dark_000_{suffix}.fits") as h:
        return {e: h[e].data.copy() for e in ("SCI", "ERR", "DQ")}


def test_prep_jwst__offline_products_open_with_stdatamodels(both, flat):
    from stdatamodels.jwst import datamodels as dm

    camp, refs, _ = flat
    _, jw = both
    with dm.ImageModel(str(jw / "dark_000_rate.fits")) as m:
        m.validate()
        assert m.data.shape == (160, 160)
        for step in ("dq_init", "saturation", "superbias", "refpix", "linearity", "dark_sub",
                     "jump", "ramp_fit"):
            assert getattr(m.meta.cal_step, step) == "COMPLETE", step
        assert m.meta.ref_file.crds.context_used == bj.OFFLINE_CONTEXT
        assert m.meta.ref_file.dark.name == os.path.abspath(refs["dark"])
    with dm.CubeModel(str(jw / "dark_000_rateints.fits")) as m:
        m.validate()
        assert m.data.shape == (2, 160, 160)


def test_prep_jwst__rate_agrees_with_daskref(both, flat):
    camp, _, _ = flat
    dr, jw = both
    a, b = _read(dr, "rate"), _read(jw, "rate")
    ai, bi = _read(dr, "rateints"), _read(jw, "rateints")
    science = ~camp.truth.reference
    assert np.isfinite(a["SCI"][science]).all() and np.isfinite(b["SCI"][science]).all()
    diff = (b["SCI"] - a["SCI"])[science]
    err = np.hypot(a["ERR"], b["ERR"])[science]

    # Pixels neither flags in any integration (no jump, no saturation): the same
    # groups with the same weights, so the same fit; any real difference in the
    # algorithms would show at the level of the errors: require 1 % of them.
    flagged = (((ai["DQ"] | bi["DQ"]) & (dq.JUMP_DET | dq.SATURATED | dq.DO_NOT_USE)) != 0)
    clean = ~flagged.any(axis=0)[science]
    assert clean.sum() > 0.5 * clean.size
    assert np.all(np.abs(diff[clean]) <= 0.01 * err[clean])

    # Every pixel: both are estimates from the same samples. They differ by how the
    # segments around a jump are weighted (jwst weights them by 1 / read-noise
    # variance, daskref by 1 / total variance) and by borderline jumps flagged by
    # one method only, each a fraction of the error: require < 5 combined sigma.
    assert np.all(np.abs(diff) < 5 * err)
    # ... and no systematic offset: the mean difference within 5 standard errors.
    assert abs(diff.mean()) < 5 * err.mean() / np.sqrt(diff.size)


def test_prep_jwst__both_flag_every_large_cosmic_ray(both, flat):
    """A hit of 10 sigma of a group difference exceeds both 4-sigma thresholds."""
    camp, refs, _ = flat
    dr, jw = both
    jumps = {name: (_read(d, "rateints")["DQ"] & dq.JUMP_DET) != 0
             for name, d in (("daskref", dr), ("jwst", jw))}
    truth = camp.truth
    crs = camp.exposures[0].cosmic_rays
    tgroup = float(truth.attrs["TGROUP"])
    # noise of a group difference, DN: Poisson of rate x tgroup (in e-) and CDS noise
    sigma = np.sqrt(truth.flux * tgroup / truth.gain + truth.readnoise_cds**2)
    big = crs["amplitude"] > 10 * sigma[crs["y"], crs["x"]]
    assert big.sum() > 100
    idx = (crs["integration"][big], crs["y"][big], crs["x"][big])
    for name, flags in jumps.items():
        assert flags[idx].all(), name


def test_prep_jwst__missing_reference_without_crds(jwst, flat, monkeypatch):
    camp, refs, d = flat
    monkeypatch.delenv("CRDS_PATH", raising=False)
    monkeypatch.delenv("CRDS_SERVER_URL", raising=False)
    partial = {k: str(v) for k, v in refs.items() if k != "dark"}
    with pytest.raises(MissingReferenceError, match="needs a DARK reference.*configure CRDS"):
        bj.prep_jwst(camp.paths, steps=STEPS, outdir=d / "none", refs=partial)
    # with CRDS configured the pipeline would fetch it: the tasks are built
    monkeypatch.setenv("CRDS_PATH", str(d / "crds_cache"))
    assert len(bj.prep_jwst(camp.paths, steps=STEPS, outdir=d / "none", refs=partial)) == 1


def test_prep_jwst__unknown_parameter(jwst, flat):
    camp, refs, d = flat
    with pytest.raises(TypeError, match="unknown step parameter"):
        bj.prep_jwst(camp.paths, steps=STEPS, outdir=d / "none", refs={}, bogus=1)
