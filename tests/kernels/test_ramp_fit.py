"""Truth tests for the ramp-fitting kernel on numpy-simulated ramps.

Statistics used throughout
--------------------------
* Mean of N independent rates with per-pixel errors e_i: its standard error is
  SE = sqrt(sum e_i^2) / N, and |mean - truth| < 4 SE fails by chance with
  probability ~6e-5.
* Sample standard deviation s of N Gaussian residuals with true sigma: (N-1) s^2 /
  sigma^2 is chi-square with N-1 degrees of freedom, so s / sigma has relative
  standard deviation 1 / sqrt(2 (N-1)); we allow 4 of those.
* The true variance of a weighted least-squares slope with coefficients c_k (slope =
  sum c_k y_k) is ``c^T C c`` with the ramp covariance C_jk = R^2 delta_jk +
  (rate / gain) min(t_j, t_k) (white read noise R per group plus accumulated Poisson
  charge). :func:`exact_slope_var` evaluates it; it is what the scatter of the fitted
  slopes must match. The pipeline's *reported* variances use closed-form
  approximations (see ``fit_ramps`` Notes), whose size we compute rather than guess.
"""

from __future__ import annotations

import numpy as np
import pytest

from daskref import dq
from daskref.kernels.ramp_fit import fit_ramps, group_times, optimal_power

TGROUP = 10.0


def simulate(seed, *, nint, ngroup, shape, rate, gain, cds, tgroup=TGROUP):
    """Ramps in DN (bias-free) with Poisson charge and white per-group read noise.

    Independent RNG streams for the charge and the read noise.
    """
    ss = np.random.SeedSequence(seed)
    rng_p, rng_r = (np.random.default_rng(s) for s in ss.spawn(2))
    t = group_times(ngroup, tgroup)
    dt = np.diff(np.concatenate([[0.0], t]))
    lam = rate * gain * dt[None, :, None, None] * np.ones((nint, ngroup) + shape)
    electrons = np.cumsum(rng_p.poisson(lam), axis=1)
    read = rng_r.normal(0.0, cds / np.sqrt(2.0), electrons.shape)
    return (electrons / gain + read).astype(np.float32)


def exact_slope_var(t, w, rn, rate, gain):
    """True variance of the weighted least-squares slope (see module docstring)."""
    tb = (w * t).sum() / w.sum()
    c = w * (t - tb) / (w * (t - tb) ** 2).sum()
    cov = np.eye(t.size) * rn**2 + np.minimum.outer(t, t) * rate / gain
    return float(c @ cov @ c)


def fixsen_weights(n, power):
    k = np.arange(n)
    mid = (n - 1) / 2
    return np.abs((k - mid) / mid) ** power


@pytest.mark.parametrize(
    "case",
    [
        # read-noise dominated (dark-like): S/N of a whole ramp ~0.1, so P = 0 (OLS)
        dict(rate=0.05, gain=2.0, cds=12.0, ngroup=6, nint=4, power=0.0),
        # Poisson dominated (flat-like): D*g = 50*50*2 = 5000 e-, read noise 17 e-:
        # S = 5000 / sqrt(5000 + 17^2) = 68.8 +- 0.5, always in (50, 100] -> P = 6
        dict(rate=50.0, gain=2.0, cds=12.0, ngroup=6, nint=4, power=6.0),
    ],
    ids=["dark", "flat"],
)
def test_fit_ramps__truth_recovery_and_error_consistency(case):
    shape = (96, 96)
    n_pix = shape[0] * shape[1]
    data = simulate(1, nint=case["nint"], ngroup=case["ngroup"], shape=shape,
                    rate=case["rate"], gain=case["gain"], cds=case["cds"])
    out = fit_ramps(data, None, tgroup=TGROUP, readnoise=case["cds"], gain=case["gain"])
    rate, err = out["rate"].astype(np.float64), out["rate_err"].astype(np.float64)
    assert np.all(np.isfinite(rate)) and np.all(out["dq"] == 0)

    t = group_times(case["ngroup"], TGROUP)
    rn = case["cds"] / np.sqrt(2)
    n = case["ngroup"]
    w = fixsen_weights(n, case["power"])
    # equal integration weights (same n, same pixel-level Poisson estimate) -> / nint
    var_exact = exact_slope_var(t, w, rn, case["rate"], case["gain"]) / case["nint"]
    # the pipeline formulas evaluated at the true rate
    var_formula = (12 * rn**2 / ((n**3 - n) * TGROUP**2)
                   + case["rate"] / (TGROUP * case["gain"] * (n - 1))) / case["nint"]

    # (a) mean rate within 4 standard errors of the truth; the per-pixel errors are the
    # reported ones, scaled up if the exact variance says they are too small.
    se = np.sqrt(np.sum(err**2)) / n_pix * max(1.0, np.sqrt(var_exact / var_formula))
    assert abs(rate.mean() - case["rate"]) < 4 * se

    # (b) scatter: the sample std of the residuals matches the exact estimator sigma
    # within 4 chi-square sigmas.
    sig_rel = 1 / np.sqrt(2 * (n_pix - 1))
    resid_std = np.std(rate - case["rate"], ddof=1)
    assert abs(resid_std / np.sqrt(var_exact) - 1) < 4 * sig_rel

    # (b) reported errors: ratio std(rate - truth) / mean(rate_err). Two known
    # model terms move it away from 1:
    #  * the closed-form variances vs the exact ones at the truth:
    #    r_model = sqrt(var_exact / var_formula) (1.000 for OLS read noise; a few %
    #    for P = 6, where the read-noise formula assumes equal weights);
    #  * the Poisson term uses the median of noisy first differences, clipped at 0.
    #    In read-noise-dominated data this only ever adds variance, by at most the
    #    reported Poisson share f_p = mean(var_poisson) / mean(err^2), which moves
    #    the ratio down by at most f_p / 2. In Poisson-dominated data the estimate is
    #    unbiased to first order (its relative noise is ~1 %), no extra term.
    ratio = resid_std / err.mean()
    r_model = np.sqrt(var_exact / var_formula)
    f_p = out["rate_var_poisson"].mean() / np.mean(err**2)
    slack = f_p / 2 if case["power"] == 0 else 0.0
    lo, hi = r_model * (1 - 4 * sig_rel) - slack, r_model * (1 + 4 * sig_rel)
    assert lo < ratio < hi, (ratio, r_model, f_p)

    # read-noise variance is deterministic: exactly the OLS formula, per integration
    np.testing.assert_allclose(
        out["rateints_var_rnoise"], 12 * rn**2 / ((n**3 - n) * TGROUP**2), rtol=1e-6
    )


def test_fit_ramps__jumps_and_saturation_do_not_bias():
    shape = (64, 64)
    nint, ngroup, rate, gain, cds = 2, 10, 2.0, 2.0, 12.0
    data = simulate(2, nint=nint, ngroup=ngroup, shape=shape, rate=rate, gain=gain, cds=cds)
    gdq = np.zeros(data.shape, np.uint8)
    rng = np.random.default_rng(3)
    # jumps of 2000 DN (a 40+ sigma bias if used) in 40 % of the ramps, flagged
    jumped = rng.random((nint,) + shape) < 0.4
    gjump = rng.integers(2, ngroup - 1, size=(nint,) + shape)
    g = np.arange(ngroup)[None, :, None, None]
    after = jumped[:, None] & (g >= gjump[:, None])
    data = data + np.where(after, 2000.0, 0.0).astype(np.float32)
    gdq |= np.where(jumped[:, None] & (g == gjump[:, None]), dq.JUMP_DET, 0).astype(np.uint8)
    # saturation from group 4..9 in 25 % of the ramps: garbage values, flagged
    satur = rng.random((nint,) + shape) < 0.25
    gsat = rng.integers(4, ngroup, size=(nint,) + shape)
    sat = satur[:, None] & (g >= gsat[:, None])
    data = np.where(sat, np.float32(65535.0), data)
    gdq |= np.where(sat, dq.SATURATED, 0).astype(np.uint8)

    out = fit_ramps(data, gdq, tgroup=TGROUP, readnoise=cds, gain=gain, save_opt=True)
    ri, ei = out["rateints"].astype(np.float64), out["rateints_err"].astype(np.float64)
    n = ri.size
    # unbiased: |mean(rateints - truth)| < 4 SE (SE from the reported errors, which
    # are at most a few % off, see the truth-recovery test)
    assert abs(ri.mean() - rate) < 4 * np.sqrt(np.sum(ei**2)) / n
    # and no single ramp is off: an unexcluded jump or saturated group would give a
    # > 40 sigma outlier; |pull| < 6 fails by chance with p ~ 2e-9 per ramp
    assert np.max(np.abs(ri - rate) / ei) < 6
    # jumped ramps have larger errors (shorter segments) but the same mean: the mean
    # pull is within 4 standard errors, SE = std(pull) / sqrt(n)
    pull = (ri - rate)[jumped] / ei[jumped]
    assert abs(pull.mean()) < 4 * pull.std(ddof=1) / np.sqrt(pull.size)
    # DQ: JUMP_DET where a jump was flagged; saturation after group 0 is not flagged
    assert np.all((out["dq_ints"][jumped] & dq.JUMP_DET) != 0)
    assert np.all((out["dq_ints"][~jumped] & dq.JUMP_DET) == 0)
    assert np.all((out["dq_ints"] & (dq.SATURATED | dq.DO_NOT_USE)) == 0)
    # crmag: first slot holds the jump size (2000 + rate * tgroup + noise), NaN when
    # the jump group itself is saturated
    jump_sat = jumped & satur & (gsat <= gjump)
    cr = out["crmag"][:, 0]
    assert np.all(np.isnan(cr[jump_sat]))
    assert abs(np.median(cr[jumped & ~jump_sat]) - (2000 + rate * TGROUP)) < 5 * cds
    assert np.all(out["crmag"][:, 0][~jumped] == 0)


@pytest.mark.parametrize(("nframes", "groupgap"), [(1, 0), (4, 1)])
def test_fit_ramps__noiseless_segments_and_fitopt(nframes, groupgap):
    ngroup, rate = 10, 3.0
    t = group_times(ngroup, TGROUP, nframes, groupgap)
    ramp = rate * t
    ramp[4:] += 500.0  # jump at group 4
    data = np.broadcast_to(ramp[None, :, None, None], (1, ngroup, 2, 3)).astype(np.float32).copy()
    gdq = np.zeros(data.shape, np.uint8)
    gdq[:, 4] = dq.JUMP_DET
    gdq[:, 8:] = dq.SATURATED
    data[:, 8:] = 9e9
    out = fit_ramps(data, gdq, tgroup=TGROUP, readnoise=10.0, gain=2.0, save_opt=True,
                    max_segments=3, nframes=nframes, groupgap=groupgap)
    np.testing.assert_allclose(out["rate"], rate, rtol=1e-5)
    np.testing.assert_allclose(out["slope"][0, :2], rate, rtol=1e-5)
    assert np.all(np.isnan(out["slope"][0, 2]))
    assert np.all(out["weights"][0, 2] == 0)
    np.testing.assert_allclose(out["yint"][0, 0], 0.0, atol=1e-3)
    np.testing.assert_allclose(out["yint"][0, 1], 500.0, rtol=1e-5)
    np.testing.assert_allclose(out["crmag"][0, 0], 500.0 + rate * TGROUP, rtol=1e-5)
    np.testing.assert_allclose(out["pedestal"][0], 0.0, atol=1e-3)
    assert out["slope"].shape == (1, 3, 2, 3) and out["crmag"].shape == (1, 2, 2, 3)
    assert np.all(out["dq"] == dq.JUMP_DET)
    # segment variances: 4 groups each, read noise per group = CDS / sqrt(2 nframes)
    np.testing.assert_allclose(out["var_rnoise"][0, :2], 12 * 50 / nframes / (60 * TGROUP**2),
                               rtol=1e-5)


def test_fit_ramps__single_group_and_unusable():
    ngroup = 5
    t = group_times(ngroup, TGROUP)
    data = np.broadcast_to((4.0 * t)[None, :, None, None], (1, ngroup, 1, 4)).astype(np.float32)
    data = data.copy()
    gdq = np.zeros(data.shape, np.uint8)
    gdq[0, 1:, 0, 0] = dq.SATURATED  # only group 0 usable -> value / t0
    gdq[0, :, 0, 1] = dq.SATURATED  # saturated in group 0 -> no rate
    gdq[0, :, 0, 2] = dq.DO_NOT_USE  # nothing usable
    out = fit_ramps(data, gdq, tgroup=TGROUP, readnoise=10.0, gain=2.0,
                    pixeldq=np.array([[0, 0, 0, dq.HOT]], np.uint32), save_opt=True)
    np.testing.assert_allclose(out["rate"][0, [0, 3]], 4.0, rtol=1e-6)
    # single group: var_rnoise = 2 R^2 / t0^2 with R = CDS / sqrt(2)
    np.testing.assert_allclose(out["rate_var_rnoise"][0, 0], 100 / t[0] ** 2, rtol=1e-6)
    assert np.isnan(out["rate"][0, 1]) and np.isnan(out["rate"][0, 2])
    assert out["dq"][0, 1] == dq.SATURATED | dq.DO_NOT_USE
    assert out["dq"][0, 2] == dq.DO_NOT_USE
    assert out["dq"][0, 0] == 0 and out["dq"][0, 3] == dq.HOT
    assert out["pedestal"][0, 0, 1] == 0


def test_fit_ramps__unweighted_matches_polyfit():
    rng = np.random.default_rng(5)
    ngroup = 9
    t = group_times(ngroup, TGROUP)
    data = (rng.normal(0, 20, (1, ngroup, 1, 5)) + 7.0 * t[None, :, None, None])
    data = data.astype(np.float32)
    gdq = np.zeros(data.shape, np.uint8)
    gdq[0, 3, 0, 1] = dq.DO_NOT_USE  # excluded, does not split the segment
    data[0, 5, 0, 2] = np.nan  # NaN group excluded
    gdq[0, 6:, 0, 3] = dq.SATURATED
    out = fit_ramps(data, gdq, tgroup=TGROUP, readnoise=10.0, gain=2.0,
                    weighting="unweighted")
    for x in range(5):
        use = (gdq[0, :, 0, x] == 0) & np.isfinite(data[0, :, 0, x])
        ref = np.polyfit(t[use], data[0, use, 0, x].astype(np.float64), 1)[0]
        np.testing.assert_allclose(out["rateints"][0, 0, x], ref, rtol=1e-5)


def test_fit_ramps__optimal_matches_weighted_polyfit():
    rng = np.random.default_rng(6)
    ngroup, gain, cds = 8, 2.0, 10.0
    t = group_times(ngroup, TGROUP)
    rates = np.array([0.05, 3.0, 8.0, 20.0, 60.0, 400.0])
    data = (rates[None, None, None, :] * t[None, :, None, None]
            + rng.normal(0, cds / np.sqrt(2), (1, ngroup, 1, rates.size))).astype(np.float32)
    out = fit_ramps(data, None, tgroup=TGROUP, readnoise=cds, gain=gain)
    powers = set()
    for x in range(rates.size):
        y = data[0, :, 0, x].astype(np.float64)
        d = (y[-1] - y[0]) * gain
        snr = max(d / np.sqrt((cds / np.sqrt(2) * gain) ** 2 + d), 0.0)
        p = float(optimal_power(np.array(snr)))
        powers.add(p)
        w = fixsen_weights(ngroup, p)
        ref = np.polyfit(t, y, 1, w=np.sqrt(w))[0]  # polyfit weights multiply residuals
        np.testing.assert_allclose(out["rate"][0, x], ref, rtol=1e-5)
    assert len(powers) >= 4  # the test spans several weighting regimes


def test_fit_ramps__nan_stays_in_its_pixel():
    data = simulate(7, nint=2, ngroup=6, shape=(8, 8), rate=5.0, gain=2.0, cds=10.0)
    ref = fit_ramps(data, None, tgroup=TGROUP, readnoise=10.0, gain=2.0, save_opt=True)
    bad = data.copy()
    bad[0, 3, 4, 4] = np.nan
    bad[1, :, 2, 2] = np.nan
    out = fit_ramps(bad, None, tgroup=TGROUP, readnoise=10.0, gain=2.0, save_opt=True)
    mask = np.ones((8, 8), bool)
    mask[4, 4] = mask[2, 2] = False
    for key in ("rate", "rate_err", "rateints", "slope", "pedestal"):
        np.testing.assert_array_equal(out[key][..., mask], ref[key][..., mask])
    assert np.isfinite(out["rate"][4, 4]) and np.isfinite(out["rate"][2, 2])
    assert np.isnan(out["rateints"][1, 2, 2]) and out["dq_ints"][1, 2, 2] == dq.DO_NOT_USE
