import warnings

import numpy as np
import pytest
from astropy.stats import sigma_clip
from astropy.utils.exceptions import AstropyUserWarning

from daskref.kernels.stats import (
    clipped_std_bias,
    sigma_clip_stats,
    sigma_clip_stats_numpy,
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nsample", [1, 2, 5, 20, 60, 300])
@pytest.mark.parametrize("kw", [dict(sigma=3.0, maxiters=5), dict(sigma=2.0, maxiters=None),
                                dict(sigma=1.5, maxiters=1, ddof=1),
                                dict(sigma=np.inf, maxiters=0), dict(sigma=3.0, maxiters=0)])
def test_sigma_clip_stats__compiled_loop_is_bit_identical_to_numpy(dtype, nsample, kw):
    # the compiled loop must keep the very same survivors and sums: DARK and MASK
    # products may not change with the implementation
    rng = np.random.default_rng(nsample)
    x = (rng.standard_normal((500, 3, nsample)) * 5 + 1000).astype(dtype)
    x[rng.random(x.shape) < 0.1] = np.nan
    x[rng.random(x.shape) < 0.05] += 60  # outliers to clip
    x[rng.random(x.shape) < 0.02] = 1000  # ties
    x[:5] = np.nan  # pixels without samples
    x[5, 0, 0] = np.inf
    fast = sigma_clip_stats(x, **kw)
    with warnings.catch_warnings():  # numpy warns of the inf - inf it computes
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = sigma_clip_stats_numpy(x, **kw)
    for name in ("mean", "var", "n", "bound", "median"):
        a, b = getattr(fast, name), getattr(ref, name)
        assert a.dtype == b.dtype and a.shape == b.shape == x.shape[:-1]
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_nanmedian_rows__bit_identical_to_numpy():
    from daskref.kernels._clip_numba import nanmedian_rows

    rng = np.random.default_rng(3)
    for nsample in (1, 2, 3, 44, 45):
        x = rng.standard_normal((400, nsample)) * 100 + 3
        x[rng.random(x.shape) < 0.3] = np.nan
        x[:3] = np.nan
        out = np.empty(len(x))
        nanmedian_rows(x, out)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            np.testing.assert_array_equal(out, np.nanmedian(x, axis=-1))
