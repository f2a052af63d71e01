"""The LINEARITY reference file from ramps at several fluxes, against the truth."""

from __future__ import annotations

import dask
import numpy as np
import pytest

import daskref
from daskref import dq
from daskref.algorithms.linearity import linearity
from daskref.io.fits import InputError, open_stack
from daskref.kernels.linearity import evaluate, fit_linearity
from daskref.simulate import make_truth, simulate_campaign, simulate_ramps, write_references

#: A detector read 5 % low at its onset (3 % quadratic, 2 % cubic), 3 % well scatter.
WELL = {"full_well": 45000.0, "nonlin_quadratic": 0.03, "nonlin_cubic": 0.02}
#: The issue's range: 2 % to 95 % of each pixel's saturation onset (linear signal).
FRACTIONS = np.linspace(0.02, 0.95, 12)
LEVELS = (0.6, 1.2, 2.0)


@pytest.fixture(scope="module")
def ramps(tmp_path_factory):
    """3 lamp levels (last group at 0.6, 1.2 and 2 times the onset), 2 x 20 groups each,
    on a 64 x 64 corner subarray with cosmic rays and always-saturated pixels; a second
    realisation of the same campaign (other noise); the true SUPERBIAS."""
    d = tmp_path_factory.mktemp("linearity")
    truth = make_truth(subarray="SUB64P", substrt=(1, 1), subsize=(64, 64), seed=505,
                       tframe=10.0, cosmic_ray_rate=5e-5, saturated_fraction=0.005, **WELL)
    camp = simulate_ramps(d / "a", truth, LEVELS, nints=2, ngroups=20)
    again = simulate_ramps(d / "b", truth, LEVELS, nints=2, ngroups=20, seed=3000)
    refs = write_references(truth, d / "refs", 20, kinds=["superbias"])
    return truth, camp, again, refs["superbias"]


def relative_error(truth, coeffs):
    """(fraction, y, x) error of the corrected signal at FRACTIONS of each pixel's onset."""
    linear = truth.full_well[None] * FRACTIONS[:, None, None]
    measured = truth.measured_signal(linear)
    corrected = evaluate(np.moveaxis(coeffs, 0, -1)[None], measured)
    return corrected / linear - 1.0


def normal_pixels(truth):
    return (truth.pixel_class == 0) & ~truth.reference


@pytest.mark.parametrize("zero", ["ramps", "superbias"])
def test_truth_recovery(ramps, zero):
    truth, camp, _, superbias = ramps
    kw = {"superbias": superbias} if zero == "superbias" else {}
    ds = daskref.linearity(camp.paths, **kw).compute()
    err = relative_error(truth, ds["coeffs"].values)
    normal = normal_pixels(truth)
    # the target: no systematic error beyond 0.3 % (median over pixels) from
    # 2 % to 95 % of the onset, where the uncorrected signal is up to 4.7 % low
    assert np.all(np.abs(np.median(err[:, normal], axis=1)) < 0.003)
    uncorrected = truth.measured_signal(truth.full_well) / truth.full_well - 1
    assert np.median(uncorrected[normal]) < -0.04
    # every normal pixel is fitted, and its onset found (the measured signal there)
    assert np.all(ds["dq"].values[normal] & dq.NO_LIN_CORR == 0)
    onset = truth.measured_signal(truth.full_well)
    assert np.median(np.abs(ds["onset"].values[normal] / onset[normal] - 1)) < 0.002


def test_each_pixel_is_within_its_statistical_error(ramps):
    """Two realisations of the campaign differ by sqrt(2) times the statistical error;
    the error against the truth must be that error, with no per-pixel bias."""
    truth, camp, again, _ = ramps
    a = daskref.linearity(camp.paths).compute()
    b = daskref.linearity(again.paths).compute()
    normal = normal_pixels(truth)
    # pixels hit by no cosmic ray in either realisation
    for c in (camp, again):
        for exp in c.exposures:
            normal[exp.cosmic_rays["y"], exp.cosmic_rays["x"]] = False
    err_a = relative_error(truth, a["coeffs"].values)[:, normal]
    err_b = relative_error(truth, b["coeffs"].values)[:, normal]
    statistical = np.std(err_a - err_b, axis=1) / np.sqrt(2)
    total = np.sqrt(np.mean(err_a**2, axis=1))
    # a per-pixel systematic error would add to the total in quadrature; with ~3000
    # pixels the two estimates of the same spread agree to about 5 % (their own
    # sampling error, 1 / sqrt(2 n) each); allow three times that
    np.testing.assert_allclose(total, statistical, rtol=0.15)


def test_each_pixel_against_its_monte_carlo_error(tmp_path):
    """Per pixel: the mean error of 10 noise realisations of one detector against the
    scatter of those realisations (the statistical error the ramps allow), at 10 %,
    50 % and 95 % of the onset. Without a per-pixel systematic error, mean over
    (sample std / sqrt(10)) follows Student's t with 9 degrees of freedom in every
    pixel; a pixel biased by a few of its errors stands out."""
    from scipy.stats import binom
    from scipy.stats import t as student

    truth = make_truth(subarray="SUB64P", substrt=(1, 1), subsize=(32, 32), seed=505,
                       tframe=10.0, **WELL)
    k = 10
    fractions = np.array([0.1, 0.5, 0.95])
    linear = truth.full_well[None] * fractions[:, None, None]
    measured = truth.measured_signal(linear)
    errors = []
    for r in range(k):
        camp = simulate_ramps(tmp_path / str(r), truth, LEVELS, nints=2, ngroups=20,
                              seed=3000 + 100 * r)
        coeffs = daskref.linearity(camp.paths).compute()["coeffs"].values
        errors.append(evaluate(np.moveaxis(coeffs, 0, -1)[None], measured) / linear - 1)
    e = np.array(errors)[:, :, normal_pixels(truth)]  # (realisation, fraction, pixel)
    n = e.shape[-1]
    sigma = e.std(axis=0, ddof=1)
    t = e.mean(axis=0) / (sigma / np.sqrt(k))
    for f in range(fractions.size):
        # the statistical error itself: 0.5 % at 10 % of the onset to 1.5 % at 95 %
        assert 0.002 < np.median(sigma[f]) < 0.03
        for tail in (0.05, 1e-3):
            beyond = np.sum(np.abs(t[f]) > student.isf(tail / 2, k - 1))
            # as many pixels beyond the tail as chance allows (binomial, 1e-4 each side)
            assert binom.ppf(1e-4, n, tail) <= beyond <= binom.isf(1e-4, n, tail)
        # and the detector as a whole within the 0.3 %
        assert abs(np.median(e[:, f])) < 0.003


def test_flags_and_identity_coefficients(ramps):
    truth, camp, _, _ = ramps
    ds = daskref.linearity(camp.paths).compute()
    flags = ds["dq"].values
    coeffs = ds["coeffs"].values
    assert coeffs.shape == (6, 64, 64) and coeffs.dtype == np.float32
    unfit = truth.reference | truth.class_mask("saturated")
    assert np.all(flags[unfit] & dq.NO_LIN_CORR)
    identity = np.zeros(6, np.float32)
    identity[1] = 1
    assert np.all(coeffs[:, unfit] == identity[:, None])
    # the convention: constant 0 and linear term 1 everywhere
    assert np.all(coeffs[0] == 0) and np.all(coeffs[1] == 1)
    normal = normal_pixels(truth)
    hit = np.zeros(truth.shape, bool)
    for exp in camp.exposures:
        hit[exp.cosmic_rays["y"], exp.cosmic_rays["x"]] = True
    nonlinear = flags & dq.NONLINEAR != 0
    # NONLINEAR is a 5-sigma outlier of the (log) residual RMS: no clean normal pixel
    # (expected 0.001 of ~3400), and few of those a cosmic ray hit in one integration
    # (the integration is left out of their fit)
    assert not np.any(nonlinear[normal & ~hit])
    assert np.mean(nonlinear[normal & hit]) < 0.2


def test_kernel_recovers_an_exact_polynomial():
    """Noise-free ramps through a known non-linearity: the fit is exact."""
    t = 10.0 * np.arange(1, 21)
    well, q, c = 40000.0, 0.04, 0.02
    rates = np.array([1.0, 2.2, 3.5]) * well / t[-1]
    s = rates[:, None] * t[None, :]
    u = np.minimum(s, well) / well
    measured = np.minimum(s, well) * (1 - q * u - c * u * u)
    v = (1000.0 + measured)[None]  # (pixel, integration, group)
    coeffs, onset, n, rms = fit_linearity(v, t, degree=5)
    assert onset[0] == pytest.approx(well * (1 - q - c), rel=1e-6)
    lin = np.linspace(0.02, 0.95, 20) * well
    uu = lin / well
    m = lin * (1 - q * uu - c * uu * uu)
    np.testing.assert_allclose(evaluate(coeffs[0], m), lin, rtol=2e-4)
    assert rms[0] < 2e-4


def test_chunked_equals_eager_and_nothing_is_computed(ramps):
    _, camp, _, _ = ramps
    calls = []
    with dask.config.set(scheduler=lambda *a, **k: calls.append(1)):
        lazy = daskref.linearity(open_stack(camp.paths, chunk_rows=9))
    assert not calls  # building the graph computes nothing
    assert len(lazy["coeffs"].chunks[1]) == 8  # 64 rows in slabs of 9
    eager = linearity(open_stack(camp.paths).load())
    assert eager["coeffs"].chunks is None
    chunked = lazy.compute()
    np.testing.assert_allclose(chunked["coeffs"].values, eager["coeffs"].values, rtol=1e-6)
    np.testing.assert_array_equal(chunked["dq"].values, eager["dq"].values)
    np.testing.assert_array_equal(chunked["n_points"].values, eager["n_points"].values)


def test_file_validates_and_bad_inputs_are_one_line(ramps, tmp_path, capsys):
    from astropy.io import fits
    from stdatamodels.jwst import datamodels

    from daskref.cli import main

    truth, camp, _, superbias = ramps
    out = tmp_path / "lin.fits"
    assert main(["linearity", *map(str, camp.paths), "-o", str(out), "-q",
                 "--superbias", str(superbias), "--degree", "4"]) == 0
    with datamodels.LinearityModel(str(out)) as m:
        m.validate()
        assert m.meta.reftype == "LINEARITY"
        assert m.coeffs.shape == (5, 64, 64) and m.coeffs.dtype.itemsize == 4
        assert {"NO_LIN_CORR", "NONLINEAR"} <= set(m.dq_def["name"])
    header = fits.getheader(out)
    assert header["LINDEGRE"] == 4
    history = " ".join(str(h) for h in header["HISTORY"])
    assert "superbias.fits" in history and "lin_000_uncal.fits" in history
    assert (tmp_path / "lin_linearity_diagnostics.fits").exists()
    # dark ramps rise nowhere: one line, no file
    darks = simulate_campaign(tmp_path / "darks", 1, nints=1, ngroups=8, seed=505,
                              subarray="SUB64P", substrt=(1, 1), subsize=(64, 64),
                              tframe=10.0)
    none = tmp_path / "none.fits"
    assert main(["linearity", *map(str, darks.paths), "-o", str(none), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no pixel" in err[0] and "fitted" in err[0]
    assert not none.exists()
    # too few groups for the early fit: the file is named
    short = simulate_ramps(tmp_path / "short", truth, (2.0,), nints=1, ngroups=5)
    with pytest.raises(InputError, match=r"lin_000_uncal.fits: has 5 groups"):
        daskref.linearity(short.paths)
