"""READNOISE, SUPERBIAS, DARK and MASK of one campaign in one collection step."""

from __future__ import annotations

import numpy as np

import daskref
from daskref.prep.stack import prep_stack
from daskref.testing import count_reads


def test_four_products_one_pass_equal_two_passes(nircam_darks, tmp_path):
    paths = nircam_darks.paths
    steps = "superbias,refpix,jump,rate"
    with count_reads() as reads:
        raw = daskref.open_stack(paths, chunk_mb=0.1)
        rn, sb = daskref.readnoise(raw), daskref.superbias(raw)
        # the calibration takes the SUPERBIAS and READNOISE being made, slab by slab
        stack = prep_stack(raw, steps=steps, superbias=sb, readnoise=rn, gain=2.0)
        dk = daskref.dark(stack, gain=2.0)
        mk = daskref.mask_from_darks(stack, gain=2.0)
        one = [tmp_path / f"{n}.fits" for n in ("rn", "sb", "dark", "mask")]
        daskref.write([rn, sb, dk, mk], one, pedigree="SIMULATION")
    sci_bytes = 2 * 10 * 64 * 64 * 2
    for p in map(str, paths):
        assert reads[p] == sci_bytes  # every input byte read once for all four files

    # the same with the SUPERBIAS and READNOISE files of a first pass
    two = daskref.compute([
        daskref.dark(paths, steps=steps, superbias=one[1], readnoise=one[0], gain=2.0),
        daskref.mask_from_darks(paths, steps=steps, superbias=one[1], readnoise=one[0],
                                gain=2.0),
    ])
    from astropy.io import fits

    np.testing.assert_array_equal(fits.getdata(one[2], "SCI"), two[0]["sci"].values[0])
    np.testing.assert_array_equal(fits.getdata(one[3], "DQ"), two[1]["dq"].values)
