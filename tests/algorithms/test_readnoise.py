import numpy as np
import pytest
import xarray as xr
from astropy.stats import sigma_clip

from daskref.algorithms.readnoise import readnoise, single_value_region
from daskref.io.fits import open_exposure, open_stack
from daskref.simulate import simulate_campaign
from daskref.testing import assert_lazy, write_ramp_file


def _check_unbiased(est, truth, extra=1e-3):
    """Mean of est/truth is 1 within 4 standard errors (from the pixel scatter) plus the
    precision of the bias-correction table (0.1 %)."""
    ratio = (est / truth)[np.isfinite(est)]
    se = ratio.std() / np.sqrt(ratio.size)
    assert abs(ratio.mean() - 1) < 4 * se + extra, (ratio.mean(), se)
    return ratio.mean(), se


@pytest.mark.parametrize("method", ["stack", "ramp"])
@pytest.mark.parametrize("diff", ["independent", "consecutive"])
def test_readnoise__recovers_truth(nircam_darks, method, diff):
    ds = open_stack(nircam_darks.paths, chunk_rows=32)
    out = readnoise(ds, method=method, group_diff_type=diff).compute()
    assert out.readnoise.dims == ("y", "x") and out.readnoise.dtype == np.float32
    _check_unbiased(out.readnoise.values, nircam_darks.truth.readnoise_cds)
    n_diff = 5 if diff == "independent" else 9
    assert out.n_used.max() == 6 * 2 * n_diff


def test_readnoise__bias_correction_is_needed(nircam_darks):
    ds = open_stack(nircam_darks.paths)
    raw = readnoise(ds, bias_correction=False).readnoise.values
    ratio = raw / nircam_darks.truth.readnoise_cds
    se = ratio.std() / np.sqrt(ratio.size)
    # 60 samples clipped at 3 sigma: the plain clipped std is ~1.9 % low.
    assert ratio.mean() < 1 - 0.01 - 4 * se


def test_readnoise__odd_group_count(tmp_path):
    camp = simulate_campaign(tmp_path, 4, nints=3, ngroups=7, seed=5, subarray="SUB64P",
                             substrt=(200, 300), subsize=(64, 64))
    out = readnoise(open_stack(camp.paths)).compute()
    assert out.n_used.max() == 4 * 3 * 3  # pairs (0,1) (2,3) (4,5); group 6 unused
    _check_unbiased(out.readnoise.values, camp.truth.readnoise_cds)


def test_readnoise__flagged_groups_are_excluded(nircam_darks, tmp_path):
    """Jumps flagged JUMP_DET and groups flagged SATURATED leave no trace (small jumps
    are what sigma clipping alone cannot remove)."""
    rng = np.random.default_rng(3)
    paths = []
    for k, p in enumerate(nircam_darks.paths):
        ds = open_exposure(p)
        sci = ds.ramp.values.astype(np.float32)
        gdq = np.zeros(sci.shape, np.uint8)
        nint, ngroup, ny, nx = sci.shape
        hit = rng.random((nint, ny, nx)) < 0.6
        g_hit = rng.integers(1, ngroup, (nint, ny, nx))
        for i in range(nint):
            for g in range(1, ngroup):
                m = hit[i] & (g_hit[i] == g)
                sci[i, g:][:, m] += 40.0  # a 40 DN (~3 sigma) jump at group g
                gdq[i, g][m] |= 4  # JUMP_DET
        sat = rng.random((nint, ny, nx)) < 0.2
        for i in range(nint):
            for g in (ngroup - 2, ngroup - 1):
                sci[i, g][sat[i]] = 65535.0
                gdq[i, g][sat[i]] |= 2  # SATURATED
        paths.append(write_ramp_file(tmp_path / f"r{k}_ramp.fits", sci, gdq,
                                     header={"SUBARRAY": "SUB64P", "SUBSTRT1": 1, "SUBSTRT2": 1}))
    stack = open_stack(paths)
    out = readnoise(stack).compute()
    _check_unbiased(out.readnoise.values, nircam_darks.truth.readnoise_cds)
    # Without the flags, the same data give a badly wrong answer (the test can fail).
    blind = readnoise(stack.drop_vars("groupdq")).readnoise.values
    assert np.nanmean(blind / nircam_darks.truth.readnoise_cds) > 1.1


def test_readnoise__miri_drops_first_and_last_groups(miri_darks):
    ds = open_stack(miri_darks.paths)
    out = readnoise(ds)
    # 12 groups -> groups 5..10 -> 3 independent pairs x 2 integrations x 3 files
    assert int(out.n_used.max()) == 18
    assert out.attrs["parameters"]["drop_first_groups"] == 5
    assert out.attrs["parameters"]["drop_last_groups"] == 1
    full = readnoise(ds, drop_first_groups=0, drop_last_groups=0)
    assert int(full.n_used.max()) == 36
    _check_unbiased(full.readnoise.values, miri_darks.truth.readnoise_cds)
    with pytest.raises(ValueError, match="fewer than 2 groups"):
        readnoise(ds, drop_first_groups=10)


def test_readnoise__single_value(nircam_darks):
    ds = open_stack(nircam_darks.paths)
    full = readnoise(ds).readnoise.values
    one = readnoise(ds, single_value=True).readnoise.values
    want = sigma_clip(full.ravel(), sigma=3, maxiters=3).mean()
    assert np.unique(one).size == 1
    assert one[0, 0] == pytest.approx(want, rel=1e-6)


def test_single_value_region__nircam_full_frame_output():
    assert single_value_region({"INSTRUME": "NIRCAM", "SUBARRAY": "FULL", "DETECTOR": "NRCA1"},
                               2048) == slice(1536, 2048)  # flipped along x
    assert single_value_region({"INSTRUME": "NIRCAM", "SUBARRAY": "FULL", "DETECTOR": "NRCA2"},
                               2048) == slice(0, 512)
    assert single_value_region({"INSTRUME": "NIRCAM", "SUBARRAY": "SUB64P"}, 64) == slice(0, 64)
    assert single_value_region({"INSTRUME": "MIRI", "SUBARRAY": "FULL"}, 1032) == slice(0, 1032)


@pytest.mark.parametrize("chunks", [{"y": 7}, {"y": 50, "x": 33}, {"y": (60, 4), "x": (1, 63)}])
@pytest.mark.parametrize("kwargs", [{}, {"method": "ramp"}, {"single_value": True},
                                    {"group_diff_type": "consecutive"}])
def test_readnoise__chunked_equals_eager(nircam_darks, chunks, kwargs):
    ds = open_stack(nircam_darks.paths[:3])
    eager = readnoise(ds.load(), **kwargs)
    assert eager.readnoise.chunks is None
    chunked = readnoise(ds.chunk(chunks), **kwargs)
    assert chunked.readnoise.chunks is not None
    xr.testing.assert_equal(eager, chunked.compute())


def test_readnoise__lazy_and_chunk_errors(nircam_darks):
    ds = open_stack(nircam_darks.paths)
    with assert_lazy():
        out = readnoise(ds, single_value=True)
        readnoise(ds, method="ramp", group_diff_type="consecutive")
    assert out.readnoise.chunks is not None
    with pytest.raises(ValueError, match=r"single chunk along \['integration'\].*\.chunk\("):
        readnoise(ds.chunk(integration=2))
    with pytest.raises(ValueError, match="group_diff_type"):
        readnoise(ds, group_diff_type="pairs").compute()
