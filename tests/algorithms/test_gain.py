"""The GAIN reference file by photon transfer, against the truth."""

from __future__ import annotations

import dask
import numpy as np
import pytest
from astropy.io import fits
from scipy.stats import chi2, norm

import daskref
from daskref.algorithms.gain import gain
from daskref.geometry import amplifier_index
from daskref.io.fits import InputError, open_stack
from daskref.kernels.gain import (
    box_stats,
    fit_ptc,
    gls_scale,
    ipc_alpha,
    ipc_variance_factor,
)
from daskref.kernels.stats import clipped_std_bias, clipped_variance_covariance, sigma_clip_stats
from daskref.simulate import make_truth, simulate_ptc

#: A detector read 5 % low at its onset (3 % quadratic, 2 % cubic).
WELL = {"full_well": 45000.0, "nonlin_quadratic": 0.03, "nonlin_cubic": 0.02}
AMP_GAINS = (1.8, 2.0, 2.2, 1.9)
NY = 128
BOX = 32
#: The IPC coupling of the IPC campaign (a typical near-IR value).
ALPHA = 0.015


def campaign(d, **kw):
    """A full-width 2048 x 128 strip (4 amplifiers, reference rows at the bottom and
    columns at the sides), 2 flat pairs at each of 5 levels (10 % to 70 % of the well
    in the last of 5 groups) and a dark pair, with cosmic rays and 2 % pixel gain
    scatter."""
    truth = make_truth(subarray="SUBGRISM64", substrt=(1, 1), subsize=(2048, NY), seed=11,
                       tframe=10.0, cosmic_ray_rate=5e-5, amp_gains=AMP_GAINS,
                       gain_scatter=0.02, **WELL, **kw)
    return truth, simulate_ptc(d, truth, ngroups=5, n_pairs=2)


@pytest.fixture(scope="module")
def ptc(tmp_path_factory):
    return campaign(tmp_path_factory.mktemp("gain") / "ptc")


@pytest.fixture(scope="module")
def ipc_ptc(tmp_path_factory):
    """The same campaign (same noise draws) through an IPC kernel."""
    return campaign(tmp_path_factory.mktemp("gain_ipc") / "ptc", ipc_alpha=ALPHA)


@pytest.fixture(scope="module")
def product(ptc):
    """The GAIN of the campaign without IPC, computed."""
    return daskref.gain(ptc[1].paths).compute()


def true_amp_gains(truth):
    amps = amplifier_index(truth.attrs, truth.shape)
    sci = ~truth.reference
    return np.array([truth.gain_map[:, amps == a][sci[:, amps == a]].mean() for a in range(4)])


def true_box_gains(truth):
    """The true mean gain of the science pixels of every box."""
    g = np.where(truth.reference, np.nan, truth.gain_map)
    return np.nanmean(g.reshape(NY // BOX, BOX, 2048 // BOX, BOX), axis=(1, 3))


def test_truth_recovery(ptc, product):
    truth, ds = ptc[0], product
    true = true_amp_gains(truth)
    # the target: each amplifier within 1.5 %
    np.testing.assert_allclose(ds["amp_gain"].values, true, rtol=0.015)
    # and within its own error (a jackknife over the boxes, about 0.6 % here)
    assert np.all(ds["amp_gain_err"].values / true < 0.01)
    assert np.all(np.abs(ds["amp_gain"].values - true) < 4 * ds["amp_gain_err"].values)
    # the fit absorbs the non-linearity: a straight PTC through the same points is
    # biased by several per cent (var = f'^2 s / g against m = f(s))
    for a in range(4):
        m, v = ds["amp_mean"].values[a].ravel(), ds["amp_var"].values[a].ravel()
        straight, _ = fit_ptc(m, v, degree=1, intercept=False)
        assert 1 / straight[1] / true[a] - 1 > 0.03
    gmap = ds["gain"].values
    assert gmap.shape == truth.shape and np.all(np.isfinite(gmap))
    assert np.all(np.isfinite(ds["gain_err"].values))
    # without IPC the measured coupling is nothing (within 4 of its errors)
    assert np.all(np.abs(ds["amp_alpha"].values) < 4 * ds["amp_alpha_err"].values)


def test_gain_map_is_within_its_statistical_error(ptc, product):
    """Every box against the true mean gain of its pixels, in units of its own error.

    A box's gain is its amplifier's times its scale against the amplifier's boxes
    (a generalised least-squares fit with the covariance of its 40 points, the
    groups of a pair correlated, the dark subtracted from all): the box-to-amplifier
    ratios are independent across boxes and their normalised residuals must be a
    standard normal sample; the amplifier part, common to its boxes, is checked
    against its own (jackknife) error. The photon transfer of pixels whose gains
    scatter by s measures a mean lower by about 2 s^2 than the arithmetic one
    (<1/g> / <1/g^2>): 0.08 % here, a twentieth of a box's error.
    """
    truth, ds = ptc[0], product
    true_amp = true_amp_gains(truth)
    true_box = true_box_gains(truth)
    box_amp = np.arange(2048 // BOX) * BOX // 512  # the amplifier of every box column
    est, err = ds["box_gain"].values, ds["box_gain_err"].values
    amp = ds["amp_gain"].values[box_amp][None, :]
    ratio_err = ds["box_ratio_err"].values
    # about 1.3 % per box (4.4 % per point, 40 correlated points)
    assert 0.01 < np.median(ratio_err) < 0.016
    z = ((est / amp - true_box / true_amp[box_amp][None, :]) / ratio_err).ravel()
    n = z.size
    p = 1e-4  # each bound fails this rarely for a right error model
    # (the mean is near zero by construction: the boxes are scaled to their amplifier)
    assert abs(z.mean()) < norm.isf(p / 2) / np.sqrt(n)
    # sum z^2 of a standard normal sample follows chi-square with n - 4 degrees (one
    # scale per amplifier is fitted)
    dof = n - 4
    assert chi2.ppf(p / 2, dof) < np.sum(z**2) < chi2.isf(p / 2, dof)
    # no more outliers beyond 4 sigma than a normal sample allows (expected 0.016)
    assert np.sum(np.abs(z) > 4) <= 1
    # the total error (box and amplifier parts) covers every box
    total = ((est - true_box) / err).ravel()
    assert np.sum(np.abs(total) > 4) <= 1 and np.all(np.abs(total) < 5)
    # and the pixels carry their box's gain and error
    np.testing.assert_array_equal(ds["gain"].values[40, 100], np.float32(est[1, 3]))
    np.testing.assert_array_equal(ds["gain_err"].values[40, 100], np.float32(err[1, 3]))


def test_ipc_is_measured_and_corrected(ipc_ptc):
    """IPC lowers the variance of a flat by (1 - 4a)^2 + 4a^2: uncorrected, the gain
    is high by about 8a (13 % here); corrected from the neighbour covariance, every
    amplifier is within 1.5 % (and its error) and a within its error."""
    truth, camp = ipc_ptc
    true = true_amp_gains(truth)
    raw = daskref.gain(camp.paths).compute()
    fixed = daskref.gain(camp.paths, ipc_correction=True).compute()
    factor = ipc_variance_factor(ALPHA)
    # the effect is real and the one derived: the uncorrected gain over the truth is
    # 1 / factor, to within its statistical error
    biased = raw["amp_gain"].values / true
    assert np.all(biased - 1 > 0.10)
    np.testing.assert_allclose(biased * factor, 1.0,
                               atol=4 * np.max(raw["amp_gain_err"].values / true))
    # corrected: the target, and within the statistics
    np.testing.assert_allclose(fixed["amp_gain"].values, true, rtol=0.015)
    assert np.all(np.abs(fixed["amp_gain"].values - true) < 4 * fixed["amp_gain_err"].values)
    # a of every amplifier within 4 of its errors (about 0.0004), and of all together
    alpha, alpha_err = fixed["amp_alpha"].values, fixed["amp_alpha_err"].values
    assert np.all(alpha_err < 0.001)
    assert np.all(np.abs(alpha - ALPHA) < 4 * alpha_err)
    combined = np.sum(alpha / alpha_err**2) / np.sum(alpha_err**-2)
    assert abs(combined - ALPHA) < 4 / np.sqrt(np.sum(alpha_err**-2))
    # the measurement does not depend on the correction; the boxes scatter about it
    np.testing.assert_allclose(raw["amp_alpha"].values, alpha)
    assert abs(np.nanmedian(fixed["box_alpha"].values) - ALPHA) < 0.002
    # the corrected map is as good as without IPC
    true_box = true_box_gains(truth)
    total = (fixed["box_gain"].values - true_box) / fixed["box_gain_err"].values
    assert np.sum(np.abs(total) > 4) <= 1


def test_chunked_equals_eager_and_nothing_is_computed(ipc_ptc):
    _, camp = ipc_ptc
    flats = [p for p in camp.paths if "flat" in p.name]
    darks = [p for p in camp.paths if "dark" in p.name]
    calls = []
    with dask.config.set(scheduler=lambda *a, **k: calls.append(1)):
        lazy = gain(open_stack(flats, chunk_rows=BOX), open_stack(darks, chunk_rows=BOX),
                    ipc_correction=True)
    assert not calls  # building the graph computes nothing
    assert len(lazy["gain"].chunks[0]) == NY // BOX
    chunked = lazy.compute()
    eager = gain(open_stack(flats).load(), open_stack(darks).load(), ipc_correction=True)
    assert eager["gain"].chunks is None
    for name in ("gain", "gain_err", "box_gain_err"):
        np.testing.assert_allclose(chunked[name].values, eager[name].values, rtol=1e-6)
    for name in ("amp_gain", "amp_gain_err", "amp_alpha", "amp_alpha_err", "amp_cov"):
        np.testing.assert_allclose(chunked[name].values, eager[name].values, rtol=1e-9)


def ipc_images(rng, shape, alpha, sigma=100.0):
    """White noise read through the IPC kernel (periodic, so every pixel has 4)."""
    s = rng.normal(0.0, sigma, shape)
    out = (1 - 4 * alpha) * s
    for axis in (-1, -2):
        out += alpha * (np.roll(s, 1, axis) + np.roll(s, -1, axis))
    return out


def test_ipc_relations():
    """The exact relations of a symmetric kernel: variance, covariance, their inverse."""
    for a in (0.0, 0.005, 0.015, 0.03, 0.06):
        var = (1 - 4 * a) ** 2 + 4 * a**2
        cov = 2 * a * (1 - 4 * a)
        assert ipc_variance_factor(a) == pytest.approx(var)
        assert ipc_alpha(cov / var) == pytest.approx(a, abs=1e-12)
    # on the simulator: a point charge spreads by the kernel, and nothing is lost
    truth = make_truth(subarray="SUB64P", substrt=(1, 1), subsize=(64, 64), ipc_alpha=0.02)
    s = np.zeros(truth.shape)
    s[30, 30] = 1000.0
    np.testing.assert_allclose(truth.ipc(s)[29:32, 29:32], 1000.0 * truth.ipc_kernel)
    s[4, 10] = 100.0  # beside the reference rows: it keeps what it cannot give
    out = truth.ipc(s)
    assert out.sum() == pytest.approx(s.sum()) and out[3, 10] == 0
    assert out[4, 10] == pytest.approx(100.0 * (1 - 3 * 0.02))
    with pytest.raises(ValueError, match="ipc_alpha"):
        make_truth(subarray="SUB64P", substrt=(1, 1), subsize=(64, 64), ipc_alpha=0.3)


@pytest.mark.parametrize("alpha", [0.0, 0.02])
def test_box_covariance_measures_ipc(alpha):
    """Box statistics of IPC-coupled noise give the coupling, unbiased: the box's own
    mean and the clipping (both would lower it) are corrected for."""
    rng = np.random.default_rng(21)
    ratios = []
    for _ in range(8):
        a = ipc_images(rng, (8, 128, 128), alpha)
        b = ipc_images(rng, (8, 128, 128), alpha)
        a[:, 5, 7] += 5000.0  # a cosmic ray: clipped
        st = box_stats(a, b, np.ones((128, 128), bool), box_size=32)
        ratios.append((st.cov / st.var).ravel())
    r = np.concatenate(ratios)
    expected = 2 * alpha * (1 - 4 * alpha) / ipc_variance_factor(alpha)
    assert abs(r.mean() - expected) < 4 * r.std() / np.sqrt(r.size)
    # the variance is that of the coupled noise (a difference of two: 2 sigma^2 / 2)
    assert abs(np.mean(st.var) / (100.0**2 * ipc_variance_factor(alpha)) - 1) < 0.01


def test_clipped_variance_covariance():
    """The table against a direct Monte Carlo of clipped variances of correlated samples."""
    rng = np.random.default_rng(8)
    n, trials = 256, 6000
    x = rng.standard_normal((trials, n))
    y = 0.6 * x + 0.8 * rng.standard_normal((trials, n))
    f2 = clipped_std_bias(n, sigma=3.0, maxiters=3) ** 2
    vx = sigma_clip_stats(x, sigma=3.0, maxiters=3).var / f2
    vy = sigma_clip_stats(y, sigma=3.0, maxiters=3).var / f2
    for rho, got in ((1.0, np.var(vx)), (0.6, np.cov(vx, vy)[0, 1])):
        phi = clipped_variance_covariance(rho, sigma=3.0, maxiters=3)
        # a variance of 6000 estimates to 1.8 %, their covariance to about 2.5 %
        assert got * n / 2 == pytest.approx(phi, rel=4 * 0.025)
    assert clipped_variance_covariance(1.0, sigma=3.0, maxiters=3) > 1.1  # clipping costs
    assert clipped_variance_covariance(0.5, sigma=np.inf, maxiters=3) == 0.25


def test_gls_scale_matches_the_dense_solution():
    """The Woodbury form equals generalised least squares with the full covariance."""
    rng = np.random.default_rng(3)
    nbox, npair, ng = 3, 4, 3
    x = rng.uniform(1, 5, (nbox, npair, ng))
    y = 0.5 * x + rng.normal(0, 0.1, x.shape)
    y[1, 2, 0] = np.nan  # a point left out
    g = rng.normal(size=(nbox, npair, ng, ng))
    pair = g @ np.swapaxes(g, -1, -2) + 0.5 * np.eye(ng)
    h = rng.normal(size=(nbox, ng, ng))
    common = 0.3 * h @ np.swapaxes(h, -1, -2)
    k, err = gls_scale(x, y, pair, common)
    for b in range(nbox):
        full = np.zeros((npair * ng, npair * ng))
        for p in range(npair):
            full[p * ng:(p + 1) * ng, p * ng:(p + 1) * ng] = pair[b, p]
        full += np.tile(common[b], (npair, npair))
        keep = np.isfinite(y[b].ravel())
        c = full[np.ix_(keep, keep)]
        xb, yb = x[b].ravel()[keep], y[b].ravel()[keep]
        axx = xb @ np.linalg.solve(c, xb)
        np.testing.assert_allclose(k[b], xb @ np.linalg.solve(c, yb) / axx, rtol=1e-10)
        np.testing.assert_allclose(err[b], axx**-0.5, rtol=1e-10)


def test_box_statistics_clip_cosmic_rays():
    """A pair of pure Poisson images: the clipped variance is unbiased, cosmic rays or not."""
    rng = np.random.default_rng(5)
    mean = 4000.0
    a = rng.poisson(mean, (4, 64, 64)).astype(float)
    b = rng.poisson(mean, (4, 64, 64)).astype(float)
    valid = np.ones((64, 64), bool)
    s0 = box_stats(a, b, valid, box_size=32)
    hit = rng.random(a.shape) < 0.01
    a[hit] += rng.uniform(500, 5000, hit.sum())
    s1 = box_stats(a, b, valid, box_size=32)
    # 16 boxes of 1024 pixels: the variance of each to sqrt(2 / 1024) = 4.4 %
    np.testing.assert_allclose(s0.var.mean(), mean, rtol=3 * 0.044 / 4)
    np.testing.assert_allclose(s1.var.mean(), mean, rtol=3 * 0.044 / 4 + 0.01)
    np.testing.assert_allclose(s1.mean.mean(), mean, rtol=0.01)
    assert np.all(s0.n == 1024)


def test_file_validates_and_bad_inputs_are_one_line(ipc_ptc, tmp_path, capsys):
    from stdatamodels.jwst import datamodels

    from daskref.cli import main

    truth, camp = ipc_ptc
    out = tmp_path / "gain.fits"
    assert main(["gain", *map(str, camp.paths), "-o", str(out), "-q", "--box-size", "64",
                 "--ipc-correction"]) == 0
    with datamodels.GainModel(str(out)) as m:
        m.validate()
        assert m.meta.reftype == "GAIN" and m.data.shape == truth.shape
    header = fits.getheader(out)
    assert header["GAINBOX"] == 64 and header["GAINIPC"] is True
    history = " ".join(str(h) for h in header["HISTORY"])
    assert "Amplifier 4: gain" in history and "ptc_dark_000_uncal.fits" in history
    assert "IPC alpha 0.01" in history and "(corrected)" in history
    true = true_amp_gains(truth)
    np.testing.assert_allclose([header[f"GAINAMP{a}"] for a in range(1, 5)], true, rtol=0.015)
    errors = np.array([header[f"GAINERR{a}"] for a in range(1, 5)])
    assert np.all((errors > 0) & (errors < 0.03))
    np.testing.assert_allclose([header[f"IPCALPH{a}"] for a in range(1, 5)], ALPHA, atol=0.002)
    # the diagnostics: the PTC points, the amplifiers, the boxes, the error image
    diag = tmp_path / "gain_ptc.fits"
    table = fits.getdata(diag, "PTC")
    assert len(table) == 4 * 10 * 4 and set(table["amplifier"]) == {1, 2, 3, 4}
    assert np.all(table["variance"] > table["variance_measured"])  # IPC corrected
    amps = fits.getdata(diag, "AMPLIFIERS")
    np.testing.assert_allclose(amps["gain_err"], errors, rtol=1e-6)
    boxes = fits.getdata(diag, "BOXES")
    assert len(boxes) == (NY // 64) * (2048 // 64) and np.all(boxes["gain_err"] > 0)
    assert fits.getdata(diag, "GAIN_ERR").shape == truth.shape
    assert (tmp_path / "gain_ptc.png").exists()
    # unpaired flats: the file without a partner is named, one line, no file
    flats = [p for p in camp.paths if "flat" in p.name]
    with pytest.raises(InputError, match=r"ptc_flat_002_uncal.fits: has no partner"):
        daskref.gain(flats[:3])
    none = tmp_path / "none.fits"
    capsys.readouterr()
    assert main(["gain", *map(str, flats[:5]), "-o", str(none), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ptc_flat_004_uncal.fits: has no partner" in err[0]
    # one level only: one line, no file
    assert main(["gain", *map(str, flats[:2]), "-o", str(none), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "two or more levels" in err[0]
    assert not none.exists()
