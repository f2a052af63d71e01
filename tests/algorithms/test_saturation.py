"""The SATURATION reference file from ramps driven into saturation, against the truth."""

from __future__ import annotations

import dask
import numpy as np
import pytest
from astropy.io import fits

import daskref
from daskref import dq
from daskref.algorithms.saturation import saturation
from daskref.io.fits import InputError, open_stack
from daskref.kernels.saturation import plateaus, saturation_levels
from daskref.simulate import group_times, make_truth, simulate_ramps

#: A detector read 5 % low at its onset (3 % quadratic, 2 % cubic), 3 % well scatter.
WELL = {"full_well": 45000.0, "nonlin_quadratic": 0.03, "nonlin_cubic": 0.02}


@pytest.fixture(scope="module")
def ramps(tmp_path_factory):
    """3 lamp levels (last group at 0.6, 1.6 and 3 times the onset), 2 x 12 groups each,
    on a 64 x 64 corner subarray (reference border on two sides), with cosmic rays and
    always-saturated pixels."""
    d = tmp_path_factory.mktemp("saturation")
    truth = make_truth(subarray="SUB64P", substrt=(1, 1), subsize=(64, 64), seed=404,
                       tframe=10.0, cosmic_ray_rate=5e-5, saturated_fraction=0.005, **WELL)
    camp = simulate_ramps(d / "ramps", truth, (0.6, 1.6, 3.0), nints=2, ngroups=12)
    return truth, camp, d


def test_truth_recovery(ramps):
    truth, camp, _ = ramps
    ds = daskref.saturation(camp.paths).compute()
    normal = (truth.pixel_class == 0) & ~truth.reference
    true = truth.saturation_level()
    err = ds["saturation"].values / true - 1.0
    # the target: within 1 % on 99 % of the normal pixels
    assert np.mean(np.abs(err[normal]) < 0.01) >= 0.99
    # and the threshold lies below the plateau, by about the margin: the plateaus of
    # one pixel differ only by the integrations' reset offsets (kTC, 30 DN) and noise
    assert np.median(err[normal]) == pytest.approx(-0.002, abs=5 * 30 / np.median(true))
    # the two saturating levels saturate in both integrations
    assert np.all(ds["n_saturated"].values[normal] == 4)
    flags = ds["dq"].values
    assert np.all(flags[truth.reference] == dq.NO_SAT_CHECK)
    assert np.all(flags[truth.class_mask("saturated")] == dq.NO_SAT_CHECK)
    assert np.all(ds["saturation"].values[flags != 0] == 65535.0)
    assert np.mean(flags[normal] != 0) < 0.001


def test_the_threshold_flags_every_full_well_and_nothing_below(ramps):
    truth, camp, _ = ramps
    ds = daskref.saturation(camp.paths).compute()
    normal = (truth.pixel_class == 0) & ~truth.reference
    t = group_times(truth.attrs, 12)
    v = np.stack([fits.getdata(p) for p in camp.paths]).astype(np.float64)
    # expected linear signal of every (exposure, group, pixel); the photon noise of a
    # full well is 0.5 % and the reset offsets move the onset by under 0.3 %, so
    # beyond 1.03 x full_well every group is saturated and below 0.97 x none is
    linear = np.stack(camp.fluxes)[:, None] * t[None, :, None, None]
    hit = np.zeros((len(camp.paths), 2) + truth.shape, bool)
    for k, exp in enumerate(camp.exposures):
        cr = exp.cosmic_rays
        hit[k, cr["integration"], cr["y"], cr["x"]] = True
    clean = normal & ~hit  # (exposure, integration, y, x)
    above = v >= ds["saturation"].values  # (exposure, integration, group, y, x)
    full = (linear > 1.03 * truth.full_well)[:, None] & clean[:, :, None]
    rising = (linear < 0.97 * truth.full_well)[:, None] & clean[:, :, None]
    assert full.sum() > 10000 and rising.sum() > 10000
    assert np.all(above[full])
    assert not np.any(above[rising])


def test_chunked_equals_eager_and_nothing_is_computed(ramps):
    _, camp, _ = ramps
    calls = []
    with dask.config.set(scheduler=lambda *a, **k: calls.append(1)):
        lazy = daskref.saturation(open_stack(camp.paths, chunk_rows=7))
    assert not calls  # building the graph computes nothing
    assert len(lazy["saturation"].chunks[0]) == 10  # 64 rows in slabs of 7
    eager = saturation(open_stack(camp.paths).load())
    assert eager["saturation"].chunks is None
    chunked = lazy.compute()
    for name in ("saturation", "dq", "n_saturated", "spread"):
        np.testing.assert_array_equal(chunked[name].values, eager[name].values)


def test_kernel_on_one_pixel():
    t = np.arange(10.0)
    rising = np.minimum(1000.0 * t, 5000.0) + 100.0  # plateau 5000 DN above group 0
    flat = np.full(10, 300.0)
    slow = 100.0 + 0.5 * t  # near-equal last groups, but no knee
    v = np.stack([rising, rising + 3.0, flat, slow])[None]  # (pixel, integration, group)
    start, level, _ = plateaus(v[:, :, :])
    assert start.tolist() == [[5, 5, 10, 10]]
    np.testing.assert_allclose(level[0, :2], [5100.0, 5103.0])
    lev, n, spread = saturation_levels(v)
    assert n.tolist() == [2] and lev[0] == pytest.approx(5101.5) and spread[0] == 1.5
    lev, n, _ = saturation_levels(v[:, 2:])
    assert n.tolist() == [0] and np.isnan(lev[0])


def test_margin_and_fill_value(ramps):
    truth, camp, _ = ramps
    a = daskref.saturation(camp.paths, margin=0.0, fill_value=70000.0).compute()
    b = daskref.saturation(camp.paths, margin=0.01).compute()
    ok = a["dq"].values == 0
    np.testing.assert_allclose(b["saturation"].values[ok], a["saturation"].values[ok] * 0.99,
                               rtol=1e-6)
    assert np.all(a["saturation"].values[~ok] == 70000.0)
    with pytest.raises(ValueError, match="margin"):
        daskref.saturation(camp.paths, margin=0.7)


def test_file_validates_and_bad_inputs_are_one_line(ramps, tmp_path, capsys):
    from stdatamodels.jwst import datamodels

    from daskref.cli import main

    truth, camp, _ = ramps
    out = tmp_path / "sat.fits"
    assert main(["saturation", *map(str, camp.paths), "-o", str(out), "-q",
                 "--margin", "0.003"]) == 0
    with datamodels.SaturationModel(str(out)) as m:
        m.validate()
        assert m.meta.reftype == "SATURATION"
        assert m.data.dtype.kind == "f" and m.data.dtype.itemsize == 4
        assert "NO_SAT_CHECK" in list(m.dq_def["name"])
    header = fits.getheader(out)
    assert header["SATMARGN"] == 0.003
    assert any("lin_000_uncal.fits" in str(h) for h in header["HISTORY"])
    assert (tmp_path / "sat_saturation_diagnostics.fits").exists()
    # ramps that never saturate: one line, no file
    faint = simulate_ramps(tmp_path / "faint", truth, (0.4,), nints=1, ngroups=6)
    none = tmp_path / "none.fits"
    assert main(["saturation", *map(str, faint.paths), "-o", str(none), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no ramp" in err[0] and "saturat" in err[0]
    assert not none.exists()
    # too few groups: the file is named
    short = simulate_ramps(tmp_path / "short", truth, (3.0,), nints=1, ngroups=2)
    with pytest.raises(InputError, match=r"lin_000_uncal.fits: has 2 groups"):
        daskref.saturation(short.paths)
