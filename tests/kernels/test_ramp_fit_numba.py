"""The compiled ramp fit equals the vectorised one byte for byte."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from daskref import dq
from daskref.kernels import ramp_fit as rf
from daskref.kernels._ramp_fit_numba import _axis0_sum, _median_of


def _ramps(rng, nint, ngroup, npix):
    """Ramps with jumps, saturation, DO_NOT_USE, NaN, missing read noise and gain."""
    t = np.arange(1, ngroup + 1) * 10.0
    rate = rng.uniform(-1, 50, npix)
    data = (rate[None, None] * t[None, :, None]
            + rng.normal(0, 10, (nint, ngroup, npix))).astype(np.float32)
    gdq = np.zeros(data.shape, np.uint8)
    gdq[rng.random(gdq.shape) < 0.05] |= dq.JUMP_DET
    onset = rng.integers(0, 4 * ngroup, (nint, npix))
    for i in range(nint):
        gdq[i][np.arange(ngroup)[:, None] >= onset[i][None]] |= dq.SATURATED
    gdq[rng.random(gdq.shape) < 0.02] |= dq.DO_NOT_USE
    data[rng.random(data.shape) < 0.01] = np.nan
    pdq = rng.choice([0, dq.DO_NOT_USE, dq.JUMP_DET], npix).astype(np.uint32)
    cds = rng.uniform(10, 20, npix)
    cds[rng.random(npix) < 0.02] = np.nan
    gain = rng.uniform(1.5, 2.5, npix)
    gain[rng.random(npix) < 0.02] = 0.0
    return data, gdq, pdq, cds, gain


@pytest.mark.parametrize(("nint", "ngroup", "npix"), list(itertools.product(
    [1, 3, 10], [1, 2, 5, 9, 20], [1, 2, 300])))
def test_compiled_fit_is_byte_identical(nint, ngroup, npix):
    rng = np.random.default_rng(nint * 1000 + ngroup * 10 + npix)
    ramps = _ramps(rng, nint, ngroup, npix)
    for optimal, save_opt in itertools.product([True, False], [False, True]):
        kw = dict(tgroup=10.0, nframes=1, groupgap=0, optimal=optimal, save_opt=save_opt,
                  max_segments=4, max_cr=3)
        ref = rf._fit_pixels_numpy(*ramps, **kw)
        got = rf._fit_pixels(*ramps, **kw)
        assert ref.keys() == got.keys()
        for k in ref:  # bytes: signed zeros and NaN payloads too
            assert ref[k].shape == got[k].shape, k
            assert ref[k].tobytes() == got[k].tobytes(), (k, optimal, save_opt)


def test_sums_follow_numpy_order():
    """One pixel column: numpy's pairwise sum from 0; several: rows in turn."""
    rng = np.random.default_rng(2)
    for n in [*range(1, 40), 127, 128, 129, 300, 1000]:
        a = rng.standard_normal(n) * 10.0 ** rng.integers(-3, 6, n)
        assert _axis0_sum(a, n, True) == a.reshape(n, 1).sum(axis=0)[0]
        assert _axis0_sum(a, n, False) == np.stack([a, a], 1).sum(axis=0)[0]


def test_median_matches_the_masked_median():
    rng = np.random.default_rng(5)
    for trial in range(2000):
        n = int(rng.integers(1, 60))
        a = rng.integers(-5, 5, n).astype(float) if trial % 2 else rng.standard_normal(n)
        a[rng.random(n) < 0.2] = np.nan
        ref = rf._masked_median(a[:, None])[0]
        got = _median_of(a.copy(), n)
        assert ref == got or (np.isnan(ref) and np.isnan(got))


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 8, 37, 38, 380])
def test_median_selection_is_numpys_median(m):
    from daskref.kernels._ramp_fit_numba import _median_finite

    rng = np.random.default_rng(m)
    for values in (rng.normal(0, 10, m), np.round(rng.normal(0, 2, m)), np.full(m, 3.0),
                   np.sort(rng.normal(0, 1, m)), np.sort(rng.normal(0, 1, m))[::-1].copy()):
        assert _median_finite(values.copy(), m) == np.median(values)
