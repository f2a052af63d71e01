"""Jump (cosmic-ray) detection on one chunk of up-the-ramp data: the two-point difference.

Plain numpy. Arrays are ``(integration, group, y, x)``; the per-pixel maps
(read noise, gain) are ``(y, x)`` or anything that broadcasts to it.

Notes
-----
For each integration and pixel, the first differences ``d_k = G[k+1] - G[k]``
(DN) between consecutive usable groups are compared with a reference level ``m``
and an expected noise ``sigma``::

    sigma = sqrt(|m| / gain + readnoise**2 / nframes)        [DN]
    ratio_k = |d_k - m| / sigma

``readnoise`` is the CDS read noise in DN (the READNOISE reference-file
convention), so ``readnoise**2 / nframes`` is the read-noise variance of the
difference of two groups each averaging ``nframes`` frames; ``|m| / gain`` is the
Poisson variance (DN^2) of the accumulated charge, ``gain`` in e-/DN.

The reference level depends on the number ``n`` of usable differences:

* ``n >= 4``: the median of the differences after dropping the largest one
  (a cosmic ray biases the plain median upwards); threshold ``rejection_threshold``;
* ``n == 3``: the plain median; threshold ``four_group_rejection_threshold``;
* ``n == 2``: the smaller difference, so only the larger one can be flagged;
  threshold ``three_group_rejection_threshold``;
* ``n < 2``: nothing is tested.

The difference with the largest ratio is flagged when the ratio exceeds the
threshold, and the group at its upper end gets ``JUMP_DET``; that difference is
removed and the test repeats with the remaining ones until nothing more is
flagged. Groups flagged ``SATURATED`` or ``DO_NOT_USE`` (and NaN samples) never
enter a difference, so they are never flagged as jumps.

Optionally the four side neighbours of each jump whose ratio lies strictly
between ``min_jump_to_flag_neighbors`` and ``max_jump_to_flag_neighbors`` (in
sigma) get ``JUMP_DET`` in the same group (inter-pixel capacitance spreads part
of the charge there), except where that neighbour group is already
``SATURATED`` or ``DO_NOT_USE``.

References
----------
JWST pipeline documentation, ``jump`` step and the stcal jump algorithm
(two-point difference method).
"""

from __future__ import annotations

import numpy as np

from daskref import dq

#: Group flags that exclude a sample from the differences.
_UNUSABLE = dq.SATURATED | dq.DO_NOT_USE
#: Bit of the packed stage-1 output marking a jump whose neighbours are to be flagged.
_NEIGHBOR_BIT = 1 << 8


def _pixel_map(values, ny: int, nx: int) -> np.ndarray:
    """Flat float64 ``(ny * nx,)`` view of a scalar or (..., y, x) map with unit leading axes."""
    a = np.asarray(values, dtype=np.float64)
    if a.ndim > 2:
        a = a.reshape(a.shape[-2:])
    return np.broadcast_to(a, (ny, nx)).ravel()


def _noise_maps(readnoise, gain, nframes, ny, nx):
    """Flat (usable pixel, read-noise variance of a difference in DN^2, gain) maps.

    Pixels without a positive finite gain or a finite read noise are unusable
    (variance 0 and gain 1 there, never read).
    """
    rn = _pixel_map(readnoise, ny, nx)
    g = _pixel_map(gain, ny, nx)
    usable_pixel = valid_gain(g) & np.isfinite(rn)
    rn2 = np.where(usable_pixel, rn * rn / max(int(nframes), 1), 0.0)
    return usable_pixel, rn2, np.where(usable_pixel, g, 1.0)


def valid_gain(gain) -> np.ndarray:
    """Return True where a gain value (e-/DN) is usable: finite and positive."""
    gain = np.asarray(gain, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(gain) & (gain > 0)


def two_point_difference(
    data: np.ndarray,
    groupdq: np.ndarray,
    readnoise,
    gain,
    *,
    nframes: int = 1,
    rejection_threshold: float = 4.0,
    three_group_rejection_threshold: float = 6.0,
    four_group_rejection_threshold: float = 5.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Find jumps with the iterative two-point difference method.

    Parameters
    ----------
    data : numpy.ndarray, (integration, group, y, x), DN
        Ramp samples (after saturation flagging, superbias, linearity, dark).
    groupdq : numpy.ndarray of uint8, (integration, group, y, x)
        Group DQ; ``SATURATED`` and ``DO_NOT_USE`` groups are not used.
    readnoise : array_like, (y, x), DN
        CDS read noise (noise of the difference of two single frames).
    gain : array_like, (y, x), e-/DN
        Pixels with a non-positive or NaN gain (or NaN read noise) are skipped.
    nframes : int
        Frames averaged per group (header ``NFRAMES``).
    rejection_threshold, three_group_rejection_threshold, four_group_rejection_threshold : float
        Thresholds in sigma for pixels with >= 4, 2 and 3 usable differences.

    Returns
    -------
    jump : numpy.ndarray of bool, (integration, group, y, x)
        True at the group that starts after a detected jump.
    ratio : numpy.ndarray of float32, (integration, group, y, x)
        The jump's ratio ``|d - m| / sigma`` at flagged groups, 0 elsewhere.
    """
    return _two_point_difference(data, groupdq, readnoise, gain, nframes, rejection_threshold,
                                 three_group_rejection_threshold,
                                 four_group_rejection_threshold, compiled=True)


def two_point_difference_numpy(data, groupdq, readnoise, gain, *, nframes=1,
                               rejection_threshold=4.0, three_group_rejection_threshold=6.0,
                               four_group_rejection_threshold=5.0):
    """Vectorised numpy version of :func:`two_point_difference` (the reference)."""
    return _two_point_difference(data, groupdq, readnoise, gain, nframes, rejection_threshold,
                                 three_group_rejection_threshold,
                                 four_group_rejection_threshold, compiled=False)


def _two_point_difference(data, groupdq, readnoise, gain, nframes, rejection_threshold,
                          three_group_rejection_threshold, four_group_rejection_threshold,
                          compiled):
    data = np.asarray(data)
    nint, ngroup, ny, nx = data.shape
    npix = ny * nx
    usable_pixel, rn2, g = _noise_maps(readnoise, gain, nframes, ny, nx)

    jump = np.zeros((nint, ngroup, npix), dtype=bool)
    ratio_out = np.zeros((nint, ngroup, npix), dtype=np.float32)
    if ngroup < 3:
        return jump.reshape(data.shape), ratio_out.reshape(data.shape)

    bad = ((np.asarray(groupdq) & _UNUSABLE) != 0).reshape(nint, ngroup, npix)
    flat = data.reshape(nint, ngroup, npix)
    if compiled:
        from ._jump_numba import jump_block
        from ._sort_numba import sorting_network

        jump_block(flat, bad, usable_pixel, rn2, g, float(rejection_threshold),
                   float(three_group_rejection_threshold),
                   float(four_group_rejection_threshold), sorting_network(ngroup - 1),
                   PIXEL_WIDTH, jump, ratio_out, False, _NO_PACKED, False, 0.0, 0.0)
        return jump.reshape(data.shape), ratio_out.reshape(data.shape)
    thresholds = np.array(
        [np.inf, np.inf, three_group_rejection_threshold, four_group_rejection_threshold],
        dtype=np.float64,
    )
    # pixels are independent: work on blocks of them so that the float64
    # temporaries stay small whatever the chunk size
    for i in range(nint):
        for p0 in range(0, npix, PIXEL_BLOCK):
            sl = slice(p0, min(p0 + PIXEL_BLOCK, npix))
            _detect_block(
                flat[i, :, sl], bad[i, :, sl], usable_pixel[sl], rn2[sl], g[sl],
                jump[i, :, sl], ratio_out[i, :, sl],
                rejection_threshold=rejection_threshold, thresholds=thresholds,
            )
    return jump.reshape(data.shape), ratio_out.reshape(data.shape)


#: Pixels sorted together by the compiled search.
PIXEL_WIDTH = 256
_NO_PACKED = np.zeros((1, 1, 1), np.uint16)

#: Pixels searched together by :func:`two_point_difference`.
PIXEL_BLOCK = 16384


def _detect_block(data, bad, usable_pixel, rn2, g, jump, ratio_out, *, rejection_threshold,
                  thresholds):
    """Two-point difference search on ``data`` (group, pixel) of one integration.

    Writes into ``jump`` (group, pixel) bool and ``ratio_out`` (group, pixel) float32.
    """
    samples = data.astype(np.float64)
    samples[bad] = np.nan
    diffs = np.diff(samples, axis=0)
    diffs[:, ~usable_pixel] = np.nan
    ndiff = np.count_nonzero(~np.isnan(diffs), axis=0)
    active = np.flatnonzero(ndiff >= 2)
    while active.size:
        sub = diffs[:, active]
        n = ndiff[active]
        srt = np.sort(sub, axis=0)  # NaN sort last
        used = np.where(n >= 4, n - 1, n)  # drop the largest when n >= 4
        lo = np.where(n == 2, 0, (used - 1) // 2)
        hi = np.where(n == 2, 0, used // 2)
        cols = np.arange(active.size)
        ref = 0.5 * (srt[lo, cols] + srt[hi, cols])
        sigma = np.sqrt(np.abs(ref) / g[active] + rn2[active])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.abs(sub - ref) / sigma
        ratio = np.where(np.isnan(ratio), -np.inf, ratio)
        k = np.argmax(ratio, axis=0)
        best = ratio[k, cols]
        thr = np.where(n >= 4, rejection_threshold, thresholds[np.minimum(n, 3)])
        hit = best > thr
        pix = active[hit]
        kk = k[hit]
        diffs[kk, pix] = np.nan
        ndiff[pix] -= 1
        jump[kk + 1, pix] = True
        ratio_out[kk + 1, pix] = best[hit]
        active = pix[ndiff[pix] >= 2]

def neighbor_sources(
    jump: np.ndarray,
    ratio: np.ndarray,
    *,
    max_jump_to_flag_neighbors: float = 1000.0,
    min_jump_to_flag_neighbors: float = 10.0,
) -> np.ndarray:
    """Jumps whose four neighbours are to be flagged: ``min < ratio < max`` (sigma)."""
    return jump & (ratio > min_jump_to_flag_neighbors) & (ratio < max_jump_to_flag_neighbors)


def cross_dilate(mask: np.ndarray) -> np.ndarray:
    """OR of ``mask`` with its four side-shifted copies along the last two axes (no wrap)."""
    out = mask.copy()
    out[..., 1:, :] |= mask[..., :-1, :]
    out[..., :-1, :] |= mask[..., 1:, :]
    out[..., :, 1:] |= mask[..., :, :-1]
    out[..., :, :-1] |= mask[..., :, 1:]
    return out


def flag_neighbors(groupdq: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Add ``JUMP_DET`` to the four neighbours of ``sources`` in the same group.

    Parameters
    ----------
    groupdq : numpy.ndarray of uint8, (..., y, x)
    sources : numpy.ndarray of bool, same shape

    Returns
    -------
    numpy.ndarray of uint8
        New group DQ; neighbour groups already ``SATURATED`` or ``DO_NOT_USE``
        are left alone.
    """
    grow = cross_dilate(sources) & ((groupdq & _UNUSABLE) == 0)
    return groupdq | np.where(grow, np.uint8(dq.JUMP_DET), np.uint8(0))


def detect_jumps_packed(
    data: np.ndarray,
    groupdq: np.ndarray,
    readnoise,
    gain,
    *,
    nframes: int = 1,
    rejection_threshold: float = 4.0,
    three_group_rejection_threshold: float = 6.0,
    four_group_rejection_threshold: float = 5.0,
    flag_4_neighbors: bool = True,
    max_jump_to_flag_neighbors: float = 1000.0,
    min_jump_to_flag_neighbors: float = 10.0,
) -> np.ndarray:
    """Stage 1 of chunked jump detection: per-pixel flags, packed for the halo stage.

    Returns
    -------
    numpy.ndarray of uint16, (integration, group, y, x)
        Low byte: the group DQ with ``JUMP_DET`` added at detected jumps; bit 8: the
        jump's neighbours are to be flagged (see :func:`unpack_and_flag_neighbors`).
        The search marks them as it finds them (:func:`._jump_numba.jump_block`).
    """
    from ._jump_numba import jump_block
    from ._sort_numba import sorting_network

    data = np.asarray(data)
    nint, ngroup, ny, nx = data.shape
    out = np.asarray(groupdq).astype(np.uint16)
    if ngroup < 3:
        return out
    npix = ny * nx
    usable_pixel, rn2, g = _noise_maps(readnoise, gain, nframes, ny, nx)
    bad = ((out & _UNUSABLE) != 0).reshape(nint, ngroup, npix)
    packed = out.reshape(nint, ngroup, npix)
    jump_block(data.reshape(nint, ngroup, npix), bad, usable_pixel, rn2, g,
               float(rejection_threshold), float(three_group_rejection_threshold),
               float(four_group_rejection_threshold), sorting_network(ngroup - 1), PIXEL_WIDTH,
               _NO_JUMP, _NO_RATIO, True, packed, bool(flag_4_neighbors),
               float(min_jump_to_flag_neighbors), float(max_jump_to_flag_neighbors))
    return out


_NO_JUMP = np.zeros((1, 1, 1), bool)
_NO_RATIO = np.zeros((1, 1, 1), np.float32)


def detect_jumps_packed_numpy(data, groupdq, readnoise, gain, *, nframes=1,
                              rejection_threshold=4.0, three_group_rejection_threshold=6.0,
                              four_group_rejection_threshold=5.0, flag_4_neighbors=True,
                              max_jump_to_flag_neighbors=1000.0,
                              min_jump_to_flag_neighbors=10.0) -> np.ndarray:
    """Vectorised numpy version of :func:`detect_jumps_packed` (the reference)."""
    jump, ratio = two_point_difference_numpy(
        data,
        groupdq,
        readnoise,
        gain,
        nframes=nframes,
        rejection_threshold=rejection_threshold,
        three_group_rejection_threshold=three_group_rejection_threshold,
        four_group_rejection_threshold=four_group_rejection_threshold,
    )
    out = np.asarray(groupdq).astype(np.uint16)
    np.bitwise_or(out, np.uint16(dq.JUMP_DET), out=out, where=jump)
    if flag_4_neighbors:
        src = neighbor_sources(
            jump,
            ratio,
            max_jump_to_flag_neighbors=max_jump_to_flag_neighbors,
            min_jump_to_flag_neighbors=min_jump_to_flag_neighbors,
        )
        np.bitwise_or(out, np.uint16(_NEIGHBOR_BIT), out=out, where=src)
    return out


def unpack_and_flag_neighbors(packed: np.ndarray) -> np.ndarray:
    """Stage 2: group DQ (uint8) from the packed stage-1 output, neighbours flagged.

    Needs a one-pixel halo in ``y`` and ``x`` when run on a chunk.
    """
    from ._jump_numba import unpack_block

    packed = np.asarray(packed)
    if packed.ndim == 4:
        out = np.empty(packed.shape, dq.GROUP_DTYPE)
        unpack_block(packed, out)
        return out
    return unpack_and_flag_neighbors_numpy(packed)


def unpack_and_flag_neighbors_numpy(packed: np.ndarray) -> np.ndarray:
    """Vectorised numpy version of :func:`unpack_and_flag_neighbors` (the reference)."""
    gdq = (packed & 0xFF).astype(dq.GROUP_DTYPE)
    src = (packed & _NEIGHBOR_BIT) != 0
    if not src.any():
        return gdq
    return flag_neighbors(gdq, src)


def detect_jumps(data: np.ndarray, groupdq: np.ndarray, readnoise, gain, **kwargs) -> np.ndarray:
    """Jump detection on a whole (integration, group, y, x) cube, in memory.

    Parameters are those of :func:`detect_jumps_packed`.

    Returns
    -------
    numpy.ndarray of uint8, (integration, group, y, x)
        The group DQ with ``JUMP_DET`` added.
    """
    return unpack_and_flag_neighbors(detect_jumps_packed(data, groupdq, readnoise, gain, **kwargs))
