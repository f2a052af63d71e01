import warnings

import numpy as np
import pytest
from astropy.stats import sigma_clip
from astropy.utils.exceptions import AstropyUserWarning

from daskref.kernels.stats import (
    clipped_std_bias,
    sigma_clip_stats,
)


@pytest.mark.parametrize("maxiters", [1, 3, None])
@pytest.mark.parametrize("sigma", [2.5, 3.0])
def test_sigma_clip_stats__matches_astropy(sigma, maxiters):
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 10.0, (500, 31))
    x[::7, 3] = 300.0  # outliers
    x[::11, 5] = -250.0
    x[3, :4] = np.nan  # missing samples
    x[4, :] = np.nan  # a pixel with no data
    st = sigma_clip_stats(x, sigma=sigma, maxiters=maxiters)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)  # about the NaNs
        ref = sigma_clip(x, sigma=sigma, maxiters=maxiters, axis=1, masked=True)
    ok = ~np.all(np.isnan(x), axis=1)
    np.testing.assert_array_equal(st.n, ref.count(axis=1))
    np.testing.assert_allclose(st.mean[ok], ref.mean(axis=1)[ok], rtol=1e-10)
    np.testing.assert_allclose(st.var[ok], ref.var(axis=1)[ok], rtol=1e-8)
    assert np.isnan(st.mean[4]) and st.n[4] == 0


@pytest.mark.parametrize("n", [6, 20, 45, 200])
def test_clipped_std_bias__makes_std_unbiased(n):
    # The mean of T corrected estimates has relative standard error ~ 1/sqrt(2 n T);
    # the table itself is precise to ~0.04 %. Tolerance: 4 standard errors + 0.1 %.
    rng = np.random.default_rng(100 + n)
    trials = 400_000 // n
    x = rng.normal(0.0, 7.0, (trials, n))
    st = sigma_clip_stats(x, sigma=3.0, maxiters=3)
    raw = np.sqrt(st.var)
    corrected = raw / clipped_std_bias(np.full(trials, n), sigma=3.0, maxiters=3)
    se = corrected.std() / np.sqrt(trials) / 7.0
    assert abs(corrected.mean() / 7.0 - 1) < 4 * se + 1e-3
    # ... and without the correction the estimate is measurably low (the test can fail).
    assert raw.mean() / 7.0 < 1 - 4 * se - 5e-3


def test_clipped_std_bias__consecutive_differences():
    # Differences of consecutive reads are anti-correlated; the block-aware factor
    # still gives an unbiased CDS noise.
    rng = np.random.default_rng(7)
    trials, g = 20_000, 11
    reads = rng.normal(0, 5.0, (trials, 2, g))  # CDS noise = 5 sqrt(2)
    d = np.diff(reads, axis=-1).reshape(trials, -1)
    st = sigma_clip_stats(d, sigma=3.0, maxiters=3)
    est = np.sqrt(st.var) / clipped_std_bias(np.full(trials, d.shape[1]), sigma=3.0,
                                             maxiters=3, block=g - 1)
    truth = 5.0 * np.sqrt(2)
    se = est.std() / np.sqrt(trials) / truth
    assert abs(est.mean() / truth - 1) < 4 * se + 2e-3
