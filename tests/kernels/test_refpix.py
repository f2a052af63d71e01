"""Kernels of the refpix step: clipped means per class, side running median."""

import numpy as np
import pytest
from scipy import stats

from daskref.kernels.refpix import (
    clipped_mean_by_label,
    mean_ignoring_nan,
    reflect_index,
    running_median_rows,
)


def test_clipped_mean_by_label__matches_scipy_sigmaclip():
    rng = np.random.default_rng(1)
    n = 600
    values = rng.normal(10.0, 3.0, (3, 4, n))
    values[..., rng.choice(n, 20, replace=False)] += 40.0  # outliers to clip
    labels = rng.integers(-1, 3, n)  # -1: not a reference pixel of any class
    good = rng.random(n) > 0.1
    got = clipped_mean_by_label(values, labels, 3, good)
    assert got.shape == (3, 4, 3)
    for i in range(3):
        for g in range(4):
            for label in range(3):
                sample = values[i, g, (labels == label) & good]
                clipped, _, _ = stats.sigmaclip(sample, 3.0, 3.0)
                np.testing.assert_allclose(got[i, g, label], clipped.mean(), rtol=1e-12)


def test_clipped_mean_by_label__one_pixel_stack_and_edge_cases():
    # a 1-sample class, a constant class (zero variance), a class with no good pixel
    values = np.array([[4.0, 7.0, 7.0, 7.0, 1.0, 2.0]])
    labels = np.array([0, 1, 1, 1, 2, 2])
    good = np.array([True, True, True, True, False, False])
    got = clipped_mean_by_label(values, labels, 4, good)
    np.testing.assert_array_equal(got[0, :2], [4.0, 7.0])
    assert np.isnan(got[0, 2]) and np.isnan(got[0, 3])  # all bad; no pixel at all


def test_clipped_mean_by_label__independent_of_batch():
    rng = np.random.default_rng(2)
    values = rng.normal(0, 1, (6, 500)).astype(np.float32)
    labels = np.arange(500) % 4
    whole = clipped_mean_by_label(values, labels, 4)
    parts = np.concatenate([clipped_mean_by_label(values[k : k + 1], labels, 4) for k in range(6)])
    np.testing.assert_array_equal(whole, parts)


def test_mean_ignoring_nan():
    a = np.array([1.0, np.nan, 3.0, np.nan])
    b = np.array([3.0, 5.0, np.nan, np.nan])
    got = mean_ignoring_nan(a, b)
    np.testing.assert_array_equal(got[:3], [2.0, 5.0, 3.0])
    assert np.isnan(got[3])


def test_reflect_index__is_numpy_reflect():
    size = 7
    idx = np.arange(-20, 27)
    expected = np.pad(np.arange(size), 20, mode="reflect")[idx + 20]
    np.testing.assert_array_equal(reflect_index(idx, size), expected)
    np.testing.assert_array_equal(reflect_index(np.array([-3, 0, 4]), 1), [0, 0, 0])


def _brute_running_median(values, good, length, row_start, full_rows):
    half = length // 2
    ny = values.shape[0]
    out = np.full(ny, np.nan)
    for i in range(ny):
        sample = []
        for k in range(-half, half + 1):
            r = row_start + i + k
            r = -r if r < 0 else r
            r = 2 * (full_rows - 1) - r if r >= full_rows else r
            j = r - row_start
            if 0 <= j < ny:
                sample.extend(values[j][good[j]])
        if sample:
            out[i] = np.median(sample)
    return out


@pytest.mark.parametrize(
    ("row_start", "full_rows"),
    [(0, 40), (0, 100), (60, 100), (30, 100)],  # whole detector, bottom, top, middle
)
def test_running_median_rows__matches_brute_force(row_start, full_rows):
    rng = np.random.default_rng(3)
    ny, ncol = 40, 4
    values = rng.normal(0, 1, (2, 3, ny, ncol))
    good = rng.random((ny, ncol)) > 0.2
    good[10:25] = False  # a stretch with no good pixel at all (window of 11 -> NaN rows)
    got = running_median_rows(values, good, 11, row_start=row_start, full_rows=full_rows)
    assert got.shape == (2, 3, ny)
    for i in range(2):
        for g in range(3):
            expected = _brute_running_median(values[i, g], good, 11, row_start, full_rows)
            np.testing.assert_array_equal(got[i, g], expected)
    assert np.isnan(got[..., 17]).all()


def test_running_median_rows__even_length_rounds_up_and_length_one_is_row_median():
    rng = np.random.default_rng(4)
    values = rng.normal(0, 1, (30, 4))
    good = np.ones((30, 4), bool)
    np.testing.assert_array_equal(
        running_median_rows(values, good, 10), running_median_rows(values, good, 11)
    )
    np.testing.assert_array_equal(
        running_median_rows(values, good, 1), np.median(values, axis=-1)
    )


def test_subtract_column_and_row_is_numpys_broadcast_bit_for_bit():
    from daskref.kernels.refpix import subtract_column_and_row

    rng = np.random.default_rng(0)
    target = rng.normal(1000, 50, (2, 3, 7, 11)).astype(np.float32)
    column = rng.normal(0, 5, (2, 3, 1, 11)).astype(np.float32)
    row = rng.normal(0, 5, (2, 3, 7, 1)).astype(np.float32)
    want = target - (column + row)
    got = subtract_column_and_row(target, column, row)
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    strided = target.transpose(0, 1, 3, 2)[..., :7, :]  # a transposed detector's view
    assert subtract_column_and_row(strided, column[..., :7], row[..., :7, :]).tobytes() == \
        (strided - (column[..., :7] + row[..., :7, :])).tobytes()


@pytest.mark.parametrize(("ny", "length", "row_start", "full_rows"), [
    (40, 11, 0, 40), (40, 11, 0, 2048), (25, 5, 2023, 2048), (30, 12, 100, 2048),
    (3, 11, 0, 3), (1, 1, 0, 1), (60, 11, 10, 70)])
def test_compiled_running_median_is_the_numpy_one_bit_for_bit(ny, length, row_start, full_rows):
    rng = np.random.default_rng(ny + length)
    values = rng.normal(0, 3, (2, 3, ny, 4)).astype(np.float32)
    values[..., :2, :] = np.round(values[..., :2, :])  # ties
    values[rng.random(values.shape) < 0.03] = np.nan
    good = rng.random((ny, 4)) > 0.1
    good[ny // 2] = False  # a row without good pixels
    kw = dict(row_start=row_start, full_rows=full_rows)
    want = running_median_rows(values, good, length, compiled=False, **kw)
    got = running_median_rows(values, good, length, **kw)
    assert got.tobytes() == want.tobytes()
