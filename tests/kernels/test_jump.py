import numpy as np
import pytest

from daskref import dq
from daskref.kernels import jump as kj

RN = 10.0  # CDS read noise, DN
GAIN = 1.0


def _ramp(values):
    """One pixel, one integration: (1, ngroup, 1, 1) float32."""
    return np.asarray(values, dtype=np.float32)[None, :, None, None]


def _flat_ramp(ngroup, step=100.0):
    return _ramp(1000.0 + step * np.arange(ngroup))


def _sigma(step=100.0, rn=RN, gain=GAIN, nframes=1):
    return np.sqrt(abs(step) / gain + rn**2 / nframes)


def _detect(data, gdq=None, **kw):
    gdq = np.zeros(data.shape, np.uint8) if gdq is None else gdq
    return kj.two_point_difference(data, gdq, RN, GAIN, **kw)


def test_two_point_difference__single_jump_flags_its_group():
    data = _flat_ramp(10)
    data[0, 6:] += 20 * _sigma()
    jump, ratio = _detect(data)
    assert np.flatnonzero(jump[0, :, 0, 0]).tolist() == [6]
    # the clipped median of the clean differences is exactly the step
    assert ratio[0, 6, 0, 0] == pytest.approx(20.0, rel=1e-5)
    assert ratio[jump == 0].max() == 0


def test_two_point_difference__iterates_to_find_two_jumps():
    data = _flat_ramp(12)
    data[0, 3:] += 30 * _sigma()
    data[0, 8:] += 8 * _sigma()
    jump, _ = _detect(data)
    assert np.flatnonzero(jump[0, :, 0, 0]).tolist() == [3, 8]


def test_two_point_difference__negative_jump_is_flagged():
    data = _flat_ramp(10)
    data[0, 5:] -= 20 * _sigma()
    jump, _ = _detect(data)
    assert np.flatnonzero(jump[0, :, 0, 0]).tolist() == [5]


def test_two_point_difference__below_threshold_not_flagged():
    data = _flat_ramp(10)
    data[0, 5:] += 3.5 * _sigma()
    assert not _detect(data)[0].any()
    assert _detect(data, rejection_threshold=3.0)[0][0, 5, 0, 0]


def test_two_point_difference__saturated_and_do_not_use_groups_are_excluded():
    data = _flat_ramp(10)
    data[0, 7:] = 60000.0  # saturated plateau after a big step
    data[0, 0] = -5000.0  # garbage first group
    gdq = np.zeros(data.shape, np.uint8)
    gdq[0, 7:] = dq.SATURATED
    gdq[0, 0] = dq.DO_NOT_USE
    jump, _ = _detect(data, gdq)
    assert not jump.any()


def test_two_point_difference__three_group_threshold():
    # two differences: the smaller one is the reference; the larger is tested
    # against three_group_rejection_threshold (default 6)
    sigma = _sigma(100.0)
    data = _ramp([0.0, 100.0, 200.0 + 5.5 * sigma])
    assert not _detect(data)[0].any()
    jump, ratio = _detect(data, three_group_rejection_threshold=5.0)
    assert np.flatnonzero(jump[0, :, 0, 0]).tolist() == [2]
    assert ratio[0, 2, 0, 0] == pytest.approx(5.5, rel=1e-5)


def test_two_point_difference__four_group_threshold():
    # three differences: plain median; threshold four_group_rejection_threshold (5)
    sigma = _sigma(100.0)
    data = _ramp([0.0, 100.0, 200.0, 300.0 + 4.5 * sigma])
    assert not _detect(data)[0].any()
    assert not _detect(data, rejection_threshold=3.0)[0].any()  # not the >=4 threshold
    jump, _ = _detect(data, four_group_rejection_threshold=4.0)
    assert np.flatnonzero(jump[0, :, 0, 0]).tolist() == [3]


def test_two_point_difference__nframes_scales_read_noise():
    # with NFRAMES=4 the difference read noise is RN/2, so a 6-sigma(nframes=1)
    # jump of a dark ramp becomes a 12-sigma one
    data = _flat_ramp(10, step=0.0)
    data[0, 5:] += 6.0 * RN
    _, r1 = _detect(data, nframes=1)
    _, r4 = _detect(data, nframes=4)
    assert r1[0, 5, 0, 0] == pytest.approx(6.0, rel=1e-5)
    assert r4[0, 5, 0, 0] == pytest.approx(12.0, rel=1e-5)


@pytest.mark.parametrize("gain", [0.0, -1.0, np.nan])
def test_two_point_difference__bad_gain_pixel_skipped(gain):
    data = _flat_ramp(10)
    data[0, 5:] += 1e4
    jump, _ = kj.two_point_difference(data, np.zeros(data.shape, np.uint8), RN, gain)
    assert not jump.any()


def test_two_point_difference__fewer_than_three_groups_does_nothing():
    data = _ramp([0.0, 1e5])
    assert not _detect(data)[0].any()


def test_cross_dilate__no_wrap():
    m = np.zeros((3, 4), bool)
    m[0, 0] = True
    out = kj.cross_dilate(m)
    assert np.argwhere(out).tolist() == [[0, 0], [0, 1], [1, 0]]


def _image_with_jump(amplitude_sigma, shape=(5, 5), at=(2, 2), ngroup=10):
    ny, nx = shape
    data = np.broadcast_to(1000.0 + 100.0 * np.arange(ngroup)[:, None, None], (ngroup, ny, nx))
    data = data[None].astype(np.float32).copy()
    data[0, 5:, at[0], at[1]] += amplitude_sigma * _sigma()
    return data


@pytest.mark.parametrize(("amplitude", "neighbours"), [(20.0, True), (8.0, False), (2000.0, False)])
def test_detect_jumps__neighbours_flagged_between_min_and_max(amplitude, neighbours):
    data = _image_with_jump(amplitude)
    gdq = np.zeros(data.shape, np.uint8)
    out = kj.detect_jumps(data, gdq, RN, GAIN, rejection_threshold=4.0)
    jumps = (out & dq.JUMP_DET) != 0
    expected = {(5, 2, 2)}
    if neighbours:
        expected |= {(5, 1, 2), (5, 3, 2), (5, 2, 1), (5, 2, 3)}
    assert {tuple(p) for p in np.argwhere(jumps[0])} == expected


def test_detect_jumps__neighbour_flags_skip_saturated_and_can_be_off():
    data = _image_with_jump(20.0)
    gdq = np.zeros(data.shape, np.uint8)
    gdq[0, 3:, 1, 2] = dq.SATURATED  # the neighbour above is saturated from group 3
    out = kj.detect_jumps(data, gdq, RN, GAIN)
    assert out[0, 5, 1, 2] == dq.SATURATED
    assert out[0, 5, 3, 2] == dq.JUMP_DET
    off = kj.detect_jumps(data, np.zeros(data.shape, np.uint8), RN, GAIN, flag_4_neighbors=False)
    assert np.argwhere(off[0] & dq.JUMP_DET).tolist() == [[5, 2, 2]]


def test_detect_jumps__keeps_existing_flags_and_dtype():
    data = _image_with_jump(20.0)
    gdq = np.full(data.shape, dq.PERSISTENCE, np.uint8)
    out = kj.detect_jumps(data, gdq, RN, GAIN)
    assert out.dtype == np.uint8
    assert np.all(out & dq.PERSISTENCE)


def test_detect_jumps__one_by_one_pixel_stack():
    data = _flat_ramp(6)
    data[0, 3:] += 50 * _sigma()
    out = kj.detect_jumps(data, np.zeros(data.shape, np.uint8), RN, GAIN)
    assert out[0, :, 0, 0].tolist() == [0, 0, 0, dq.JUMP_DET, 0, 0]
