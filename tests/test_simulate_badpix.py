"""Bad-pixel classes injected by ``daskref.simulate`` (truth for a bad-pixel search in darks)."""

import dataclasses

import numpy as np
import pytest
from astropy.io import fits

from daskref.cli import main
from daskref.simulate import (
    BAD_PIXEL_DEFAULTS,
    FLAT_CLASSES,
    FLAT_DEFECT_DEFAULTS,
    PIXEL_CLASSES,
    DetectorTruth,
    group_times,
    make_truth,
    simulate_exposure,
    write_truth,
)

NEW_CLASSES = ["warm", "noisy", "rc", "inverse_rc", "telegraph", "low_pedestal", "saturated"]
ZERO_FRACTIONS = {f"{name}_fraction": 0.0 for name in NEW_CLASSES}
NINTS, NGROUPS = 20, 16


def _sci(path):
    return fits.getdata(path, "SCI").astype(np.float64)


@pytest.fixture(scope="module")
def badpix(tmp_path_factory):
    """A 64 x 64 window with 2 % of each class, one 20-integration x 16-group dark."""
    truth = make_truth(subarray="SUB64P", subsize=(64, 64), tframe=10.7, ktc_noise=10.0,
                       seed=11, **{f"{name}_fraction": 0.02 for name in NEW_CLASSES})
    path = tmp_path_factory.mktemp("badpix") / "dark_uncal.fits"
    simulate_exposure(path, truth, nints=NINTS, ngroups=NGROUPS, seed=0)
    return truth, _sci(path), group_times(truth.attrs, NGROUPS)


def _pixels(data, truth, name):
    """(int, group, pixel) ramps of one class, with the class's truth at those pixels."""
    mask = truth.class_mask(name)
    assert mask.sum() >= 20, f"too few {name} pixels for the test"
    return data[:, :, mask], mask


def test_classes__disjoint_off_reference_pixels_at_the_requested_fractions():
    fractions = dict(zip(NEW_CLASSES, [0.01, 0.02, 0.005, 0.01, 0.015, 0.01, 0.005],
                         strict=True))
    truth = make_truth(subarray="SUB400P", subsize=(400, 400), hot_fraction=0.01, seed=5,
                       **{f"{k}_fraction": v for k, v in fractions.items()})
    pc = truth.pixel_class
    assert pc.dtype == np.uint8 and pc.shape == truth.shape
    assert set(np.unique(pc)) <= set(PIXEL_CLASSES.values())
    assert np.array_equal(truth.class_mask("hot"), truth.hot)
    assert not pc[truth.reference].any()
    masks = {name: truth.class_mask(name) for name in PIXEL_CLASSES}
    assert np.array_equal(sum(m.astype(int) for m in masks.values()), np.ones(truth.shape))
    n = int((~truth.reference).sum())
    for name, f in {"hot": 0.01, **fractions}.items():
        tol = 5 * np.sqrt(n * f * (1 - f))
        assert abs(masks[name].sum() - n * f) < tol, name
    with pytest.raises(KeyError):
        truth.class_mask("lukewarm")


def test_classes__parameter_maps_and_truth():
    kw = {f"{name}_fraction": 0.02 for name in NEW_CLASSES}
    truth = make_truth(subarray="SUB256", subsize=(256, 256), saturation=60000.0, seed=2, **kw)
    base = make_truth(subarray="SUB256", subsize=(256, 256), saturation=60000.0, seed=2)
    m = {name: truth.class_mask(name) for name in PIXEL_CLASSES}
    tgroup = float(truth.attrs["TGROUP"])
    # the existing draws are untouched where no new class was put
    plain = m["normal"] | m["hot"]
    for attr in ("bias", "readnoise_cds", "dark_current", "flux"):
        np.testing.assert_array_equal(getattr(truth, attr)[plain], getattr(base, attr)[plain])
    np.testing.assert_array_equal(truth.hot, base.hot)
    # warm: uniform rate; saturated and reference: no dark current
    assert np.all((truth.dark_current[m["warm"]] >= 0.1) & (truth.dark_current[m["warm"]] <= 0.25))
    assert not truth.dark_current[m["saturated"] | truth.reference].any()
    np.testing.assert_array_equal(truth.bias[m["saturated"]], 60000.0)
    # noisy: the factor is in readnoise_cds
    f = truth.noise_factor
    assert np.all((f[m["noisy"]] >= 2.5) & (f[m["noisy"]] <= 4.0)) and np.all(f[~m["noisy"]] == 1)
    np.testing.assert_allclose(truth.readnoise_cds, base.readnoise_cds * f, rtol=1e-12)
    # RC: signed amplitude, tau in seconds
    a, tau = truth.rc_amplitude, truth.rc_tau
    assert np.all((a[m["rc"]] >= 300) & (a[m["rc"]] <= 1000))
    assert np.all((-a[m["inverse_rc"]] >= 300) & (-a[m["inverse_rc"]] <= 1000))
    rc = m["rc"] | m["inverse_rc"]
    assert np.all((tau[rc] >= 1.0 * tgroup) & (tau[rc] <= 3.0 * tgroup))
    assert not a[~rc].any() and not tau[~rc].any()
    tel, low = truth.telegraph_amplitude, truth.low_pedestal_offset
    assert np.all((tel[m["telegraph"]] >= 150) & (tel[m["telegraph"]] <= 400))
    assert not tel[~m["telegraph"]].any()
    assert np.all((low[m["low_pedestal"]] >= 200) & (low[m["low_pedestal"]] <= 600))
    assert not low[~m["low_pedestal"]].any()


def test_zero_fractions__same_truth_and_same_exposure(tmp_path):
    a, b = make_truth(), make_truth(**ZERO_FRACTIONS)
    for f in dataclasses.fields(DetectorTruth):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if isinstance(va, np.ndarray):
            np.testing.assert_array_equal(va, vb, err_msg=f.name)
        else:
            assert va == vb, f.name
    assert set(np.unique(a.pixel_class)) == {0, 1}

    kw = dict(subarray="SUB64P", subsize=(64, 64), tframe=10.7, cosmic_ray_rate=1e-3,
              row_noise=3.0, amp_offset_sigma=2.0, hot_fraction=0.01, seed=4)
    t_default, t_zero = make_truth(**kw), make_truth(**kw, **ZERO_FRACTIONS)
    # a truth built the old way (no class fields) defaults the new maps
    old_fields = ["attrs", "bias", "readnoise_cds", "dark_current", "hot", "gain", "flux",
                  "reference", "ktc_noise", "amp_offset_sigma", "odd_even_offset", "row_noise",
                  "row_noise_scale", "saturation", "cosmic_ray_rate", "seed"]
    t_old = DetectorTruth(**{k: getattr(t_default, k) for k in old_fields})
    assert np.array_equal(t_old.class_mask("hot"), t_old.hot)
    assert np.all(t_old.noise_factor == 1) and not t_old.rc_amplitude.any()
    data = []
    for k, truth in enumerate([t_default, t_zero, t_old]):
        e = simulate_exposure(tmp_path / f"e{k}.fits", truth, nints=2, ngroups=4, seed=1)
        data.append((fits.getdata(e.path, "SCI"), e.cosmic_rays))
    for sci, crs in data[1:]:
        np.testing.assert_array_equal(sci, data[0][0])
        np.testing.assert_array_equal(crs, data[0][1])


def test_rc__ramp_minus_normal_ramp_follows_the_exponential(badpix):
    truth, data, t = badpix
    sigma_abs = np.hypot(truth.ktc_noise, 14.0 * 1.2 / np.sqrt(2)) / np.sqrt(NINTS)
    sigma_diff = 14.0 * 1.2 / np.sqrt(NINTS)
    for name, sign in (("rc", 1), ("inverse_rc", -1)):
        ramps, mask = _pixels(data, truth, name)
        a, tau = truth.rc_amplitude[mask], truth.rc_tau[mask]
        assert np.all(np.sign(a) == sign)
        expected = a[None, :] * (1 - np.exp(-t[:, None] / tau[None, :]))  # (group, pixel)
        normal = truth.bias[mask][None, :] + truth.dark_current[mask][None, :] * t[:, None]
        excess = ramps.mean(axis=0) - normal
        assert np.all(np.abs(excess - expected) < 6 * sigma_abs + 1), name
        diff = excess - excess[:1]
        assert np.all(np.abs(diff - (expected - expected[:1])) < 6 * sigma_diff + 1), name
        # RC lifts the ramp by about A, inverse RC pulls it down
        assert np.all(sign * excess[-1] > 250)


def test_telegraph__group_differences_step_by_the_amplitude(badpix, tmp_path):
    truth, data, t = badpix
    ramps, mask = _pixels(data, truth, "telegraph")
    amp = truth.telegraph_amplitude[mask]
    d = np.diff(ramps, axis=1) - truth.dark_current[mask] * np.diff(t)[:, None]
    k = np.rint(d / amp)
    assert set(np.unique(k)) == {-1.0, 0.0, 1.0}
    assert np.all(np.abs(d - k * amp) < 6 * truth.readnoise_cds[mask])
    # two levels: non-zero steps alternate in sign within an integration
    for i in range(NINTS):
        for p in range(mask.sum()):
            steps = k[i, :, p][k[i, :, p] != 0]
            assert np.all(steps[1:] == -steps[:-1])
    # flips at the switch probability
    n = k.size
    p_switch = truth.telegraph_switch_probability
    assert abs(np.count_nonzero(k) / n - p_switch) < 5 * np.sqrt(p_switch * (1 - p_switch) / n)
    # levels: 0 or A above the bias (the state of group 0 is random)
    level0 = ramps[:, 0] - truth.bias[mask] - truth.dark_current[mask] * t[0]
    state0 = np.rint(level0 / amp)
    assert set(np.unique(state0)) == {0.0, 1.0}
    # every exposure has its own telegraph states
    other = tmp_path / "other_uncal.fits"
    simulate_exposure(other, truth, nints=NINTS, ngroups=NGROUPS, seed=1)
    d2 = np.diff(_sci(other)[:, :, mask], axis=1)
    assert not np.array_equal(np.rint(d2 / amp), k)


def test_low_pedestal__group0_low_by_the_offset_in_most_integrations(badpix):
    truth, data, t = badpix
    ramps, mask = _pixels(data, truth, "low_pedestal")
    offset = truth.low_pedestal_offset[mask]
    sigma = np.hypot(truth.ktc_noise, truth.readnoise_cds[mask] / np.sqrt(2))
    x0 = ramps[:, 0] - truth.bias[mask] - truth.dark_current[mask] * t[0]
    low = x0 < -offset / 2
    assert np.all(np.abs(x0 + low * offset) < 6 * sigma)
    # low for the whole integration
    x_last = ramps[:, -1] - truth.bias[mask] - truth.dark_current[mask] * t[-1]
    np.testing.assert_array_equal(x_last < -offset / 2, low)
    p = truth.low_pedestal_int_fraction
    assert p == 0.95
    assert abs(low.mean() - p) < 5 * np.sqrt(p * (1 - p) / low.size)
    # normal pixels are never low
    normal = truth.class_mask("normal")
    xn = data[:, 0][:, normal] - truth.bias[normal]
    assert xn.min() > -8 * np.hypot(truth.ktc_noise, 14.0)


def test_saturated__every_group_reads_the_saturation_level(badpix, tmp_path):
    truth, data, _ = badpix
    ramps, _ = _pixels(data, truth, "saturated")
    assert np.all(ramps == 65535)
    assert data[:, :, ~truth.class_mask("saturated")].max() < 65535
    low = make_truth(subarray="SUB64P", subsize=(64, 64), saturation=60000.0,
                     saturated_fraction=0.05, seed=1)
    path = tmp_path / "sat_uncal.fits"
    simulate_exposure(path, low, nints=3, ngroups=4)
    sci = fits.getdata(path, "SCI")
    assert np.all(sci[:, :, low.class_mask("saturated")] == 60000)
    np.testing.assert_array_equal(low.expected_group0()[low.class_mask("saturated")], 60000.0)


def test_noisy__cds_scatter_larger_by_the_factor(badpix):
    truth, data, t = badpix
    # independent CDS pairs (groups 1-0, 3-2, ...)
    cds = data[:, 1::2] - data[:, 0::2]
    for name in ("noisy", "normal"):
        mask = truth.class_mask(name)
        measured = cds[:, :, mask].reshape(-1, mask.sum()).std(axis=0, ddof=1)
        base = truth.readnoise_cds[mask] / truth.noise_factor[mask]
        ratio = measured / base / truth.noise_factor[mask]
        n = cds.shape[0] * cds.shape[1]
        tol = 5 / np.sqrt(2 * (n - 1))
        assert np.all(np.abs(ratio - 1) < tol), name
        assert abs(ratio.mean() - 1) < 5 * tol / np.sqrt(mask.sum()) + 0.01, name
        if name == "noisy":
            assert np.all(measured / base > 2.0)


def test_warm__mean_slope_matches_the_rate(badpix):
    truth, data, t = badpix
    ramps, mask = _pixels(data, truth, "warm")
    rate = truth.dark_current[mask]
    assert np.all((rate >= 0.1) & (rate <= 0.25))
    tc = t - t.mean()
    slopes = np.einsum("g,igp->ip", tc, ramps) / (tc**2).sum()  # (int, pixel), DN/s
    slope = slopes.mean(axis=0)
    read = (truth.readnoise_cds[mask] / np.sqrt(2)) ** 2 / (tc**2).sum()
    poisson = 1.2 * rate / (truth.gain * (t[-1] - t[0]))
    sigma = np.sqrt((read + poisson) / NINTS)
    assert np.all(np.abs(slope - rate) < 5 * sigma)
    assert abs((slope - rate).mean()) < 5 * np.sqrt((sigma**2).sum()) / mask.sum()
    # distinct from normal pixels
    normal = truth.class_mask("normal")
    normal_slopes = np.einsum("g,igp->p", tc, data[:, :, normal]) / (tc**2).sum() / NINTS
    assert np.median(normal_slopes) < 0.05 < slope.min()


def test_write_truth__pixel_class_and_parameter_maps(badpix, tmp_path):
    truth, _, _ = badpix
    path = write_truth(truth, tmp_path / "truth.fits")
    with fits.open(path) as hdul:
        names = [h.name for h in hdul[1:]]
        assert names[:6] == ["BIAS", "GROUP0", "READNOISE_CDS", "DARK_CURRENT", "HOT", "FLUX"]
        assert hdul["PIXEL_CLASS"].data.dtype == np.uint8
        np.testing.assert_array_equal(hdul["PIXEL_CLASS"].data, truth.pixel_class)
        assert hdul["PIXEL_CLASS"].header["CLASS4"] == "rc"
        for ext, attr in (("NOISE_FACTOR", "noise_factor"), ("RC_AMPLITUDE", "rc_amplitude"),
                          ("RC_TAU", "rc_tau"), ("TELEGRAPH_AMPLITUDE", "telegraph_amplitude"),
                          ("LOW_PEDESTAL_OFFSET", "low_pedestal_offset"),
                          ("READNOISE_CDS", "readnoise_cds"), ("DARK_CURRENT", "dark_current")):
            np.testing.assert_array_equal(hdul[ext].data, getattr(truth, attr).astype(np.float32))
        assert hdul["RC_TAU"].header["BUNIT"] == "s"
        assert hdul[0].header["TELPSWIT"] == pytest.approx(0.35)
        assert hdul[0].header["LOWPFRAC"] == pytest.approx(0.95)


def test_bad_pixel_defaults__inject_every_class():
    truth = make_truth(subarray="SUB400P", subsize=(400, 400), **BAD_PIXEL_DEFAULTS)
    dark_codes = {v for k, v in PIXEL_CLASSES.items() if k not in FLAT_CLASSES}
    assert set(np.unique(truth.pixel_class)) == dark_codes
    both = make_truth(subarray="SUB400P", subsize=(400, 400), **BAD_PIXEL_DEFAULTS,
                      **FLAT_DEFECT_DEFAULTS)
    assert set(np.unique(both.pixel_class)) == set(PIXEL_CLASSES.values())
    # the flat defects take normal pixels only: the dark classes are unchanged
    dark = truth.pixel_class > 0
    np.testing.assert_array_equal(both.pixel_class[dark], truth.pixel_class[dark])


def test_simulate_command__bad_pixels_and_hot_fraction(tmp_path):
    common = ["--n-files", "1", "--ngroups", "2", "--nints", "1", "--subarray", "SUB256",
              "--subsize", "256", "256", "-q"]
    assert main(["simulate", str(tmp_path / "bad"), "--bad-pixels", "--hot-fraction", "0.01",
                 *common]) == 0
    pc = fits.getdata(tmp_path / "bad" / "dark_truth.fits", "PIXEL_CLASS")
    assert set(np.unique(pc)) == set(PIXEL_CLASSES.values())
    n = 252 * 252  # SUB256 at (1, 1): 4 reference rows and columns
    assert abs((pc == PIXEL_CLASSES["hot"]).sum() - 0.01 * n) < 5 * np.sqrt(0.01 * n)
    assert main(["simulate", str(tmp_path / "plain"), *common]) == 0
    pc = fits.getdata(tmp_path / "plain" / "dark_truth.fits", "PIXEL_CLASS")
    assert set(np.unique(pc)) <= {0, 1}
    assert (pc == 1).sum() < 0.004 * n


def test_flats__illumination_response_and_open_charge(tmp_path):
    truth = make_truth(subarray="SUB256", subsize=(256, 256), seed=5, **FLAT_DEFECT_DEFAULTS)
    from daskref.simulate import flat_level, flat_rate, simulate_flats

    level = flat_level(truth, 8, 0.5)
    rate = flat_rate(truth, level, pattern_amplitude=0.0)
    normal = (truth.pixel_class == 0) & ~truth.reference
    np.testing.assert_allclose(rate[normal], level * truth.response[normal])
    assert np.all(rate[truth.reference] == 0)
    assert np.all(truth.response[truth.class_mask("dead")] <= 0.02)
    low = truth.response[truth.class_mask("low_qe")]
    assert low.min() >= 0.1 and low.max() <= 0.45
    # the charge an open pixel misses is on its 4 neighbours: the total is conserved
    opened = truth.class_mask("open")
    ideal = np.where(truth.reference, 0.0, level)
    lost = (ideal - rate)[opened | truth.class_mask("dead") | truth.class_mask("low_qe")]
    assert rate.sum() == pytest.approx(
        (ideal * np.where(opened, 1.0, truth.response)).sum(), rel=1e-12)
    assert lost.size
    ys, xs = np.nonzero(opened)
    for y, x in zip(ys[:20], xs[:20], strict=True):
        ring = truth.pixel_class[y - 1:y + 2, x - 1:x + 2].copy()
        ring[1, 1] = PIXEL_CLASSES["adj_open"]
        assert np.all(ring == PIXEL_CLASSES["adj_open"])
        for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
            share = level * (1 - truth.response[y, x]) / 4
            assert rate[yy, xx] == pytest.approx(level * truth.response[yy, xx] + share)
        assert rate[y - 1, x - 1] == pytest.approx(level * truth.response[y - 1, x - 1])
    camp = simulate_flats(tmp_path, truth, 2, ngroups=8, fill_fraction=0.5,
                          pattern_amplitude=0.0)
    with fits.open(camp.paths[0]) as hdul:
        assert hdul[0].header["EXP_TYPE"] == "NRC_FLAT"
        sci = hdul["SCI"].data.astype(float)
    # the last group reaches half the well above the reset level (Poisson-limited)
    signal = sci[0, -1] - sci[0, 0]
    t = group_times(truth.attrs, 8)
    expected = rate * (t[-1] - t[0])
    ratio = signal[normal] / expected[normal]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.01)
