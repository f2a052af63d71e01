"""``daskref mkrefs`` makes the MASK from flats and the combined MASK of a campaign."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from astropy.io import fits

from daskref import dq
from daskref.cli import main
from daskref.simulate import (
    FLAT_DEFECT_DEFAULTS,
    make_truth,
    simulate_exposure,
    simulate_flats,
    write_references,
)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """4 SUB160 darks (2 x 10 groups) and 2 flats of another ramp length (1 x 6 groups)
    of one detector with hot pixels and the flat defects."""
    d = tmp_path_factory.mktemp("mask_campaign")
    truth = make_truth(subarray="SUB160", substrt=(1, 1), subsize=(160, 160), tframe=10.7,
                       hot_fraction=0.01, seed=31, **FLAT_DEFECT_DEFAULTS)
    (d / "in").mkdir()
    for k in range(4):
        simulate_exposure(d / "in" / f"dark_{k}_uncal.fits", truth, nints=2, ngroups=10,
                          seed=k, start=f"2026-03-01T0{k}:00:00")
    simulate_flats(d / "in", truth, 2, nints=1, ngroups=6, start="2026-03-01T06:00:00")
    refs = write_references(truth, d / "refs", 10,
                            kinds=["saturation", "linearity", "gain", "dark"])
    return d, truth, refs


def test_mkrefs__flat_and_combined_masks(campaign):
    d, truth, refs = campaign
    cfg = d / "mkrefs.cfg"
    cfg.write_text(textwrap.dedent(f"""\
        reflabels: [superbias, readnoise, badpix_from_flats, bad_pixel_mask]
        output:
          outrootdir: {d / 'out'}
          runID: AUTO
        reffile4ssb:
          superbias: SELF
          rdnoise: SELF
          saturation: {refs['saturation']}
          linearity: {refs['linearity']}
          gain: {refs['gain']}
          dark: {refs['dark']}
        superbias:
          imtypes: D+
        readnoise:
          imtypes: D+
        badpix_from_flats:
          imtypes: F+
          smoothing_box_width: 11
        bad_pixel_mask:
          imtypes: D+F+
          hot_threshold: 1.0
        """))
    labels = "superbias,readnoise,badpix_from_flats,bad_pixel_mask"
    assert main(["mkrefs", "-c", str(cfg), labels, *map(str, sorted((d / "in").glob("*.fits"))),
                 "-q"]) == 0
    flat_mask = next((d / "out").rglob("badpix_from_flats*.mask.fits"))
    combined = next(p for p in (d / "out").rglob("bad_pixel_mask*.mask.fits"))
    science = ~truth.reference
    got = fits.getdata(flat_mask, "DQ")
    assert np.all(got[truth.class_mask("dead")] & dq.DEAD)
    assert fits.getheader(flat_mask)["BPMSMOTH"] == 11
    both = fits.getdata(combined, "DQ")
    assert np.all(both[truth.class_mask("dead") & science] & dq.DEAD)
    assert np.all(both[truth.class_mask("open") & science] & dq.OPEN)
    hot = truth.class_mask("hot") & science & (truth.dark_current * truth.gain > 2.0)
    assert np.mean((both[hot] & dq.HOT) != 0) > 0.95
    history = "\n".join(fits.getheader(combined)["HISTORY"])
    # the flats were calibrated with the SUPERBIAS and READNOISE this run made
    assert "the SUPERBIAS made in the same run" not in history  # a SELF file, named
    assert "superbias=superbias_" in history and "flat_000_uncal.fits" in history
