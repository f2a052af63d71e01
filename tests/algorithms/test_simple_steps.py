import numpy as np
import pytest
import xarray as xr

from daskref import dq
from daskref.algorithms.steps._reference import match_reference
from daskref.algorithms.steps.simple import (
    dark_current,
    dq_init,
    linearity,
    saturation,
    superbias,
)
from daskref.testing import assert_lazy

DIMS = ("integration", "group", "y", "x")
NINT, NGROUP, NY, NX = 2, 7, 13, 11


def make_ds(nint=NINT, ngroup=NGROUP, ny=NY, nx=NX, *, seed=0, with_dq=True, attrs=None):
    """Random ramps (DN): bias ~1e4, per-pixel rate 0-3000 DN/group, read noise 5 DN.

    Independent RNG streams for bias, rate and noise.
    """
    s_bias, s_rate, s_noise = np.random.SeedSequence(seed).spawn(3)
    bias = np.random.default_rng(s_bias).normal(1.0e4, 100.0, (ny, nx))
    rate = np.random.default_rng(s_rate).uniform(0.0, 3000.0, (ny, nx))
    noise = np.random.default_rng(s_noise).normal(0.0, 5.0, (nint, ngroup, ny, nx))
    ramp = bias + rate * np.arange(ngroup)[:, None, None] + noise
    variables = {"ramp": (DIMS, ramp.astype(np.float32))}
    if with_dq:
        gdq = np.zeros(ramp.shape, np.uint8)
        gdq[0, 0, 0, 0] = dq.PERSISTENCE
        pdq = np.zeros((ny, nx), np.uint32)
        pdq[1, 1] = dq.HOT
        variables |= {"groupdq": (DIMS, gdq), "pixeldq": (("y", "x"), pdq)}
    base = {
        "INSTRUME": "NIRCAM",
        "DETECTOR": "NRCA1",
        "NFRAMES": 1,
        "GROUPGAP": 0,
        "NGROUPS": ngroup,
        "NINTS": nint,
    }
    return xr.Dataset(variables, attrs=base | (attrs or {}))


# --- match_reference -------------------------------------------------------------


def test_match_reference__same_shape_is_noop():
    ds = make_ds()
    ref = np.ones((NY, NX))
    assert match_reference(ref, ds) is ref


def test_match_reference__cuts_full_frame_nircam_and_miri():
    ds = make_ds(attrs={"SUBSTRT1": 5, "SUBSTRT2": 1001, "SUBSIZE1": NX, "SUBSIZE2": NY})
    full = np.arange(2048 * 2048).reshape(1, 2048, 2048)
    np.testing.assert_array_equal(match_reference(full, ds), full[:, 1000:1013, 4:15])
    miri = make_ds(attrs={"INSTRUME": "MIRI", "SUBSTRT1": 1022, "SUBSTRT2": 1012})
    full = xr.DataArray(np.arange(1024 * 1032).reshape(1024, 1032), dims=("y", "x"))
    out = match_reference(full, miri)
    assert isinstance(out, xr.DataArray)
    np.testing.assert_array_equal(out.values, full.values[1011:1024, 1021:1032])


def test_match_reference__subarray_reference_with_own_origin():
    ds = make_ds(attrs={"SUBSTRT1": 11, "SUBSTRT2": 21})
    ref = xr.DataArray(
        np.arange(40 * 30).reshape(40, 30), dims=("y", "x"), attrs={"SUBSTRT1": 6, "SUBSTRT2": 16}
    )
    np.testing.assert_array_equal(match_reference(ref, ds).values, ref.values[5:18, 5:16])


@pytest.mark.parametrize(
    ("attrs", "shape", "match"),
    [
        ({}, (2048, 2048), r"\(2048, 2048\).*\(13, 11\).*SUBSTRT"),
        ({"SUBSTRT1": 1, "SUBSTRT2": 1}, (100, 100), r"\(100, 100\).*\(13, 11\).*\(2048, 2048\)"),
        ({"SUBSTRT1": 2045, "SUBSTRT2": 1}, (2048, 2048), "outside"),
    ],
)
def test_match_reference__errors_name_the_shapes(attrs, shape, match):
    with pytest.raises(ValueError, match=match):
        match_reference(np.zeros(shape), make_ds(attrs=attrs))


# --- dq_init ---------------------------------------------------------------------


def test_dq_init__ors_mask_and_propagates_do_not_use():
    ds = make_ds()
    mask = np.zeros((NY, NX), np.uint32)
    mask[1, 1] = dq.DEAD | dq.DO_NOT_USE
    mask[2, 3] = dq.WARM
    out = dq_init(ds, mask=mask).compute()
    expected = ds.pixeldq.values | mask
    np.testing.assert_array_equal(out.pixeldq.values, expected)
    assert out.pixeldq.values[1, 1] == dq.HOT | dq.DEAD | dq.DO_NOT_USE
    gdq = ds.groupdq.values.copy()
    gdq[:, :, 1, 1] |= dq.DO_NOT_USE
    np.testing.assert_array_equal(out.groupdq.values, gdq)
    assert out.attrs["S_DQINIT"] == "COMPLETE"
    xr.testing.assert_identical(out.ramp, ds.ramp)


def test_dq_init__creates_missing_dq_and_takes_a_mask_dataset():
    ds = make_ds(with_dq=False, attrs={"SUBSTRT1": 1, "SUBSTRT2": 1})
    full = np.zeros((2048, 2048), np.uint32)
    full[0, 0] = dq.REFERENCE_PIXEL
    ref = xr.Dataset({"dq": (("y", "x"), full)})
    out = dq_init(ds, mask=ref)
    assert out.groupdq.dtype == np.uint8 and out.pixeldq.dtype == np.uint32
    assert out.pixeldq.values[0, 0] == dq.REFERENCE_PIXEL
    assert out.pixeldq.values.sum() == dq.REFERENCE_PIXEL
    assert not out.groupdq.values.any()


# --- saturation ------------------------------------------------------------------


def _expected_saturation(ramp, level):
    """Loop reference: first group at/above the level and every later group."""
    flags = np.zeros(ramp.shape, np.uint8)
    nint, ngroup, ny, nx = ramp.shape
    for i in range(nint):
        for y in range(ny):
            for x in range(nx):
                for g in range(ngroup):
                    if ramp[i, g, y, x] >= level[y, x]:
                        flags[i, g:, y, x] = dq.SATURATED
                        break
    return flags


def _sat_level(ds):
    level = np.random.default_rng(7).uniform(1.0e4, 2.5e4, (NY, NX))
    level[3, 4] = ds.ramp.values[1, 4, 3, 4]  # exactly equal: flagged (>=)
    return level


def test_saturation__flags_first_group_at_level_and_all_later_exact():
    ds = make_ds()
    level = _sat_level(ds)
    # a sample above the level followed by lower ones is still saturated after
    ds["ramp"][0, 2, 5, 5] = level[5, 5] + 1
    ds["ramp"][0, 3:, 5, 5] = level[5, 5] - 1000
    out = saturation(ds, saturation=level).compute()
    expected = _expected_saturation(ds.ramp.values, level)
    assert expected[0, 2:, 5, 5].all() and expected[1, 4:, 3, 4].all()
    assert 0 < (expected > 0).mean() < 1
    np.testing.assert_array_equal(out.groupdq.values & dq.SATURATED, expected)
    # other flags untouched, nothing else added
    np.testing.assert_array_equal(out.groupdq.values & ~np.uint8(dq.SATURATED), ds.groupdq.values)
    np.testing.assert_array_equal(out.pixeldq.values, ds.pixeldq.values)
    assert out.attrs["S_SATURA"] == "COMPLETE"


def test_saturation__nan_level_and_no_sat_check_are_not_flagged():
    ds = make_ds()
    level = np.full((NY, NX), 1.0)  # everything saturates ...
    level[2, 2] = np.nan  # ... except these two
    sat_dq = np.zeros((NY, NX), np.uint32)
    sat_dq[4, 5] = dq.NO_SAT_CHECK
    sat_dq[6, 6] = dq.UNRELIABLE_BIAS
    ref = xr.Dataset({"saturation": (("y", "x"), level), "dq": (("y", "x"), sat_dq)})
    out = saturation(ds, saturation=ref).compute()
    sat = (out.groupdq.values & dq.SATURATED) != 0
    assert not sat[:, :, 2, 2].any() and not sat[:, :, 4, 5].any()
    assert sat.sum() == NINT * NGROUP * (NY * NX - 2)
    pdq = out.pixeldq.values
    assert pdq[2, 2] == dq.NO_SAT_CHECK and pdq[4, 5] == dq.NO_SAT_CHECK
    assert pdq[6, 6] == dq.UNRELIABLE_BIAS  # reference DQ is ORed in
    assert pdq[1, 1] == dq.HOT
    assert (pdq & dq.NO_SAT_CHECK).astype(bool).sum() == 2


def test_saturation__scalar_threshold_and_ad_floor():
    ds = make_ds()
    ds["ramp"][1, 3, 7, 8] = 0.0
    out = saturation(ds, threshold=1.5e4).compute()
    expected = _expected_saturation(ds.ramp.values, np.full((NY, NX), 1.5e4))
    np.testing.assert_array_equal(out.groupdq.values & dq.SATURATED, expected)
    floor = dq.AD_FLOOR | dq.DO_NOT_USE
    assert out.groupdq.values[1, 3, 7, 8] & floor == floor
    assert ((out.groupdq.values & dq.AD_FLOOR) != 0).sum() == 1
    off = saturation(ds, threshold=1.5e4, ad_floor=None)
    assert not (off.groupdq.values & dq.AD_FLOOR).any()


def test_saturation__grow_flags_box_neighbours():
    ds = make_ds()
    level = np.full((NY, NX), 1.0e9)
    level[6, 5] = ds.ramp.values[0, 3, 6, 5]
    ds["ramp"][1, :, 6, 5] = 100.0  # integration 1 stays below the level
    level[5, 5] = np.nan  # a neighbour without saturation check stays unflagged
    out = saturation(ds.chunk(y=(6, 7), x=(5, 6)), saturation=level, n_pix_grow_sat=1)
    sat = (out.groupdq.values & dq.SATURATED) != 0
    box = np.zeros((NY, NX), bool)
    box[5:8, 4:7] = True
    box[5, 5] = False
    np.testing.assert_array_equal(sat[0, 3:], np.broadcast_to(box, sat[0, 3:].shape))
    assert not sat[0, :3].any() and not sat[1].any()


def test_saturation__needs_exactly_one_level():
    with pytest.raises(ValueError, match="exactly one"):
        saturation(make_ds())
    with pytest.raises(ValueError, match="exactly one"):
        saturation(make_ds(), saturation=np.ones((NY, NX)), threshold=1.0)


# --- superbias -------------------------------------------------------------------


def test_superbias__subtracts_exactly_nan_is_zero_and_ors_dq():
    ds = make_ds()
    bias = np.random.default_rng(3).normal(1.0e4, 50.0, (NY, NX)).astype(np.float32)
    bias[0, 1] = np.nan
    bias_dq = np.zeros((NY, NX), np.uint32)
    bias_dq[2, 2] = dq.UNRELIABLE_BIAS
    out = superbias(
        ds, superbias=xr.Dataset({"superbias": (("y", "x"), bias), "dq": (("y", "x"), bias_dq)})
    )
    expected = ds.ramp.values - np.nan_to_num(bias)
    assert out.ramp.dtype == np.float32
    np.testing.assert_array_equal(out.ramp.values, expected)
    np.testing.assert_array_equal(out.ramp.values[:, :, 0, 1], ds.ramp.values[:, :, 0, 1])
    np.testing.assert_array_equal(out.pixeldq.values, ds.pixeldq.values | bias_dq)
    xr.testing.assert_identical(out.groupdq, ds.groupdq)
    assert out.attrs["S_SUPERB"] == "COMPLETE"


def test_superbias__raw_uint16_ramp_becomes_float32():
    ds = make_ds()
    ds["ramp"] = ds.ramp.round().astype(np.uint16)
    out = superbias(ds, superbias=np.full((NY, NX), 1.0e4))
    assert out.ramp.dtype == np.float32
    np.testing.assert_array_equal(
        out.ramp.values, ds.ramp.values.astype(np.float32) - np.float32(1.0e4)
    )


# --- linearity -------------------------------------------------------------------


def _linearity_case(seed=4):
    """Known correction polynomial C and observed ramps F with C(F) = true counts."""
    ds = make_ds(seed=seed)
    rng = np.random.default_rng(seed)
    truth = ds.ramp.values.astype(np.float64) - 9000.0  # linear counts, >0
    coeffs = np.zeros((4, NY, NX))
    coeffs[0] = rng.uniform(-5, 5, (NY, NX))
    coeffs[1] = rng.uniform(0.98, 1.02, (NY, NX))
    coeffs[2] = rng.uniform(1e-7, 1e-6, (NY, NX))
    coeffs[3] = rng.uniform(1e-13, 1e-12, (NY, NX))
    # invert C by Newton iterations (C is monotonic here) to get the observed signal
    observed = truth.copy()
    for _ in range(50):
        c = coeffs[:, None, None]
        value = c[0] + observed * (c[1] + observed * (c[2] + observed * c[3]))
        slope = c[1] + observed * (2 * c[2] + observed * 3 * c[3])
        observed -= (value - truth) / slope
    ds["ramp"] = (DIMS, observed.astype(np.float32))
    return ds, coeffs, truth


def test_linearity__inverts_known_polynomial_to_float_precision():
    ds, coeffs, truth = _linearity_case()
    assert np.abs(ds.ramp.values - truth).max() > 100  # really non-linear
    out = linearity(ds, coeffs=coeffs)
    assert out.ramp.dtype == np.float32
    # float32 rounding of the observed input (2^-24 relative) times C'(F) F / C ~ 1
    np.testing.assert_allclose(out.ramp.values, truth, rtol=2e-7, atol=0)
    np.testing.assert_array_equal(out.pixeldq.values, ds.pixeldq.values)
    assert out.attrs["S_LINEAR"] == "COMPLETE"


def test_linearity__skips_saturated_groups_and_bad_coefficients():
    ds, coeffs, truth = _linearity_case()
    ds["groupdq"][1, 5:, 4, 4] = dq.SATURATED
    coeffs = coeffs.copy()
    coeffs[2, 2, 3] = np.nan
    coeffs[1, 6, 7] = 0.0
    lin_dq = np.zeros((NY, NX), np.uint32)
    lin_dq[8, 9] = dq.NO_LIN_CORR
    ref = xr.Dataset({"coeffs": (("coeff", "y", "x"), coeffs), "dq": (("y", "x"), lin_dq)})
    out = linearity(ds, coeffs=ref).compute()
    r, r0 = out.ramp.values, ds.ramp.values
    np.testing.assert_array_equal(r[1, 5:, 4, 4], r0[1, 5:, 4, 4])
    np.testing.assert_allclose(r[1, :5, 4, 4], truth[1, :5, 4, 4], rtol=2e-7)
    for y, x in [(2, 3), (6, 7), (8, 9)]:
        np.testing.assert_array_equal(r[:, :, y, x], r0[:, :, y, x])
        assert out.pixeldq.values[y, x] == dq.NO_LIN_CORR
    assert (out.pixeldq.values == dq.NO_LIN_CORR).sum() == 3
    assert out.pixeldq.values[1, 1] == dq.HOT


# --- dark_current ----------------------------------------------------------------


def _dark(ngroups, seed=9):
    rng = np.random.default_rng(seed)
    return (
        np.arange(ngroups)[:, None, None] * rng.uniform(0, 2, (NY, NX))
        + rng.normal(0, 0.5, (ngroups, NY, NX))
    ).astype(np.float32)


def test_dark_current__same_readout_subtracts_group_by_group():
    ds = make_ds()
    dark = _dark(20)
    dark[3, 2, 2] = np.nan
    out = dark_current(ds, dark=dark)
    expected = ds.ramp.values - np.nan_to_num(dark[:NGROUP])
    np.testing.assert_array_equal(out.ramp.values, expected)
    assert out.attrs["S_DARK"] == "COMPLETE"


def test_dark_current__frame_averaging_from_frame_resolved_dark():
    nframes, groupgap = 4, 1
    ds = make_ds(attrs={"NFRAMES": nframes, "GROUPGAP": groupgap})
    nframe_total = NGROUP * (nframes + groupgap)
    dark = _dark(nframe_total)
    out = dark_current(
        ds, dark=xr.DataArray(dark, dims=("group", "y", "x"), attrs={"NFRAMES": 1, "GROUPGAP": 0})
    )
    expected_dark = np.stack(
        [
            dark[g * (nframes + groupgap) : g * (nframes + groupgap) + nframes]
            .astype(np.float64)
            .mean(axis=0)
            for g in range(NGROUP)
        ]
    ).astype(np.float32)
    np.testing.assert_allclose(
        out.ramp.values, ds.ramp.values - expected_dark, rtol=0, atol=2e-3
    )  # float32 spacing at 1e4-2e4 DN
    # the last group averages frames 30-33: 34 frames are needed, the final gap is not
    with pytest.raises(ValueError, match="needs 34"):
        dark_current(ds, dark=dark[:33])
    dark_current(ds, dark=dark[:34])


def test_dark_current__errors_and_dark_readout_arguments():
    ds = make_ds(attrs={"NFRAMES": 2, "GROUPGAP": 0})
    with pytest.raises(ValueError, match="has 5 groups"):
        dark_current(ds, dark=_dark(5), dark_nframes=2, dark_groupgap=0)
    with pytest.raises(ValueError, match="frame-averaged dark"):
        dark_current(ds, dark=_dark(40), dark_nframes=4)
    # a dark taken with the science readout is subtracted directly
    dark = _dark(NGROUP)
    out = dark_current(ds, dark=dark, dark_nframes=2, dark_groupgap=0)
    np.testing.assert_array_equal(out.ramp.values, ds.ramp.values - dark)


def test_dark_current__integration_dependent_dark_and_dq():
    ds = make_ds(nint=3)
    dark4 = np.stack([_dark(NGROUP, seed=s) for s in (1, 2)])
    dark_dq = np.zeros((NY, NX), np.uint32)
    dark_dq[0, 0] = dq.UNRELIABLE_DARK
    ref = xr.Dataset({"dark": (DIMS, dark4), "dq": (("y", "x"), dark_dq)})
    out = dark_current(ds, dark=ref).compute()
    np.testing.assert_array_equal(out.ramp.values[0], ds.ramp.values[0] - dark4[0])
    np.testing.assert_array_equal(out.ramp.values[1], ds.ramp.values[1] - dark4[1])
    np.testing.assert_array_equal(out.ramp.values[2], ds.ramp.values[2] - dark4[1])
    assert out.pixeldq.values[0, 0] == dq.UNRELIABLE_DARK


def test_dark_current__3d_dark_with_integration_coordinates():
    # open_exposure results carry integration coordinates (and per-integration
    # non-index coordinates); a (group, y, x) dark serves every integration
    ds = make_ds().assign_coords(
        integration=np.arange(NINT), group=np.arange(NGROUP),
        file=("integration", ["a.fits"] * NINT),
    )
    dark = _dark(NGROUP)
    for ref in (dark, xr.DataArray(dark, dims=("group", "y", "x"))):
        out = dark_current(ds.chunk({"y": 5}), dark=ref).compute()
        np.testing.assert_array_equal(out.ramp.values, ds.ramp.values - dark[None])
        xr.testing.assert_identical(out.ramp.coords.to_dataset(), ds.ramp.coords.to_dataset())


# --- every step: chunked == eager, lazy, no mutation ------------------------------


def _steps():
    ds = make_ds()
    mask = np.zeros((NY, NX), np.uint32)
    mask[::3, ::4] = dq.DO_NOT_USE | dq.DEAD
    level = _sat_level(ds)
    level[2, 2] = np.nan
    coeffs = _linearity_case()[1]
    coeffs[2, 0, 0] = np.nan
    return {
        "dq_init": lambda d: dq_init(d, mask=mask),
        "saturation": lambda d: saturation(d, saturation=level),
        "saturation_grow": lambda d: saturation(d, saturation=level, n_pix_grow_sat=2),
        "superbias": lambda d: superbias(d, superbias=np.full((NY, NX), 9.0e3, np.float32)),
        "linearity": lambda d: linearity(d, coeffs=coeffs),
        "dark_current": lambda d: dark_current(d, dark=_dark(40), dark_nframes=1),
        "dark_averaged": lambda d: dark_current(
            d.assign_attrs(NFRAMES=2, GROUPGAP=3), dark=_dark(40)
        ),
    }


STEPS = _steps()
CHUNKINGS = [
    {"y": 4, "x": 5},
    {"y": (1, 7, 5), "x": -1},
    {"y": (6, 2, 5), "x": (3, 8), "integration": 1},
]


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("step", sorted(STEPS))
def test_step__chunked_equals_eager_and_stays_dask(step, chunks):
    ds = make_ds(seed=1)
    eager = STEPS[step](ds)
    lazy_in = ds.chunk(
        {
            "integration": chunks.get("integration", -1),
            "group": -1,
            "y": chunks["y"],
            "x": chunks["x"],
        }
    )
    lazy = STEPS[step](lazy_in)
    for name in ("ramp", "groupdq", "pixeldq"):
        assert lazy[name].chunks is not None, name
        assert lazy[name].dtype == eager[name].dtype, name
    assert lazy.attrs == eager.attrs
    xr.testing.assert_equal(eager, lazy.compute())


@pytest.mark.parametrize("step", sorted(STEPS))
def test_step__is_lazy_and_leaves_input_alone(step):
    ds = make_ds(seed=2).chunk(y=5)
    snapshot = ds.compute()
    with assert_lazy():
        out = STEPS[step](ds)
    assert out is not ds
    xr.testing.assert_identical(ds.compute(), snapshot)
    assert not any(k.startswith("S_") for k in ds.attrs)
    assert any(v == "COMPLETE" for k, v in out.attrs.items() if k.startswith("S_"))
