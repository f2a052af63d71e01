"""The compiled per-pixel statistics of the bad-pixel search in darks equal numpy's bytes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from daskref import dq
from daskref.kernels._badpix_dark_numba import _pairwise_columns
from daskref.kernels.badpix_dark import (
    STATISTICS,
    dark_pixel_statistics,
    dark_pixel_statistics_numpy,
)

KW = dict(clip_sigma=5.0, clip_iters=5, step_sigma_threshold=5.0, max_jump_limit=2,
          jump_ratio_threshold=5.0, early_cutoff_fraction=0.25, pedestal_sigma_threshold=5.0,
          rc_fraction_threshold=0.8, low_pedestal_fraction=0.8)


def _darks(rng, nint, ngroup, shape):
    """Dark ramps (integration, group, y, x) with every kind of pixel the search meets.

    Noise and dark current; telegraph steps; RC-like early transients; jumps (with
    and without a step); NaN samples; saturation from a random group (from group 0
    in some integrations, in all of some pixels); DO_NOT_USE on some groups and on
    every group of some pixels; constant ramps (zero noise). Returns the ramps,
    the group DQ and ramp-fit-like rates (integration, y, x), some NaN.
    """
    t = np.arange(1, ngroup + 1) * 10.7
    size = (nint, ngroup) + shape
    rate = rng.uniform(-0.01, 0.5, shape)
    data = 1000.0 + rate * t[:, None, None] + rng.normal(0, 8, size)
    # telegraph: a two-level signal switching at random groups
    tel = rng.random(shape) < 0.1
    level = np.cumsum(rng.random(size) < 0.15, axis=1) % 2
    data += np.where(tel, 60.0 * level, 0.0)
    # RC: an early transient of either sign
    rc = rng.random(shape) < 0.1
    amp = rng.choice([-200.0, 200.0], shape)
    data += np.where(rc, amp * np.exp(-np.arange(ngroup) / 1.5)[:, None, None], 0.0)
    # cosmic rays: a step from a random group, flagged; and flags without a step
    gdq = np.zeros(size, np.uint8)
    cr = rng.random(size) < 0.01
    data += 300.0 * np.cumsum(cr, axis=1)
    gdq[cr] |= dq.JUMP_DET
    gdq[rng.random(size) < 0.02] |= dq.JUMP_DET
    # saturation from an onset group per integration (0: saturated from group 0)
    onset = rng.integers(0, 3 * ngroup, (nint,) + shape)
    onset[:, rng.random(shape) < 0.05] = 0  # saturated in every integration
    onset[0, rng.random(shape) < 0.1] = 0
    gdq[np.arange(ngroup)[None, :, None, None] >= onset[:, None]] |= dq.SATURATED
    gdq[rng.random(size) < 0.02] |= dq.DO_NOT_USE
    gdq[:, :, rng.random(shape) < 0.05] |= dq.DO_NOT_USE  # dq_init's per-pixel flag
    data[rng.random(size) < 0.01] = np.nan
    data = data.astype(np.float32)
    data[:, :, 0, :3] = 500.0  # constant ramps
    rates = (rate + rng.normal(0, 0.05, (nint,) + shape)).astype(np.float32)
    rates[rng.random(rates.shape) < 0.05] = np.nan
    return data, gdq, rates, t


def _stack_last(a, ncore=2):
    """The (y, x, integration[, group]) view of an (integration[, group], y, x) array."""
    core = tuple(range(ncore))
    return np.moveaxis(a, core, tuple(range(-ncore, 0)))


def _assert_identical(ramp, gdq, rates, t, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = dark_pixel_statistics_numpy(ramp, gdq, rates, t, **kw)
    got = dark_pixel_statistics(ramp, gdq, rates, t, **kw)
    assert len(got) == len(STATISTICS)
    for name, w, o in zip(STATISTICS, want, got, strict=True):
        assert w.shape == o.shape and w.dtype == o.dtype == np.float32, name
        # bytes: signed zeros and NaN payloads too
        assert np.ascontiguousarray(w).tobytes() == np.ascontiguousarray(o).tobytes(), name


CASES = [(nint, ngroup) for nint in (1, 2, 7, 20) for ngroup in (2, 3, 4, 6, 20)]


@pytest.mark.parametrize(("nint", "ngroup"), CASES)
def test_compiled_statistics_are_byte_identical(nint, ngroup):
    rng = np.random.default_rng(nint * 100 + ngroup)
    shape = (3, 300)  # several tiles along x for every tile width
    data, gdq, rates, t = _darks(rng, nint, ngroup, shape)
    gain_map = rng.uniform(1.5, 2.5, shape)
    gain_map[0, 3:9] = np.nan
    gain_map[1, 3:9] = 0.0
    for gain in (None, 2.1, gain_map):
        _assert_identical(_stack_last(data), _stack_last(gdq), _stack_last(rates, 1), t,
                          gain=gain, **KW)


@pytest.mark.parametrize("kw", [
    dict(max_jump_limit=1, step_sigma_threshold=3.0, early_cutoff_fraction=0.5),
    dict(clip_iters=0, jump_ratio_threshold=0.5, pedestal_sigma_threshold=2.0),
    dict(clip_sigma=np.inf, rc_fraction_threshold=0.3, low_pedestal_fraction=0.2),
    dict(clip_sigma=2.0, rc_fraction_threshold=0.0, low_pedestal_fraction=1.0),
])
def test_other_parameters(kw):
    rng = np.random.default_rng(len(kw) + int(kw.get("max_jump_limit", 3)))
    data, gdq, rates, t = _darks(rng, 7, 12, (2, 120))
    _assert_identical(_stack_last(data), _stack_last(gdq), _stack_last(rates, 1), t,
                      gain=2.0, **(KW | kw))


@pytest.mark.parametrize(("nint", "ngroup", "cutoff"), [
    (3, 40, 0.5),  # 19 early differences: numpy's pairwise sum in 8 partial sums
    (2, 140, 0.25),  # rate sums over more than 128 groups: numpy halves the row
    (1, 300, 0.5),  # more than 128 early differences
])
def test_long_ramps(nint, ngroup, cutoff):
    rng = np.random.default_rng(ngroup)
    data, gdq, rates, t = _darks(rng, nint, ngroup, (2, 40))
    _assert_identical(_stack_last(data), _stack_last(gdq), _stack_last(rates, 1), t,
                      gain=2.0, **(KW | dict(early_cutoff_fraction=cutoff)))


def test_any_layout():
    """Non-contiguous views, a 1-D lead, a single pixel and float64 inputs."""
    rng = np.random.default_rng(11)
    data, gdq, rates, t = _darks(rng, 5, 8, (4, 90))
    gain = rng.uniform(1.5, 2.5, (4, 90))
    ramp, g, r = _stack_last(data), _stack_last(gdq), _stack_last(rates, 1)
    # every other column: strided along x
    _assert_identical(ramp[:, ::2], g[:, ::2], r[:, ::2], t, gain=gain[:, ::2], **KW)
    # the slab's own (y, x, integration, group) C order: pixels far apart
    _assert_identical(np.ascontiguousarray(ramp), np.ascontiguousarray(g),
                      np.ascontiguousarray(r), t, gain=gain, **KW)
    # pixels in one axis
    flat = (data.reshape(5, 8, -1), gdq.reshape(5, 8, -1), rates.reshape(5, -1))
    _assert_identical(_stack_last(flat[0]), _stack_last(flat[1]), _stack_last(flat[2], 1), t,
                      gain=gain.reshape(-1), **KW)
    # a single pixel, and float64 ramps and rates
    _assert_identical(ramp[1, 7], g[1, 7], r[1, 7], t, gain=2.0, **KW)
    _assert_identical(ramp.astype(np.float64), g, r.astype(np.float64), t.astype(np.float32),
                      gain=None, **KW)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pairwise_columns_sums_as_numpy(dtype):
    rng = np.random.default_rng(3)
    for n in [*range(0, 40), 127, 128, 129, 300]:
        a = (rng.standard_normal((n, 9)) * 10.0 ** rng.integers(-3, 6, (n, 9))).astype(dtype)
        res = np.empty(9, dtype)
        _pairwise_columns(a, n, 9, np.empty((8, 9), dtype), res)
        assert res.tobytes() == np.ascontiguousarray(a.T).sum(axis=-1).tobytes(), n
