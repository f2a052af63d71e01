"""Inputs of a campaign: dark or flat, observation time, required keys, the name filter."""

from __future__ import annotations

import pytest
from astropy.io import fits
from astropy.time import Time

from daskref.io.fits import InputError
from daskref.orchestrate.inputs import read_inputs
from daskref.simulate import make_truth, simulate_exposure

CONFIG = {"dark_pattern": "Bias|Dark|BIAS|DARK|ZERO", "flat_pattern": "GAIN|LIN|FLAT",
          "basenamepattern": "", "mjdobs_fitskey": "", "dateobs_fitskey": "DATE-OBS",
          "timeobs_fitskey": "TIME-OBS", "requiredfitskeys": ["INSTRUME", "DETECTOR"]}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    truth = make_truth(subarray="SUB64P", subsize=(64, 64), seed=1)
    out = {}
    out["dark"] = simulate_exposure(d / "a_uncal.fits", truth, nints=1, ngroups=3,
                                    start="2026-03-01T10:00:00").path
    out["flat"] = simulate_exposure(d / "b_uncal.fits", truth, nints=1, ngroups=3,
                                    start="2026-03-01T11:00:00", exp_type="NRC_FLAT").path
    # no JWST dark/flat EXP_TYPE: the name decides
    for name, start in (("x_DARK_uncal.fits", "2026-03-02T00:00:00"),
                        ("x_LIN_uncal.fits", "2026-03-02T01:00:00"),
                        ("x_science_uncal.fits", "2026-03-02T02:00:00")):
        p = simulate_exposure(d / name, truth, nints=1, ngroups=3, start=start,
                              exp_type="NRC_IMAGE").path
        out[name] = p
    return out


def test_kind_from_exp_type_then_the_name(files):
    got, _, _ = read_inputs([files["dark"], files["flat"], files["x_DARK_uncal.fits"],
                             files["x_LIN_uncal.fits"]], CONFIG)
    assert [f.kind for f in got] == ["dark", "flat", "dark", "flat"]
    with pytest.raises(InputError, match="x_science_uncal.fits: is neither a dark nor a flat"):
        read_inputs([files["x_science_uncal.fits"]], CONFIG)


def test_time_from_mjd_key_date_time_or_expstart(files, tmp_path):
    got, _, _ = read_inputs([files["dark"]], CONFIG)
    assert got[0].mjd == pytest.approx(Time("2026-03-01T10:00:00").mjd, abs=1e-6)
    p = tmp_path / "m_uncal.fits"
    p.write_bytes(files["dark"].read_bytes())
    with fits.open(p, mode="update") as h:
        h[0].header["MJD-AVG"] = 61000.5
    got, _, _ = read_inputs([p], {**CONFIG, "mjdobs_fitskey": "MJD-AVG"})
    assert got[0].mjd == 61000.5
    with fits.open(p, mode="update") as h:
        del h[0].header["DATE-OBS"]
    got, _, _ = read_inputs([p], CONFIG)  # EXPSTART
    assert got[0].mjd == pytest.approx(fits.getval(p, "EXPSTART"))


def test_required_keys_and_the_name_filter(files):
    with pytest.raises(InputError, match="a_uncal.fits: has no FILTERX keyword"):
        read_inputs([files["dark"]], {**CONFIG, "requiredfitskeys": ["FILTERX"]})
    got, _, notes = read_inputs([files["dark"], files["flat"]],
                                {**CONFIG, "basenamepattern": r"a_uncal\.fits$"})
    assert [f.path for f in got] == [str(files["dark"])]
    assert "b_uncal.fits: left out" in notes[0]
    assert got[0].readout == ("SUB64P", "RAPID", 3, 1, 0)
