"""DARK: truth recovery, errors, layout, chunking, laziness, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

import daskref
from daskref import dq
from daskref.algorithms.dark import dark as dark_algorithm
from daskref.io.fits import InputError
from daskref.kernels.dark import dark_kernel, fill_from_rate, usable_samples
from daskref.prep.stack import prep_stack
from daskref.simulate import group_times, simulate_campaign, write_references
from daskref.testing import assert_lazy, count_reads

NIR_STEPS = "saturation,superbias,refpix,linearity,jump"


@pytest.fixture(scope="module")
def dark_product(badpix_darks):
    campaign, refs = badpix_darks
    product = daskref.dark(campaign.paths, **refs)
    return campaign, refs, daskref.compute([product])[0]


def _truth_signal(truth, ngroups):
    t = group_times(truth.attrs, ngroups)
    return truth.dark_current[None] * t[:, None, None]


def _pull(sci, expected, err, sel):
    return (sci[:, sel] - expected[:, sel]) / err[:, sel]


def _t_width(n):
    """Standard deviation of a Student t with n - 1 degrees of freedom (the pull of a
    mean against its estimated error)."""
    return np.sqrt((n - 1) / (n - 3))


def test_dark__recovers_injected_signal_with_pulls_of_width_one(dark_product):
    campaign, _, ds = dark_product
    truth = campaign.truth
    sci, err, n = ds["sci"].values[0], ds["err"].values[0], ds["n_used"].values[0]
    expected = _truth_signal(truth, sci.shape[0])
    normal = (truth.pixel_class == 0) & ~truth.reference
    # values from every integration (others have fewer samples, so heavier-tailed
    # pulls, as a mean against its estimated error should)
    full = (n == 20) & normal[None]
    assert full.sum() > 0.5 * 20 * normal.sum()
    pull = (sci[full] - expected[full]) / err[full]
    assert np.std(pull) == pytest.approx(_t_width(20), abs=0.05)
    # The mean is limited by the refpix offsets all pixels share: kTC noise averaged
    # over the reference pixels and the 20 integrations.
    common = truth.ktc_noise / np.sqrt(truth.reference.sum() * 20) / np.median(err[full])
    assert abs(np.mean(pull)) < 3 * common + 3 / np.sqrt(normal.sum())
    assert 0.8 < np.std(pull) < 1.3
    # fewer samples: still centred, of finite width
    few = (n >= 5) & (n < 20) & normal[None]
    assert abs(np.median((sci[few] - expected[few]) / err[few])) < 0.05


def test_dark__hot_pixel_rates_within_3_percent(dark_product):
    campaign, _, ds = dark_product
    truth = campaign.truth
    reliable = ds["dq"].values == 0  # no group filled from the rate
    hot = truth.class_mask("hot") & reliable
    assert hot.sum() > 0.8 * truth.class_mask("hot").sum()
    ratio = ds["dark_rate"].values[hot] / truth.dark_current[hot]
    assert np.median(np.abs(ratio - 1)) < 0.01
    assert np.mean(np.abs(ratio - 1) < 0.03) >= 0.98
    hot = (truth.class_mask("hot") | truth.class_mask("warm")) & reliable
    # and the per-group signal of hot and warm pixels agrees within its errors
    sci, err = ds["sci"].values[0], ds["err"].values[0]
    pull = _pull(sci, _truth_signal(truth, sci.shape[0]), err, hot)
    assert np.nanstd(pull) < 1.3


def test_dark__avdrkcur_in_electrons(dark_product):
    campaign, _, ds = dark_product
    truth = campaign.truth
    np.testing.assert_allclose(ds["avdrkcur"].values, ds["dark_rate"].values * truth.gain,
                               rtol=1e-6)
    normal = (truth.pixel_class == 0) & ~truth.reference
    mean_e = truth.dark_current[normal].mean() * truth.gain
    assert float(ds["avdrkcur_mean"]) == pytest.approx(mean_e, abs=0.01)


def test_dark__median_error_accounts_for_its_efficiency(badpix_darks):
    campaign, refs = badpix_darks
    mean = daskref.dark(campaign.paths, **refs)
    median = daskref.dark(campaign.paths, stat_to_use="median", **refs)
    mean, median = daskref.compute([mean, median])
    truth = campaign.truth
    normal = (truth.pixel_class == 0) & ~truth.reference
    ratio = np.nanmedian(median["err"].values[0][:, normal] / mean["err"].values[0][:, normal])
    assert ratio == pytest.approx(1.22, abs=0.05)  # Monte Carlo factor at n = 20
    expected = _truth_signal(truth, 20)
    full = (median["n_used"].values[0] == 20) & normal[None]
    pull = (median["sci"].values[0][full] - expected[full]) / median["err"].values[0][full]
    assert np.std(pull) == pytest.approx(_t_width(20), abs=0.06)


def test_dark__written_file_is_a_valid_darkmodel(dark_product, tmp_path):
    from stdatamodels.jwst import datamodels

    campaign, refs, _ = dark_product
    out = tmp_path / "dark.fits"
    daskref.write(daskref.dark(campaign.paths, **refs), out, pedigree="SIMULATION")
    with datamodels.DarkModel(str(out)) as model:
        model.validate()
        assert model.data.shape == (20, 160, 160)
        assert model.dq.shape == (160, 160)
        assert model.err.shape == (20, 160, 160)
        assert model.average_dark_current.shape == (160, 160)
        assert model.meta.exposure.ngroups == 20
        assert model.meta.exposure.nframes == 1
        assert model.meta.exposure.groupgap == 0
        assert model.meta.exposure.readpatt == "RAPID"
        assert model.meta.exposure.type == "NRC_DARK"
        assert model.meta.subarray.name == "SUB160"
        assert model.meta.exposure.average_dark_current > 0
    header = fits.getheader(out)
    history = " ".join(header["HISTORY"])
    assert "stat_to_use='mean'" in history and "dark_000_uncal.fits" in history
    contrib = fits.getdata(tmp_path / "dark_contribution.fits")
    assert contrib.shape == (20, 160, 160) and contrib.max() <= 20
    assert fits.getheader(tmp_path / "dark_darkrate.fits")["BUNIT"] == "DN/s"


def test_dark__miri_is_4d_with_the_first_integration_apart(tmp_path):
    from stdatamodels.jwst import datamodels

    campaign = simulate_campaign(tmp_path / "in", 3, nints=3, ngroups=8, seed=5,
                                 instrument="MIRI", subarray="SUB64", substrt=(1, 779),
                                 subsize=(72, 64), readnoise=20.0, dark_current=2.0,
                                 tframe=10.0)
    refs = write_references(campaign.truth, tmp_path / "refs", 8,
                            kinds=["saturation", "linearity", "readnoise", "gain"])
    product = daskref.dark(campaign.paths, **refs)
    assert product.attrs["prep_steps"] == ["saturation", "firstframe", "lastframe",
                                           "linearity", "jump"]
    out = daskref.write(product, tmp_path / "miri_dark.fits", pedigree="SIMULATION")[0]
    with datamodels.DarkMIRIModel(str(out)) as model:
        model.validate()
        assert model.data.shape == (2, 8, 64, 72)
        assert model.dq.shape == (2, 1, 64, 72)
        assert model.meta.exposure.type == "MIR_DARKIMG"
    counts = fits.getdata(tmp_path / "miri_dark_contribution.fits")
    assert counts.shape == (2, 8, 64, 72)
    assert counts[0].max() == 3 and counts[1].max() == 6  # first ints / the later ones
    # the MIRI raw ramps were not superbias-subtracted: the dark holds the bias too,
    # and grows by the dark rate
    rate = fits.getdata(tmp_path / "miri_dark_darkrate.fits")
    science = ~campaign.truth.reference
    rate_err = 20.0 / np.sqrt(2) * np.sqrt(12 / 6**3) / 10.0 / np.sqrt(6)  # 6 groups, 6 ints
    resid = (rate - campaign.truth.dark_current)[science]
    assert np.median(resid) == pytest.approx(0, abs=5 * rate_err / np.sqrt(resid.size))
    assert np.std(resid) < 2 * rate_err


def test_dark_kernel__excludes_after_first_jump_and_saturated_but_not_do_not_use():
    ramp = np.arange(6, dtype=np.float32)[None, None, :].repeat(2, 1)  # (1 pix, 2 ints, 6)
    gdq = np.zeros(ramp.shape, np.uint8)
    gdq[0, 0, 3] = dq.JUMP_DET
    gdq[0, 1, 1] = dq.SATURATED
    gdq[0, 1, 4] = dq.DO_NOT_USE
    x = usable_samples(ramp, gdq)
    assert np.isnan(x[0, 0, 3:]).all() and np.isfinite(x[0, 0, :3]).all()
    assert np.isnan(x[0, 1, 1]) and np.isfinite(x[0, 1, 4])


def test_fill_from_rate__fills_missing_groups_from_the_fitted_line():
    t = np.arange(1, 7, dtype=float)
    value = np.array([[2 * t + 1]])
    value[0, 0, 4:] = np.nan
    n_used = np.where(np.isfinite(value), 5, 0)
    err = np.where(np.isfinite(value), 0.5, np.nan)
    v, e, rate, filled = fill_from_rate(value, err, n_used, t, np.ones(6, bool))
    np.testing.assert_allclose(v[0, 0], 2 * t + 1, rtol=1e-6)
    assert rate[0, 0] == pytest.approx(2.0)
    assert filled[0, 0] == 1 and np.all(e[0, 0, 4:] == pytest.approx(0.5))
    # nothing measured: 0 and code 2
    v, _, rate, filled = fill_from_rate(np.full((1, 6), np.nan), np.full((1, 6), np.nan),
                                        np.zeros((1, 6), int), t, np.ones(6, bool))
    assert filled[0] == 2 and np.all(v == 0) and np.isnan(rate[0])


def test_dark__pixel_with_a_jump_in_every_integration_is_filled_and_flagged():
    rng = np.random.default_rng(3)
    nint, ng = 8, 10
    t = np.arange(1, ng + 1, dtype=float)
    ramp = (0.5 * t + rng.normal(0, 0.1, (3, nint, ng))).astype(np.float32)
    gdq = np.zeros(ramp.shape, np.uint8)
    gdq[1, :, 6] = dq.JUMP_DET  # pixel 1: groups 6.. never usable
    sci, err, n, rate, filled = dark_kernel(ramp, gdq, np.zeros(nint, np.intp), t,
                                            np.ones(ng, bool), nplanes=1, stat="mean",
                                            clip=True, sigma=3.0, maxiters=5)
    assert filled.tolist() == [0, 1, 0]
    assert (n[1, 0, 6:] == 0).all()
    np.testing.assert_allclose(sci[1, 0, 6:], 0.5 * t[6:], atol=0.1)
    assert rate[1] == pytest.approx(0.5, abs=0.02)


def test_dark__chunked_equals_eager(nircam_darks, tmp_path):
    refs = write_references(nircam_darks.truth, tmp_path, 10,
                            kinds=["superbias", "readnoise", "gain"])
    stack = prep_stack(nircam_darks.paths, steps="superbias,refpix,jump", **refs)
    eager = stack.compute()
    a = dark_algorithm(eager)
    b = daskref.compute([dark_algorithm(stack.chunk({"y": 7, "x": 13}))])[0]
    for name in ("sci", "err", "n_used", "dq", "dark_rate"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_dark__is_lazy_and_reads_each_input_once(nircam_darks, tmp_path):
    refs = write_references(nircam_darks.truth, tmp_path, 10,
                            kinds=["superbias", "readnoise", "gain"])
    with count_reads() as reads:
        with assert_lazy():
            product = daskref.dark(nircam_darks.paths, steps="superbias,refpix,jump", **refs)
        assert not reads
        daskref.compute([product])
    sizes = {str(p): p.stat().st_size for p in nircam_darks.paths}
    for path, nbytes in reads.items():
        if path in sizes:
            assert nbytes == 2 * 10 * 64 * 64 * 2  # the file's SCI bytes, exactly once


def test_dark__inputs_without_jump_flags_are_refused(nircam_darks, tmp_path):
    refs = write_references(nircam_darks.truth, tmp_path, 10, kinds=["superbias"])
    with pytest.raises(InputError, match="dark_000_uncal.fits.*jump step"):
        daskref.dark(nircam_darks.paths, steps="superbias,refpix", **refs)


def test_dark__mixed_group_counts_are_refused_before_any_work(tmp_path):
    campaign = simulate_campaign(tmp_path, 2, nints=1, ngroups=5, ngroups_each=[5, 6],
                                 subarray="SUB64P", subsize=(64, 64))
    with pytest.raises(InputError, match="dark_001_uncal.fits: has 6 groups"):
        daskref.dark(campaign.paths, readnoise=10.0, gain=2.0, steps="jump")


def test_dark__accepts_an_opened_stack_and_reuses_its_reads(nircam_darks, tmp_path):
    refs = write_references(nircam_darks.truth, tmp_path, 10, kinds=["readnoise", "gain"])
    with count_reads() as reads:
        stack = daskref.open_stack(nircam_darks.paths, chunk_mb=0.05)
        sb = daskref.superbias(stack)
        rn = daskref.readnoise(stack)
        dk = daskref.dark(stack, steps="superbias,refpix,jump", superbias=sb, **refs)
        daskref.compute([sb, rn, dk])
    for path in map(str, nircam_darks.paths):
        assert reads[path] == 2 * 10 * 64 * 64 * 2  # one read for all three products
    assert isinstance(dk, xr.Dataset)
