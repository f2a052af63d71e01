"""The compiled DARK statistic equals the vectorised one byte for byte."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from daskref import dq
from daskref.kernels._sort_numba import sorting_network
from daskref.kernels.dark import dark_kernel, dark_kernel_numpy


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 20, 33, 64, 100])
def test_sorting_network_sorts_every_input(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 500))
    x[:, :50] = np.round(x[:, :50])  # ties
    for a, b in sorting_network(n):
        lo, hi = np.minimum(x[a], x[b]), np.maximum(x[a], x[b])
        x[a], x[b] = lo, hi
    assert (np.diff(x, axis=0) >= 0).all()


def _darks(rng, nint, ngroup, shape):
    """Dark ramps (integration, group, y, x) with jumps, saturation, DO_NOT_USE and NaN,
    outliers to clip, and pixels that lose every sample of some groups."""
    t = np.arange(1, ngroup + 1) * 10.6
    rate = rng.uniform(-0.01, 2, shape)
    data = (rate * t[:, None, None] + rng.normal(0, 8, (nint, ngroup) + shape))
    data[rng.random(data.shape) < 0.02] += 300.0
    data = data.astype(np.float32)
    gdq = np.zeros(data.shape, np.uint8)
    gdq[rng.random(gdq.shape) < 0.03] |= dq.JUMP_DET
    gdq[rng.random(gdq.shape) < 0.03] |= dq.SATURATED
    gdq[rng.random(gdq.shape) < 0.03] |= dq.DO_NOT_USE
    gdq[:, ngroup // 2:, 0, 0] |= dq.JUMP_DET  # groups with no sample: filled
    gdq[:, :, -1, -1] |= dq.SATURATED  # nothing measured at all
    data[rng.random(data.shape) < 0.01] = np.nan
    return data, gdq


def _stack_last(a):
    """The (y, x, integration, group) view of an (integration, group, y, x) array."""
    return np.moveaxis(a, (0, 1), (-2, -1))


CASES = list(itertools.product([1, 2, 7, 20], [1, 2, 6, 21], ["mean", "median"], [True, False]))


@pytest.mark.parametrize(("nint", "ngroup", "stat", "clip"), CASES)
def test_compiled_dark_is_byte_identical(nint, ngroup, stat, clip):
    rng = np.random.default_rng(nint * 100 + ngroup)
    data, gdq = _darks(rng, nint, ngroup, (3, 37))
    times = np.arange(1, ngroup + 1) * 10.6
    fit_groups = np.ones(ngroup, bool)
    if ngroup > 3:
        fit_groups[[0, -1]] = False
    nplanes = 2 if nint >= 2 else 1
    plane_index = np.where(np.arange(nint) % 3 == 0, 0, 1) if nplanes == 2 else np.zeros(nint)
    kw = dict(nplanes=nplanes, stat=stat, clip=clip, sigma=3.0, maxiters=5)
    for dq_arg in (gdq, None):
        ramp = _stack_last(data)
        g = None if dq_arg is None else _stack_last(dq_arg)
        want = dark_kernel_numpy(ramp, g, plane_index, times, fit_groups, **kw)
        got = dark_kernel(ramp, g, plane_index, times, fit_groups, **kw)
        for w, o in zip(want, got, strict=True):
            assert w.shape == o.shape and w.dtype == o.dtype
            assert np.ascontiguousarray(w).tobytes() == np.ascontiguousarray(o).tobytes()


def test_compiled_dark_reads_any_layout():
    """Non-contiguous and one-dimensional pixel layouts give the same values."""
    rng = np.random.default_rng(5)
    data, gdq = _darks(rng, 6, 5, (4, 30))
    times = np.arange(1, 6) * 10.0
    kw = dict(nplanes=1, stat="mean", clip=True, sigma=3.0, maxiters=5)
    args = (np.zeros(6, int), times, np.ones(5, bool))
    full = dark_kernel(_stack_last(data), _stack_last(gdq), *args, **kw)
    strided = dark_kernel(_stack_last(data)[:, ::2], _stack_last(gdq)[:, ::2], *args, **kw)
    flat = dark_kernel(_stack_last(data).reshape(120, 6, 5), _stack_last(gdq).reshape(120, 6, 5),
                       *args, **kw)
    for f, s, one in zip(full, strided, flat, strict=True):
        np.testing.assert_array_equal(f[:, ::2], s)
        np.testing.assert_array_equal(f.reshape((120,) + f.shape[2:]), one)
