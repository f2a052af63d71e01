"""The GAIN reference file by photon transfer, against the truth."""

from __future__ import annotations

import dask
import numpy as np
import pytest
from astropy.io import fits

import daskref
from daskref.algorithms.gain import gain
from daskref.geometry import amplifier_index
from daskref.io.fits import InputError, open_stack
from daskref.kernels.gain import box_stats, fit_ptc
from daskref.simulate import make_truth, simulate_ptc

#: A detector read 5 % low at its onset (3 % quadratic, 2 % cubic).
WELL = {"full_well": 45000.0, "nonlin_quadratic": 0.03, "nonlin_cubic": 0.02}
AMP_GAINS = (1.8, 2.0, 2.2, 1.9)
NY = 128
BOX = 32


@pytest.fixture(scope="module")
def ptc(tmp_path_factory):
    """A full-width 2048 x 128 strip (4 amplifiers, reference rows at the bottom and
    columns at the left), 2 flat pairs at each of 5 levels (10 % to 70 % of the well in
    the last of 5 groups) and a dark pair, with cosmic rays and 2 % pixel gain scatter."""
    d = tmp_path_factory.mktemp("gain")
    truth = make_truth(subarray="SUBGRISM64", substrt=(1, 1), subsize=(2048, NY), seed=11,
                       tframe=10.0, cosmic_ray_rate=5e-5, amp_gains=AMP_GAINS,
                       gain_scatter=0.02, **WELL)
    camp = simulate_ptc(d / "ptc", truth, ngroups=5, n_pairs=2)
    return truth, camp


def true_amp_gains(truth):
    amps = amplifier_index(truth.attrs, truth.shape)
    sci = ~truth.reference
    return np.array([truth.gain_map[:, amps == a][sci[:, amps == a]].mean() for a in range(4)])


def test_truth_recovery(ptc):
    truth, camp = ptc
    ds = daskref.gain(camp.paths).compute()
    true = true_amp_gains(truth)
    # the target: each amplifier within 1.5 %
    np.testing.assert_allclose(ds["amp_gain"].values, true, rtol=0.015)
    # the fit absorbs the non-linearity: a straight PTC through the same points is
    # biased by several per cent (var = f'^2 s / g against m = f(s))
    for a in range(4):
        m, v = ds["amp_mean"].values[a].ravel(), ds["amp_var"].values[a].ravel()
        straight, _ = fit_ptc(m, v, degree=1, intercept=False)
        assert 1 / straight[1] / true[a] - 1 > 0.03
    # every pixel has its box's gain; boxes scatter about their true mean gain by
    # the statistical error of ~1000 pixels x 40 points
    gmap = ds["gain"].values
    assert gmap.shape == truth.shape and np.all(np.isfinite(gmap))
    nby = NY // BOX
    true_box = truth.gain_map.reshape(nby, BOX, 2048 // BOX, BOX).mean(axis=(1, 3))
    err = ds["box_gain"].values / true_box - 1
    assert abs(np.median(err)) < 0.015
    assert np.std(err) < 0.05


def test_chunked_equals_eager_and_nothing_is_computed(ptc):
    _, camp = ptc
    flats = [p for p in camp.paths if "flat" in p.name]
    darks = [p for p in camp.paths if "dark" in p.name]
    calls = []
    with dask.config.set(scheduler=lambda *a, **k: calls.append(1)):
        lazy = gain(open_stack(flats, chunk_rows=BOX), open_stack(darks, chunk_rows=BOX))
    assert not calls  # building the graph computes nothing
    assert len(lazy["gain"].chunks[0]) == NY // BOX
    chunked = lazy.compute()
    eager = gain(open_stack(flats).load(), open_stack(darks).load())
    np.testing.assert_allclose(chunked["gain"].values, eager["gain"].values, rtol=1e-6)
    np.testing.assert_allclose(chunked["amp_gain"].values, eager["amp_gain"].values,
                               rtol=1e-9)


def test_box_statistics_clip_cosmic_rays():
    """A pair of pure Poisson images: the clipped variance is unbiased, cosmic rays or not."""
    rng = np.random.default_rng(5)
    mean = 4000.0
    a = rng.poisson(mean, (4, 64, 64)).astype(float)
    b = rng.poisson(mean, (4, 64, 64)).astype(float)
    valid = np.ones((64, 64), bool)
    m0, v0 = box_stats(a, b, valid, box_size=32)
    hit = rng.random(a.shape) < 0.01
    a[hit] += rng.uniform(500, 5000, hit.sum())
    m1, v1 = box_stats(a, b, valid, box_size=32)
    # 16 boxes of 1024 pixels: the variance of each to sqrt(2 / 1024) = 4.4 %
    np.testing.assert_allclose(v0.mean(), mean, rtol=3 * 0.044 / 4)
    np.testing.assert_allclose(v1.mean(), mean, rtol=3 * 0.044 / 4 + 0.01)
    np.testing.assert_allclose(m1.mean(), mean, rtol=0.01)


def test_file_validates_and_bad_inputs_are_one_line(ptc, tmp_path, capsys):
    from stdatamodels.jwst import datamodels

    from daskref.cli import main

    truth, camp = ptc
    out = tmp_path / "gain.fits"
    assert main(["gain", *map(str, camp.paths), "-o", str(out), "-q", "--box-size", "64"]) == 0
    with datamodels.GainModel(str(out)) as m:
        m.validate()
        assert m.meta.reftype == "GAIN" and m.data.shape == truth.shape
    header = fits.getheader(out)
    assert header["GAINBOX"] == 64
    history = " ".join(str(h) for h in header["HISTORY"])
    assert "Amplifier 4: gain" in history and "ptc_dark_000_uncal.fits" in history
    np.testing.assert_allclose([header[f"GAINAMP{a}"] for a in range(1, 5)],
                               true_amp_gains(truth), rtol=0.015)
    table = fits.getdata(tmp_path / "gain_ptc.fits", "PTC")
    assert len(table) == 4 * 10 * 4 and set(table["amplifier"]) == {1, 2, 3, 4}
    # unpaired flats: the file without a partner is named
    flats = [p for p in camp.paths if "flat" in p.name]
    with pytest.raises(InputError, match=r"ptc_flat_002_uncal.fits: has no partner"):
        daskref.gain(flats[:3])
    # one level only: one line, no file
    none = tmp_path / "none.fits"
    assert main(["gain", *map(str, flats[:2]), "-o", str(none), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "two or more levels" in err[0]
    assert not none.exists()
