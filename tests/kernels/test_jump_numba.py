"""The compiled two-point difference search equals the vectorised one byte for byte."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from daskref import dq
from daskref.kernels.jump import two_point_difference, two_point_difference_numpy


def _ramps(rng, nint, ngroup, shape):
    """Ramps with cosmic rays (several per ramp in some), ties, saturation, DO_NOT_USE,
    NaN, pixels without gain or read noise, and a zero-noise pixel."""
    t = np.arange(ngroup, dtype=float)
    rate = rng.uniform(0, 30, shape)
    data = rate * t[:, None, None] + rng.normal(0, 5, (nint, ngroup) + shape)
    jumps = rng.random(data.shape) < 0.06
    data += np.cumsum(np.where(jumps, rng.uniform(20, 3000, data.shape), 0.0), axis=1)
    data[..., :2, :] = np.round(data[..., :2, :] / 50) * 50  # equal differences
    data = data.astype(np.float32)
    gdq = np.zeros(data.shape, np.uint8)
    gdq[rng.random(gdq.shape) < 0.03] |= dq.SATURATED
    gdq[rng.random(gdq.shape) < 0.03] |= dq.DO_NOT_USE
    data[rng.random(data.shape) < 0.01] = np.nan
    rn = rng.uniform(5, 15, shape)
    rn[0, 1] = np.nan
    gain = rng.uniform(1.5, 2.5, shape)
    gain[0, 2] = 0.0
    rn[0, 3], rate[0, 3] = 0.0, 0.0
    data[:, :, 0, 3] = 7.0  # no noise at all: 0 / 0 ratios
    data[0, ngroup // 2:, 0, 3] += 100.0
    return data, gdq, rn, gain


@pytest.mark.parametrize(("nint", "ngroup", "nframes"), list(itertools.product(
    [1, 3], [1, 2, 3, 4, 5, 10, 20, 41], [1, 4])))
def test_compiled_search_is_byte_identical(nint, ngroup, nframes):
    rng = np.random.default_rng(nint * 100 + ngroup + nframes)
    data, gdq, rn, gain = _ramps(rng, nint, ngroup, (5, 67))
    kw = dict(nframes=nframes, rejection_threshold=4.0, three_group_rejection_threshold=6.0,
              four_group_rejection_threshold=5.0)
    want = two_point_difference_numpy(data, gdq, rn, gain, **kw)
    got = two_point_difference(data, gdq, rn, gain, **kw)
    assert want[0].any() or ngroup < 3
    for w, o in zip(want, got, strict=True):
        assert w.dtype == o.dtype and w.tobytes() == o.tobytes()


def test_compiled_search_reads_a_strided_slab():
    rng = np.random.default_rng(2)
    data, gdq, rn, gain = _ramps(rng, 2, 12, (6, 40))
    a = two_point_difference(data[..., ::2], gdq[..., ::2], rn[:, ::2], gain[:, ::2])
    b = two_point_difference_numpy(np.ascontiguousarray(data[..., ::2]), gdq[..., ::2],
                                   rn[:, ::2], gain[:, ::2])
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("flag", [True, False])
@pytest.mark.parametrize(("lo", "hi"), [(10.0, 1000.0), (4.5, 60.0)])
def test_compiled_packed_stages_are_byte_identical(flag, lo, hi):
    from daskref.kernels.jump import (
        detect_jumps_packed,
        detect_jumps_packed_numpy,
        unpack_and_flag_neighbors,
        unpack_and_flag_neighbors_numpy,
    )

    rng = np.random.default_rng(7)
    data, gdq, rn, gain = _ramps(rng, 2, 15, (9, 31))
    kw = dict(flag_4_neighbors=flag, min_jump_to_flag_neighbors=lo,
              max_jump_to_flag_neighbors=hi)
    want = detect_jumps_packed_numpy(data, gdq, rn, gain, **kw)
    got = detect_jumps_packed(data, gdq, rn, gain, **kw)
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    assert ((want >> 8) & 1).any() == flag
    a = unpack_and_flag_neighbors_numpy(want)
    b = unpack_and_flag_neighbors(want)
    assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    strided = want[..., ::2, 1:]
    assert unpack_and_flag_neighbors(strided).tobytes() == \
        unpack_and_flag_neighbors_numpy(strided).tobytes()
