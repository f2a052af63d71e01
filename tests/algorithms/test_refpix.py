"""The lazy refpix step on simulated ramps with known bias drifts.

Simulation (independent RNG streams per effect): ramp = science signal (0 on reference
pixels) + offset per (integration, group, amplifier) + offset per (integration, group,
amplifier, column parity) [near-IR] or row parity [MIRI] + row noise common to all
columns of a row [near-IR] + white read noise of std ``WHITE``. The white noise is
known exactly, so ``err = out - signal - white`` is the estimation error of the
correction alone.

Tolerances. A 3-sigma clipped mean of N Gaussian samples of std s has (to within ~1 %)
the variance s**2 / N of the plain mean. Hence the offset error of a class (amplifier,
parity) estimated from N reference pixels has std s / sqrt(N); averaging the top and
bottom estimates (N each) gives s / sqrt(2 N). For MIRI the statistics run on group
differences, whose noise is s * sqrt(2). Tests assert every class error within 5 std
and their RMS, in units of that std, within [0.7, 1.3] (with >= 40 classes, the RMS of
unit normals has a relative spread ~ 1/sqrt(2 * 40) = 11 %, so this is ~3 sigma).

The side signal of a row is the average of two medians (left, right), each over a box
of L = ``side_smoothing_length`` rows by 4 columns (n = 4 L pixels). The median of n
Gaussian samples has variance (pi / 2) s**2 / n, so the side signal has variance
(pi / 2) s**2 / (8 L) (with one side only: (pi / 2) s**2 / (4 L)). The injected row
noise is smooth (periods >= 150 rows, the low-frequency end of 1/f noise); its change
over L rows leaves a smoothing bias of order A (2 pi / P)**2 L**2 / 24 ~ 0.05 DN, whose
square is negligible next to (pi / 2) 25 / 88 = 0.45 DN**2. The side error is correlated
over ~L rows, so its variance measured about the mean of N rows is smaller by the
factor (1 - L / N) (the sum of its autocorrelation coefficients is ~L).
"""

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from daskref import dq
from daskref.algorithms.steps.refpix import RefpixSkippedWarning, refpix
from daskref.geometry import amplifier_index, reference_pixel_mask
from daskref.testing import assert_lazy

DIMS = ("integration", "group", "y", "x")
WHITE = 5.0  # DN, white read noise std


def _dataset(ramp, pixeldq, attrs):
    return xr.Dataset(
        {
            "ramp": (DIMS, ramp.astype(np.float32)),
            "groupdq": (DIMS, np.zeros(ramp.shape, dq.GROUP_DTYPE)),
            "pixeldq": (("y", "x"), pixeldq.astype(dq.PIXEL_DTYPE)),
        },
        attrs=attrs,
    )


def simulate_nir(
    *,
    shape=(128, 2048),
    substrt=(1, 1),
    nint=2,
    ngroups=5,
    noutputs=4,
    detector="NRCA1",
    row_noise=10.0,
    parity_sigma=20.0,
    seed=0,
):
    """Near-IR ramp; returns (dataset, truth dict). ``substrt`` is (SUBSTRT1, SUBSTRT2)."""
    ny, nx = shape
    attrs = {
        "INSTRUME": "NIRCAM",
        "DETECTOR": detector,
        "SUBARRAY": "FULL" if shape == (2048, 2048) else "SUBTEST",
        "SUBSTRT1": substrt[0],
        "SUBSTRT2": substrt[1],
        "SUBSIZE1": nx,
        "SUBSIZE2": ny,
        "NOUTPUTS": noutputs,
    }
    s_off, s_par, s_row, s_white, s_sig = np.random.SeedSequence(seed).spawn(5)
    x0, y0 = substrt[0] - 1, substrt[1] - 1
    amp = amplifier_index(attrs, shape)
    parity = (x0 + np.arange(nx)) % 2
    amp_off = np.random.default_rng(s_off).normal(0, 50.0, (nint, ngroups, 4))
    par_off = np.random.default_rng(s_par).normal(0, parity_sigma, (nint, ngroups, 4, 2))
    col_off = amp_off[..., amp] + par_off[..., amp, parity]  # (i, g, x)
    rows_ff = y0 + np.arange(ny)
    rng_row = np.random.default_rng(s_row)
    periods = rng_row.uniform(150, 600, (nint, ngroups, 3))
    phases = rng_row.uniform(0, 2 * np.pi, (nint, ngroups, 3))
    row = (row_noise / np.sqrt(3)) * np.sin(
        2 * np.pi * rows_ff[None, None, None, :] / periods[..., None] + phases[..., None]
    ).sum(axis=2)  # (i, g, y)
    white = np.random.default_rng(s_white).normal(0, WHITE, (nint, ngroups, ny, nx))
    refmask = reference_pixel_mask(attrs, shape)
    flux = np.where(refmask, 0.0, np.random.default_rng(s_sig).uniform(0, 30, shape))
    signal = flux[None, None] * np.arange(ngroups)[None, :, None, None]
    ramp = signal + col_off[:, :, None, :] + row[:, :, :, None] + white
    truth = dict(
        signal=signal, white=white, row=row, amp=amp, parity=parity, refmask=refmask,
        par_off=par_off, col_off=col_off,
    )
    return _dataset(ramp, np.zeros(shape), attrs), truth


def simulate_miri(*, nint=1, ngroups=4, seed=0):
    ny, nx = 1024, 1032
    attrs = {"INSTRUME": "MIRI", "DETECTOR": "MIRIMAGE", "SUBARRAY": "FULL", "SUBSTRT1": 1,
             "SUBSTRT2": 1, "SUBSIZE1": nx, "SUBSIZE2": ny}
    s_off, s_white, s_sig = np.random.SeedSequence(seed).spawn(3)
    amp = np.arange(nx) % 4
    rowpar = np.arange(ny) % 2
    off = np.random.default_rng(s_off).normal(0, 30.0, (nint, ngroups, 4, 2))  # amp, row parity
    offsets = off[:, :, amp[None, :], rowpar[:, None]]  # (i, g, y, x)
    white = np.random.default_rng(s_white).normal(0, WHITE, (nint, ngroups, ny, nx))
    refmask = reference_pixel_mask(attrs, (ny, nx))
    flux = np.where(refmask, 0.0, np.random.default_rng(s_sig).uniform(0, 30, (ny, nx)))
    signal = flux[None, None] * np.arange(ngroups)[None, :, None, None]
    ramp = signal + offsets + white
    truth = dict(signal=signal, white=white, offsets=offsets, off=off, amp=amp, rowpar=rowpar,
                 refmask=refmask)
    return _dataset(ramp, np.zeros((ny, nx)), attrs), truth


def _err(out, truth):
    return out["ramp"].values.astype(np.float64) - truth["signal"] - truth["white"]


def _class_means(err, truth, classes, ncls):
    """Mean error per (integration, group, class) over science pixels."""
    sci = ~truth["refmask"]
    out = np.empty(err.shape[:2] + (ncls,))
    for c in range(ncls):
        sel = sci & (classes == c)[None, :]
        out[..., c] = err[:, :, sel].mean(axis=-1)
    return out


def _assert_unit_errors(errors, std):
    z = np.asarray(errors) / std
    assert np.abs(z).max() < 5.0, np.abs(z).max()
    rms = np.sqrt(np.mean(z**2))
    assert 0.7 < rms < 1.3, rms


# ------------------------------------------------------------------------- near-IR


@pytest.mark.parametrize("substrt", [(1, 1), (1, 1921)], ids=["bottom", "top"])
def test_refpix__nir_strip_removes_offsets_and_row_noise(substrt):
    # a full-width strip at the bottom (or top) of the detector: 4 reference rows of one
    # edge, both side reference column blocks, all 4 amplifiers
    ds, truth = simulate_nir(substrt=substrt, seed=10)
    out = refpix(ds)
    assert out.attrs["S_REFPIX"] == "COMPLETE"
    assert isinstance(out["ramp"].data, da.Array)
    assert out["ramp"].dtype == np.float32
    err = _err(out, truth)

    # offsets: 4 rows x 256 columns per (amplifier, parity); the science-pixel mean also
    # carries the row-averaged side error (var ~ 0.45 * L / 124 rows -> std 0.2 DN)
    classes = truth["amp"] * 2 + truth["parity"]
    means = _class_means(err, truth, classes, 8)
    sigma_off = WHITE / np.sqrt(4 * 256)
    side_var = (np.pi / 2) * WHITE**2 / (8 * 11)
    assert np.abs(means).max() < 5 * np.sqrt(sigma_off**2 + side_var * 11 / 124)
    before = _class_means(ds["ramp"].values - truth["signal"] - truth["white"], truth, classes, 8)
    assert np.abs(before).max() > 50  # there were offsets to remove

    # row noise: variance over rows of the row-mean error, away from the strip's
    # inner edge (where the box is truncated) and the reflected detector edge
    half = 11 // 2
    sci_cols = ~truth["refmask"].all(axis=0)  # not a side reference column
    row_err = err[:, :, :, sci_cols].mean(axis=-1)
    rows = slice(4 + half, -half - 4)
    row_err = row_err[:, :, rows] - row_err[:, :, rows].mean(axis=-1, keepdims=True)
    nrows = row_err.shape[-1]
    ratio = row_err.var(axis=-1).mean() / (side_var * (1 - 11 / nrows))
    # 2 x 5 series of ~110 / 11 = 10 independent rows each: relative spread ~ 0.14
    assert 0.65 < ratio < 1.4, ratio
    row_before = truth["row"][:, :, rows]
    row_before = row_before - row_before.mean(axis=-1, keepdims=True)
    assert row_before.var(axis=-1).mean() > 40 * side_var  # there was row noise to remove


def test_refpix__nir_full_frame_top_and_bottom_offsets():
    ds, truth = simulate_nir(shape=(2048, 2048), nint=1, ngroups=2, row_noise=0.0, seed=11)
    out = refpix(ds, use_side_ref_pixels=False)
    err = _err(out, truth)
    classes = truth["amp"] * 2 + truth["parity"]
    # constant per class: every science pixel of a class carries the same error
    means = _class_means(err, truth, classes, 8)
    np.testing.assert_allclose(err[0, 1, 1000, 1000:1002], means[0, 1, [2, 3]], atol=1e-3)
    # top and bottom, 4 x 256 pixels each, averaged: std s / sqrt(2048)
    _assert_unit_errors(means, WHITE / np.sqrt(2 * 4 * 256))


def test_refpix__nir_offsets_rms_consistent_with_reference_pixel_count():
    # more classes for the RMS check: no row noise, no side correction
    ds, truth = simulate_nir(shape=(16, 2048), nint=3, ngroups=4, row_noise=0.0, seed=12)
    out = refpix(ds, use_side_ref_pixels=False)
    classes = truth["amp"] * 2 + truth["parity"]
    means = _class_means(_err(out, truth), truth, classes, 8)  # 96 classes
    _assert_unit_errors(means, WHITE / np.sqrt(4 * 256))


def test_refpix__odd_even_columns_off_leaves_parity_pattern():
    ds, truth = simulate_nir(shape=(16, 2048), nint=2, ngroups=3, row_noise=0.0, seed=13)
    out = refpix(ds, odd_even_columns=False, use_side_ref_pixels=False)
    classes = truth["amp"] * 2 + truth["parity"]
    means = _class_means(_err(out, truth), truth, classes, 8).reshape(2, 3, 4, 2)
    par = truth["par_off"]
    expected = par - par.mean(axis=-1, keepdims=True)  # one mean per amplifier
    _assert_unit_errors(means - expected, WHITE / np.sqrt(8 * 256))


def test_refpix__dq_do_not_use_reference_pixels_are_excluded():
    ds, truth = simulate_nir(shape=(16, 2048), nint=2, ngroups=3, row_noise=0.0, seed=14)
    rng = np.random.default_rng(99)
    bad = np.zeros((16, 2048), bool)
    bad[:4] = rng.random((4, 2048)) < 0.3  # 30 % of the bottom rows, +8 DN: not clippable
    ramp = ds["ramp"].values.copy()
    ramp[:, :, bad] += 8.0
    flagged = ds.assign(ramp=(DIMS, ramp),
                        pixeldq=(("y", "x"), np.where(bad, dq.DO_NOT_USE, 0).astype(np.uint32)))
    classes = truth["amp"] * 2 + truth["parity"]
    means = _class_means(_err(refpix(flagged, use_side_ref_pixels=False), truth), truth,
                         classes, 8)
    _assert_unit_errors(means, WHITE / np.sqrt(0.7 * 4 * 256))
    unflagged = flagged.assign(pixeldq=ds["pixeldq"])
    biased = _class_means(_err(refpix(unflagged, use_side_ref_pixels=False), truth), truth,
                          classes, 8)
    assert np.median(biased) < -1.5  # the +8 DN pixels bias the offsets by ~ +2.4 DN


def test_refpix__side_gain_is_linear_and_zero_gain_is_no_side_correction():
    ds, _ = simulate_nir(shape=(48, 2048), nint=1, ngroups=2, seed=15)
    full = refpix(ds)["ramp"].values
    none = refpix(ds, use_side_ref_pixels=False)["ramp"].values
    zero = refpix(ds, side_gain=0.0)["ramp"].values
    half = refpix(ds, side_gain=0.5)["ramp"].values
    np.testing.assert_array_equal(zero, none)
    np.testing.assert_allclose(half, 0.5 * (full + none), atol=1e-3)
    even = refpix(ds, side_smoothing_length=10)["ramp"].values
    odd = refpix(ds, side_smoothing_length=11)["ramp"].values
    np.testing.assert_array_equal(even, odd)


def test_refpix__transposed_detector_uses_detector_frame():
    # NRS1 is read along DMS y: its data are the transpose of an NRCA1-like frame
    ds, _ = simulate_nir(shape=(48, 2048), nint=1, ngroups=2, seed=16)
    expected = refpix(ds)["ramp"].values
    t = xr.Dataset(
        {"ramp": (DIMS, ds["ramp"].values.swapaxes(2, 3)),
         "pixeldq": (("y", "x"), ds["pixeldq"].values.T)},
        attrs=dict(ds.attrs, DETECTOR="NRS1", INSTRUME="NIRSPEC", SUBSTRT1=1, SUBSTRT2=1,
                   SUBSIZE1=48, SUBSIZE2=2048),
    )
    got = refpix(t)["ramp"].values.swapaxes(2, 3)
    np.testing.assert_array_equal(got, expected)


def test_refpix__nir_single_output_subarray():
    # 64 x 64 at the detector corner, one output: one clipped mean per column parity of
    # all its reference pixels, 4 x 64 + 60 x 4 = 496 -> 248 per parity
    ds, truth = simulate_nir(shape=(64, 64), nint=4, ngroups=5, noutputs=1, row_noise=0.0,
                             seed=17)
    out = refpix(ds)
    means = _class_means(_err(out, truth), truth, truth["parity"], 2)  # 40 classes
    _assert_unit_errors(means, WHITE / np.sqrt(248))


def test_refpix__subarray_without_reference_pixels_passes_through():
    ds, _ = simulate_nir(shape=(32, 32), substrt=(1025, 1025), nint=1, ngroups=2, seed=18)
    with pytest.warns(RefpixSkippedWarning, match="no reference pixels"):
        out = refpix(ds)
    xr.testing.assert_identical(out["ramp"], ds["ramp"])
    assert out.attrs["S_REFPIX"] == "SKIPPED"


# ---------------------------------------------------------------------------- MIRI


def test_refpix__miri_removes_amplifier_and_row_parity_offsets():
    ds, truth = simulate_miri(seed=20)
    out = refpix(ds)
    # MIRI corrects group differences: what remains is group 0's offsets, unchanged
    err = _err(out, truth) - truth["offsets"][:, :1]
    np.testing.assert_allclose(err[:, 0], 0.0, atol=1e-3)
    classes = truth["amp"][None, :] * 2 + truth["rowpar"][:, None]
    means = np.stack([err[:, 1:, classes == c].mean(axis=-1) for c in range(8)], axis=-1)
    # 2 columns x 512 rows per (amplifier, row parity), noise s * sqrt(2) (differences)
    _assert_unit_errors(means, WHITE * np.sqrt(2) / np.sqrt(2 * 512))
    assert np.abs(ds["ramp"].values[0, 1:, 10, 10] - ds["ramp"].values[0, 0, 10, 10]
                  - truth["signal"][0, 1:, 10, 10]).max() > 5  # offsets were there


def test_refpix__miri_odd_even_rows_off_leaves_row_parity_pattern():
    ds, truth = simulate_miri(seed=21)
    out = refpix(ds, odd_even_rows=False)
    err = _err(out, truth) - truth["offsets"][:, :1]
    d = truth["off"][:, 1:] - truth["off"][:, :1]  # (i, g, amp, row parity)
    expected = d - d.mean(axis=-1, keepdims=True)
    classes = truth["amp"][None, :] * 2 + truth["rowpar"][:, None]
    means = np.stack([err[:, 1:, classes == c].mean(axis=-1) for c in range(8)], axis=-1)
    # one class per amplifier now: 2 columns x 1024 rows
    _assert_unit_errors(means - expected.reshape(means.shape), WHITE * np.sqrt(2) / np.sqrt(2048))


def test_refpix__miri_subarray_is_skipped_with_warning():
    ds, _ = simulate_nir(shape=(64, 72), nint=1, ngroups=2, seed=22)
    ds.attrs.update(INSTRUME="MIRI", DETECTOR="MIRIMAGE", SUBARRAY="MASK1550", SUBSTRT1=1)
    with pytest.warns(RefpixSkippedWarning, match="MIRI subarray"):
        out = refpix(ds)
    xr.testing.assert_identical(out["ramp"], ds["ramp"])


# ------------------------------------------------------------------ chunking, laziness


@pytest.mark.parametrize(
    "chunks",
    [
        {"y": (3, 50, 75), "x": (1000, 1048)},  # the bottom reference rows split
        {"integration": 1, "group": (2, 3), "y": (70, 58)},
        {"integration": (1, 1), "y": 7, "x": 512},
    ],
)
def test_refpix__chunked_equals_eager_nir(chunks):
    ds, _ = simulate_nir(seed=30)
    eager = refpix(ds)
    chunked = refpix(ds.chunk(chunks))
    assert isinstance(chunked["ramp"].data, da.Array)
    assert chunked["ramp"].chunks == ds.chunk(chunks)["ramp"].chunks
    xr.testing.assert_allclose(eager.compute(), chunked.compute())
    np.testing.assert_array_equal(eager["ramp"].values, chunked["ramp"].values)


def test_refpix__chunked_equals_eager_single_output():
    ds, _ = simulate_nir(shape=(64, 64), nint=2, ngroups=3, noutputs=1, seed=31)
    chunked = refpix(ds.chunk({"y": (2, 30, 32), "x": (5, 59), "integration": 1}))
    assert isinstance(chunked["ramp"].data, da.Array)
    xr.testing.assert_allclose(refpix(ds).compute(), chunked.compute())


def test_refpix__chunked_equals_eager_miri():
    ds, _ = simulate_miri(nint=2, ngroups=3, seed=32)
    chunked = refpix(ds.chunk({"y": (100, 924), "x": (2, 1000, 30), "group": (1, 2),
                               "integration": 1}))
    assert isinstance(chunked["ramp"].data, da.Array)
    xr.testing.assert_allclose(refpix(ds).compute(), chunked.compute())


def test_refpix__is_lazy():
    nir, _ = simulate_nir(shape=(32, 2048), nint=1, ngroups=2, seed=40)
    single, _ = simulate_nir(shape=(64, 64), nint=1, ngroups=2, noutputs=1, seed=41)
    miri, _ = simulate_miri(nint=1, ngroups=2, seed=42)
    with assert_lazy():
        for ds in (nir, single, miri):
            out = refpix(ds.chunk({"y": 16}))
            assert isinstance(out["ramp"].data, da.Array)
            xr.testing.assert_identical(out["groupdq"], ds.chunk({"y": 16})["groupdq"])
