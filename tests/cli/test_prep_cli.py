"""``daskref prep``: products of every input in one run, and one-line errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from astropy.io import fits

from daskref.cli import main
from daskref.io.products import open_prep_zarr
from daskref.simulate import group_times, simulate_campaign

datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")

CHAIN = "dq_init,saturation,superbias,refpix,linearity,dark_current,jump,ramp_fit"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """2 small simulated flats and MASK/SUPERBIAS/LINEARITY/DARK files."""
    d = tmp_path_factory.mktemp("prep_cli")
    campaign = simulate_campaign(d / "in", 2, nints=2, ngroups=5, seed=7, subarray="SUB64",
                                 substrt=(1, 1), subsize=(40, 32), flux=800.0)
    truth = campaign.truth
    t = group_times(truth.attrs, 5)
    coeffs = np.zeros((2,) + truth.shape, np.float32)
    coeffs[1] = 1.0
    refs = {}
    for name, exts, extra in [
        ("mask", [("DQ", np.zeros(truth.shape, np.uint32))], {}),
        ("superbias", [("SCI", truth.bias.astype(np.float32))], {}),
        ("linearity", [("COEFFS", coeffs)], {}),
        ("dark", [("SCI", (truth.dark_current[None] * t[:, None, None]).astype(np.float32))],
         {"NFRAMES": 1, "GROUPGAP": 0}),
    ]:
        primary = fits.PrimaryHDU()
        primary.header.update({"INSTRUME": "NIRCAM", "REFTYPE": name.upper()} | extra)
        path = d / f"{name}.fits"
        fits.HDUList([primary] + [fits.ImageHDU(a, name=e) for e, a in exts]).writeto(path)
        refs[name] = str(path)
    return campaign, refs


def _ref_args(refs, **numbers):
    args = []
    for name, path in refs.items():
        args += [f"--{name}", path]
    for name, value in numbers.items():
        args += [f"--{name}", str(value)]
    return args


def test_prep_command__rate_products(setup, tmp_path, capsys):
    campaign, refs = setup
    files = [str(p) for p in campaign.paths]
    rc = main(["prep", *files, "--steps", CHAIN, "-o", str(tmp_path),
               *_ref_args(refs, saturation=60000, readnoise=14.0, gain=2.0),
               "--rejection-threshold", "5", "--no-odd-even-columns", "--side_gain", "1.0",
               "--no-flag-4-neighbors", "--weighting", "optimal", "--save-opt", "--zarr",
               "--workers", "2"])
    assert rc == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f"dark_00{k}_{s}" for k in (0, 1)
                             for s in ("rate.fits", "rateints.fits", "fitopt.fits", "rate.zarr"))
    out = capsys.readouterr().out
    assert out.count("wrote ") == 8
    for k in (0, 1):
        with datamodels.open(tmp_path / f"dark_00{k}_rate.fits") as m:
            assert isinstance(m, datamodels.ImageModel)
            assert m.meta.cal_step.refpix == "COMPLETE" and m.meta.cal_step.ramp_fit == "COMPLETE"
            good = ~campaign.truth.reference & (m.dq == 0)
            assert abs(np.median(m.data[good] / campaign.truth.flux[good]) - 1) < 0.02
        with datamodels.open(tmp_path / f"dark_00{k}_rateints.fits") as m:
            assert isinstance(m, datamodels.CubeModel)
        with datamodels.open(tmp_path / f"dark_00{k}_fitopt.fits") as m:
            assert isinstance(m, datamodels.RampFitOutputModel)
    z = open_prep_zarr(tmp_path / "dark_000_rate.zarr")
    np.testing.assert_array_equal(z["rate"].values,
                                  fits.getdata(tmp_path / "dark_000_rate.fits", "SCI"))


def test_prep_command__ramp_product_and_chained_run(setup, tmp_path):
    campaign, refs = setup
    f = str(campaign.paths[0])
    rc = main(["prep", f, "--steps", "dq_init,saturation,superbias,refpix",
               "-o", str(tmp_path / "ssb"), "--mask", refs["mask"], "--saturation", "60000",
               "--superbias", refs["superbias"], "-q"])
    assert rc == 0
    refpix = tmp_path / "ssb" / "dark_000_refpix.fits"
    with datamodels.open(refpix) as m:
        assert isinstance(m, datamodels.RampModel) and m.meta.cal_step.refpix == "COMPLETE"
    rc = main(["prep", str(refpix), "--steps", "jump+", "-o", str(tmp_path / "ssb"),
               "--readnoise", "14", "--gain", "2", "-q"])
    assert rc == 0
    assert (tmp_path / "ssb" / "dark_000_rate.fits").exists()


@pytest.mark.parametrize("argv, message", [
    (["--steps", "dq_init,jump", "--gain", "2"],
     "step 'dq_init' needs a MASK reference: give mask=... / --mask FILE"),
    (["--steps", "jump", "--gain", "2"],
     "step 'jump' needs a READNOISE reference: give readnoise=... / --readnoise FILE"),
    (["--steps", "dq_init,bogus"], "unknown calibration step 'bogus'"),
    (["--steps", "ipc,refpix"], "step 'ipc' is not implemented by daskref"),
    (["--steps", "superbias", "--superbias", "12000"], "must be a file or an array"),
    (["--steps", "superbias", "--superbias", "nope.fits"], "--superbias nope.fits: no such file"),
    (["--steps", "jump", "--backend", "jwst"], "needs the 'jwst' package"),
])
def test_prep_command__errors_are_one_line_exit_2(setup, tmp_path, capsys, monkeypatch,
                                                  argv, message):
    campaign, _ = setup
    if "jwst" in argv:  # as if jwst were not installed, wherever it is
        monkeypatch.setitem(sys.modules, "jwst", None)
        monkeypatch.setitem(sys.modules, "jwst.pipeline", None)
    out = tmp_path / "out"
    rc = main(["prep", *map(str, campaign.paths), "-o", str(out), *argv])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("daskref prep: error:") and message in err[0]
    assert not out.exists() or not any(out.iterdir())


def test_prep_command__spill_dir(setup, tmp_path, monkeypatch):
    """A single-output subarray in several slabs: refpix spills there, same products."""
    import daskref.io.spill as spill

    campaign, refs = setup
    saved = []
    original = spill._save
    monkeypatch.setattr(spill, "_save", lambda block, path: saved.append(path)
                        or original(block, path))
    file = str(campaign.paths[0])
    common = ["prep", file, "--steps", CHAIN, *_ref_args(refs, saturation=60000,
                                                          readnoise=14.0, gain=2.0), "-q"]
    assert main([*common, "-o", str(tmp_path / "one")]) == 0  # one slab: nothing to spill
    assert not saved
    spill_dir = tmp_path / "spill"
    assert main([*common, "-o", str(tmp_path / "slabs"), "--chunk-mb", "0.004",
                 "--spill-dir", str(spill_dir)]) == 0
    assert saved and all(p.startswith(str(spill_dir)) for p in saved)
    assert not any(spill_dir.rglob("*.npy"))  # read back and removed
    for suffix in ("rate", "rateints"):
        name = f"{campaign.paths[0].name.replace('_uncal.fits', '')}_{suffix}.fits"
        a = fits.getdata(tmp_path / "one" / name, "SCI")
        b = fits.getdata(tmp_path / "slabs" / name, "SCI")
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)
