"""The compiled saturation and linearity loops equal the numpy kernels byte for byte."""

from __future__ import annotations

import numpy as np
import pytest

from daskref import dq
from daskref.kernels import simple


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
@pytest.mark.parametrize("ad_floor", [0.0, None, 12.5])
def test_saturation_is_byte_identical(dtype, ad_floor):
    rng = np.random.default_rng(1)
    data = rng.uniform(0, 60000, (3, 9, 6, 50)).astype(dtype)
    data[0, :, 0, :5] = 0
    if dtype == np.float32:
        data[rng.random(data.shape) < 0.02] = np.nan
    thr = rng.uniform(20000, 70000, (6, 50))
    thr[1, :3] = np.nan
    thr[2, :3] = np.inf
    for t in (thr, thr[None, None], thr.astype(np.float32)):
        want = simple.saturation_groupdq_numpy(data, t, ad_floor=ad_floor)
        got = simple.saturation_groupdq(data, t, ad_floor=ad_floor)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    assert (want & dq.SATURATED).any() and (want & dq.SATURATED == 0).any()


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
@pytest.mark.parametrize("ncoeff", [2, 5])
def test_linearity_is_byte_identical(dtype, ncoeff):
    rng = np.random.default_rng(ncoeff)
    data = rng.uniform(0, 50000, (2, 7, 5, 40)).astype(dtype)
    gdq = np.where(rng.random(data.shape) < 0.1, dq.SATURATED, 0).astype(np.uint8)
    gdq[rng.random(data.shape) < 0.1] |= dq.JUMP_DET
    coeffs = np.zeros((5, 40, ncoeff))
    coeffs[..., 1] = 1.0
    coeffs[..., 0] = rng.normal(0, 3, (5, 40))
    coeffs[..., 2:] = rng.normal(0, 1e-6, (5, 40, ncoeff - 2)) / 10.0 ** np.arange(ncoeff - 2)
    skip = rng.random((5, 40)) < 0.1
    for c, s in ((coeffs, skip), (coeffs[None, None], skip[None, None])):
        want = simple.linearity_correct_numpy(data, gdq, c, s)
        got = simple.linearity_correct(data, gdq, c, s)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    # a strided view of the data gives the same values
    got = simple.linearity_correct(data[..., ::2], gdq[..., ::2], coeffs[:, ::2], skip[:, ::2])
    want = simple.linearity_correct_numpy(np.ascontiguousarray(data[..., ::2]), gdq[..., ::2],
                                          coeffs[:, ::2], skip[:, ::2])
    assert got.tobytes() == want.tobytes()
