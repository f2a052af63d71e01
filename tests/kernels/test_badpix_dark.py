"""The compiled per-pixel statistics of the MASK from darks match their numpy references."""

import warnings

import numpy as np
import pytest

from daskref.kernels import badpix_dark
from daskref.kernels.stats import sigma_clip_stats


def _samples(dtype, nsample, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((2000, nsample)) * 5 + 100).astype(dtype)
    x[rng.random(x.shape) < 0.1] = np.nan
    x[rng.random(x.shape) < 0.1] += 80  # telegraph-like steps
    x[rng.random(x.shape) < 0.05] = 100  # ties
    x[:5] = np.nan  # no sample
    x[5:10] = 7.0  # every sample equal: zero MAD
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nsample", [1, 2, 3, 19, 76, 380])
def test_robust_std__bit_identical_to_numpy(dtype, nsample):
    x = _samples(dtype, nsample, nsample)
    std, mean = badpix_dark._robust_std(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        std0, mean0 = badpix_dark._robust_std_numpy(x)
    np.testing.assert_array_equal(std, std0)
    np.testing.assert_array_equal(mean, mean0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nsample", [1, 2, 19, 76])
def test_median__bit_identical_to_clip_stats(dtype, nsample):
    x = _samples(dtype, nsample, 7).reshape(500, 4, nsample)
    np.testing.assert_array_equal(badpix_dark._median(x),
                                  sigma_clip_stats(x, sigma=np.inf, maxiters=0).median)
