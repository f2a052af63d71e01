import numpy as np
import pytest
import xarray as xr
from scipy.stats import binom, norm, poisson

from daskref import dq
from daskref.algorithms.steps.jump import jump
from daskref.kernels.jump import detect_jumps
from daskref.testing import assert_lazy

DIMS = ("integration", "group", "y", "x")
GAIN = 2.0  # e-/DN


def simulate(
    nint,
    ngroup,
    ny,
    nx,
    *,
    flux,
    read_sigma,
    seed,
    cr_fraction=0.0,
    cr_sigma=(15.0, 50.0),
    gaussian_signal=False,
):
    """Ramps in DN with Poisson signal, per-read noise and optional cosmic rays.

    Independent RNG streams per effect, so switching CRs on leaves the noise as is.
    ``flux`` in DN/group, ``read_sigma`` the single-read noise in DN (CDS noise is
    ``sqrt(2) * read_sigma``). ``gaussian_signal`` draws the photon noise from its
    Gaussian limit instead of Poisson counts. Returns the Dataset and the CR truth
    (integration, group, y, x) bool, True at the first group after a hit.
    """
    s_read, s_poisson, s_cr = np.random.SeedSequence(seed).spawn(3)
    shape = (nint, ngroup, ny, nx)
    rng_signal = np.random.default_rng(s_poisson)
    if gaussian_signal:
        electrons = rng_signal.normal(flux * GAIN, np.sqrt(flux * GAIN), shape).cumsum(axis=1)
    else:
        electrons = rng_signal.poisson(flux * GAIN, shape).cumsum(axis=1)
    ramp = 1.0e4 + electrons / GAIN + np.random.default_rng(s_read).normal(0, read_sigma, shape)
    truth = np.zeros(shape, bool)
    if cr_fraction:
        rng = np.random.default_rng(s_cr)
        hit = rng.random((nint, ny, nx)) < cr_fraction
        i, y, x = np.nonzero(hit)
        g = rng.integers(1, ngroup, size=i.size)
        sigma = np.sqrt(flux / GAIN + 2 * read_sigma**2)
        amp = rng.uniform(*cr_sigma, size=i.size) * sigma
        for ii, gg, yy, xx, aa in zip(i, g, y, x, amp, strict=True):
            ramp[ii, gg:, yy, xx] += aa
        truth[i, g, y, x] = True
    ds = xr.Dataset(
        {
            "ramp": (DIMS, ramp.astype(np.float32)),
            "groupdq": (DIMS, np.zeros(shape, np.uint8)),
            "pixeldq": (("y", "x"), np.zeros((ny, nx), np.uint32)),
        },
        attrs={"INSTRUME": "NIRCAM", "NFRAMES": 1, "GROUPGAP": 0, "NGROUPS": ngroup, "NINTS": nint},
    )
    return ds, truth


def test_jump__recall_of_strong_cosmic_rays():
    ds, truth = simulate(2, 20, 40, 40, flux=20.0, read_sigma=5.0, seed=11, cr_fraction=0.2)
    out = jump(ds, readnoise=5.0 * np.sqrt(2), gain=GAIN, flag_4_neighbors=False).compute()
    found = (out.groupdq.values & dq.JUMP_DET) != 0
    n_cr = int(truth.sum())
    misses = int((truth & ~found).sum())
    assert n_cr > 500
    # 15-50 sigma jumps: a miss needs a >11 sigma noise excursion, so the true miss
    # rate is ~0. Tolerance: even at a miss rate of 0.2 %, the number of misses
    # exceeds binom.ppf(0.999, n_cr, 0.002) only 0.1 % of the time.
    assert misses <= binom.ppf(0.999, n_cr, 0.002)
    assert 1 - misses / n_cr > 0.99


def test_jump__false_positive_rate_matches_gaussian_tail():
    # CR-free, photon-noise-dominated ramps (differences nearly independent). The
    # photon noise is drawn from its Gaussian limit: Poisson counts of 200 e- have
    # skewness 0.07, whose second-order Edgeworth term alone lifts the two-sided
    # 4-sigma tail by ~25 %; that is a property of the noise, not of the algorithm.
    nint, ngroup, ny, nx = 2, 101, 48, 48
    ds, _ = simulate(
        nint, ngroup, ny, nx, flux=100.0, read_sigma=1.0, seed=12, gaussian_signal=True
    )
    n_diff = nint * (ngroup - 1) * ny * nx
    n = ngroup - 1
    for t in (3.0, 4.0):
        out = jump(
            ds, readnoise=np.sqrt(2.0), gain=GAIN, rejection_threshold=t, flag_4_neighbors=False
        )
        k = int(((out.groupdq.values & dq.JUMP_DET) != 0).sum())
        # Each difference d ~ N(mu, sigma^2) and the kernel's sigma is the true one,
        # so with a known mu P(flag) = 2 * Phi(-t). mu is estimated per pixel by the
        # median of the n - 1 smallest of n differences, which (to first order in 1/n)
        #  * sits delta = sqrt(2 pi) / (2 n) sigma low (median of n - 1 of n samples is
        #    the (1/2 - 1/2n) quantile),
        #  * scatters with variance (pi / 2) sigma^2 / (n - 1) * (1 + (4/pi) asin(rho)),
        #    rho = -read_var / sigma^2 the lag-1 correlation of the differences; an
        #    outlier does not move the median, so this adds in quadrature: s^2 = 1 + v.
        # p = Phi(-(t - delta) / s) + Phi(-(t + delta) / s): at n = 100 that is +7 %
        # (t = 3) and +14 % (t = 4) above the nominal 2 Phi(-t).
        sigma2 = 100.0 / GAIN + 2 * 1.0**2
        rho = -1.0 / sigma2
        delta = np.sqrt(2 * np.pi) / (2 * n)
        s = np.sqrt(1 + np.pi / 2 / (n - 1) * (1 + 4 / np.pi * np.arcsin(rho)))
        p = norm.sf((t - delta) / s) + norm.sf((t + delta) / s)
        assert p == pytest.approx(2 * norm.sf(t), rel=0.2)
        mean = n_diff * p
        # Binomial tolerance: k ~ Binomial(n_diff, p) (flags are nearly independent),
        # sd = sqrt(n_diff p (1 - p)); allow 4 sd, plus 3 % of the mean for the
        # neglected higher-order terms of p (30 seeds: measured/p = 0.97 at t = 3, 0.96
        # at t = 4). At t = 3: mean ~ 1.3e3, sd ~ 37 (2.7 %); at t = 4 (the default):
        # mean ~ 33, so use Poisson quantiles (with +-3 %) instead.
        if mean > 200:
            tol = 4 * np.sqrt(n_diff * p * (1 - p)) + 0.03 * mean
            assert abs(k - mean) <= tol, (t, k, mean, tol)
        else:
            assert poisson.ppf(1e-4, 0.97 * mean) <= k <= poisson.ppf(1 - 1e-4, 1.03 * mean)


def _chunked(ds, chunks):
    return ds.chunk(
        {
            "integration": chunks.get("integration", -1),
            "group": -1,
            "y": chunks["y"],
            "x": chunks["x"],
        }
    )


@pytest.fixture(scope="module")
def cr_ramp():
    ds, truth = simulate(
        2, 8, 23, 19, flux=20.0, read_sigma=5.0, seed=21, cr_fraction=0.1, cr_sigma=(12.0, 60.0)
    )
    ds["groupdq"][0, 6:, 3, 4] = dq.SATURATED
    return ds, truth


@pytest.mark.parametrize(
    "chunks",
    [
        {"y": 5, "x": 7},
        {"y": (1, 10, 12), "x": -1},
        {"y": (11, 1, 11), "x": (2, 17), "integration": 1},
        {"y": 1, "x": (18, 1)},
    ],
)
def test_jump__chunked_equals_eager(cr_ramp, chunks):
    ds, _ = cr_ramp
    kw = dict(readnoise=5.0 * np.sqrt(2), gain=GAIN)
    eager = jump(ds, **kw)
    lazy = jump(_chunked(ds, chunks), **kw)
    assert lazy.groupdq.chunks is not None
    assert lazy.pixeldq.chunks is not None
    xr.testing.assert_equal(eager, lazy.compute())
    # the eager path is the plain kernel on the whole cube
    direct = detect_jumps(ds.ramp.values, ds.groupdq.values, 5.0 * np.sqrt(2), GAIN)
    np.testing.assert_array_equal(eager.groupdq.values, direct)
    # neighbour flagging did happen in this data
    assert (eager.groupdq.values & dq.JUMP_DET).sum() > (
        jump(ds, flag_4_neighbors=False, **kw).groupdq.values & dq.JUMP_DET
    ).sum()


def test_jump__neighbours_flagged_across_chunk_boundaries():
    ds, _ = simulate(1, 10, 8, 8, flux=20.0, read_sigma=1.0, seed=5)
    sigma = np.sqrt(20.0 / GAIN + 2.0)
    ds["ramp"][0, 4:, 3, 3] += 30 * sigma  # a corner of the 4x4 chunk grid below
    ds["ramp"][0, 6:, 4, 7] += 30 * sigma  # at the right edge of the detector
    chunked = jump(ds.chunk(y=4, x=4), readnoise=np.sqrt(2.0), gain=GAIN)
    jumps = (chunked.groupdq.values & dq.JUMP_DET) != 0
    assert {tuple(p) for p in np.argwhere(jumps[0, 4])} == {(3, 3), (2, 3), (4, 3), (3, 2), (3, 4)}
    assert {tuple(p) for p in np.argwhere(jumps[0, 6])} == {(4, 7), (3, 7), (5, 7), (4, 6)}
    assert jumps.sum() == 9
    xr.testing.assert_equal(chunked.compute(), jump(ds, readnoise=np.sqrt(2.0), gain=GAIN))


def test_jump__is_lazy_and_does_not_mutate(cr_ramp):
    ds, _ = cr_ramp
    lazy_in = _chunked(ds, {"y": 8, "x": 8})
    before = lazy_in.groupdq.values.copy()
    gain = xr.DataArray(np.full((23, 19), GAIN), dims=("y", "x")).chunk(y=5)
    with assert_lazy():
        out = jump(lazy_in, readnoise=5.0 * np.sqrt(2), gain=gain)
    assert out.attrs["S_JUMP"] == "COMPLETE"
    assert "S_JUMP" not in lazy_in.attrs
    np.testing.assert_array_equal(lazy_in.groupdq.values, before)
    assert out.groupdq.dtype == np.uint8 and out.pixeldq.dtype == np.uint32


def test_jump__bad_gain_flags_pixeldq_and_is_not_searched(cr_ramp):
    ds, truth = cr_ramp
    gain = np.full((23, 19), GAIN)
    i, g, y, x = np.argwhere(truth)[0]
    gain[y, x] = np.nan
    gain[0, 0] = 0.0
    out = jump(ds, readnoise=5.0 * np.sqrt(2), gain=gain, flag_4_neighbors=False).compute()
    bad = dq.NO_GAIN_VALUE | dq.DO_NOT_USE
    assert out.pixeldq.values[y, x] == bad and out.pixeldq.values[0, 0] == bad
    assert (out.pixeldq.values == bad).sum() == 2
    assert not (out.groupdq.values[:, :, y, x] & dq.JUMP_DET).any()


def test_jump__full_frame_reference_cut_to_subarray(cr_ramp):
    ds, _ = cr_ramp
    sub = ds.assign_attrs(SUBSTRT1=101, SUBSTRT2=201, SUBSIZE1=19, SUBSIZE2=23)
    rn_full = np.full((2048, 2048), 99.0)
    rn_full[200:223, 100:119] = 5.0 * np.sqrt(2)
    out = jump(sub, readnoise=rn_full, gain=GAIN)
    xr.testing.assert_equal(out.groupdq, jump(sub, readnoise=5.0 * np.sqrt(2), gain=GAIN).groupdq)


def test_jump__needs_one_group_chunk(cr_ramp):
    ds, _ = cr_ramp
    with pytest.raises(ValueError, match="single chunk along \\['group'\\]"):
        jump(ds.chunk(group=3), readnoise=1.0, gain=1.0)


def test_jump__skipped_with_fewer_than_three_groups(cr_ramp):
    ds, _ = cr_ramp
    out = jump(ds.isel(group=slice(0, 2)), readnoise=1.0, gain=1.0)
    assert out.attrs["S_JUMP"] == "SKIPPED"
    xr.testing.assert_equal(out.groupdq, ds.groupdq.isel(group=slice(0, 2)))
