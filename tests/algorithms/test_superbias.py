import numpy as np
import pytest
import xarray as xr

from daskref import dq
from daskref.algorithms.superbias import superbias
from daskref.io.fits import open_stack
from daskref.testing import assert_lazy


def _group0_sigma(truth):
    """Noise of group 0: reset (kTC) noise and one read (CDS / sqrt 2), NFRAMES = 1."""
    return np.sqrt(truth.ktc_noise**2 + truth.readnoise_cds**2 / 2)


def test_superbias__recovers_truth(nircam_darks):
    truth = nircam_darks.truth
    out = superbias(open_stack(nircam_darks.paths)).compute()
    assert int(out.n_used.min()) >= 10 and int(out.n_used.max()) == 12  # every integration
    sigma = _group0_sigma(truth)
    z = (out.superbias.values - truth.expected_group0()) / (sigma / np.sqrt(12))
    # Standardised residuals: mean 0 within 4 standard errors; their spread is ~1
    # (the clipped mean of 12 normal samples is about as efficient as the mean).
    assert abs(z.mean()) < 4 / np.sqrt(z.size)
    assert 0.9 < z.std() < 1.1
    ratio = out.err.values / sigma
    assert abs(ratio.mean() - 1) < 4 * ratio.std() / np.sqrt(ratio.size) + 1e-3
    assert out.dq.dtype == np.uint32 and out.superbias.attrs["units"] == "DN"


def _synthetic(seed=0, nint=20, shape=(40, 50)):
    rng = np.random.default_rng(seed)
    bias = 10000 + 500 * rng.standard_normal(shape)
    noise = np.full(shape, 10.0)
    noisy = np.zeros(shape, bool)
    noisy[[3, 17, 30, 31, 39], [5, 44, 0, 1, 49]] = True
    noise[noisy] = 100.0
    g0 = bias + noise * rng.standard_normal((nint,) + shape)
    ramp = np.stack([g0, g0 + 1], axis=1)  # 2 groups
    gdq = np.zeros(ramp.shape, np.uint8)
    gdq[:, 0, 20, 20] = dq.SATURATED  # no usable group 0 at all
    ds = xr.Dataset(
        {"ramp": (("integration", "group", "y", "x"), ramp.astype(np.float32)),
         "groupdq": (("integration", "group", "y", "x"), gdq)},
        attrs={"INSTRUME": "NIRCAM", "SUBSTRT1": 900, "SUBSTRT2": 900},
    )
    return ds, bias, noisy


def test_superbias__flags_unreliable_pixels_exactly():
    ds, _, noisy = _synthetic()
    out = superbias(ds)
    expect = noisy.copy()
    expect[20, 20] = True  # NaN superbias and error
    flagged = out.dq.values == (dq.DO_NOT_USE | dq.UNRELIABLE_BIAS)
    np.testing.assert_array_equal(flagged, expect)
    assert set(np.unique(out.dq.values)) == {0, dq.DO_NOT_USE | dq.UNRELIABLE_BIAS}
    assert np.isnan(out.superbias.values[20, 20])


def test_superbias__filled_replaces_outliers_only():
    ds, bias, _ = _synthetic(seed=1)
    spikes = [(5, 5), (10, 30), (25, 12)]
    for y, x in spikes:
        ds.ramp.values[:, :, y, x] += 5000.0
    out = superbias(ds, save_filled=True, box_width=3)
    sb, filled = out.superbias.values, out.superbias_filled.values
    for y, x in spikes:
        neighbours = np.delete(sb[y - 1:y + 2, x - 1:x + 2].ravel(), 4)
        assert np.min(neighbours) <= filled[y, x] <= np.max(neighbours)
    changed = ~np.isclose(filled, sb) & np.isfinite(sb)
    assert {tuple(p) for p in np.argwhere(changed)} <= set(spikes) | {(20, 20)}
    assert np.isfinite(filled[20, 20])
    with pytest.raises(ValueError, match="odd"):
        superbias(ds, save_filled=True, box_width=4)


@pytest.mark.parametrize("chunks", [{"y": 7}, {"y": (20, 20), "x": (3, 40, 7)}])
def test_superbias__chunked_equals_eager(chunks):
    ds, _, _ = _synthetic(seed=2)
    eager = superbias(ds, save_filled=True)
    assert eager.superbias.chunks is None
    with assert_lazy():
        chunked = superbias(ds.chunk(chunks), save_filled=True)
    assert chunked.dq.chunks is not None
    xr.testing.assert_equal(eager, chunked.compute())
