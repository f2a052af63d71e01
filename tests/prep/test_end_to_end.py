"""daskref's own READNOISE and SUPERBIAS feed the prep engine, which recovers the dark."""

import numpy as np

import daskref
from daskref import dq
from daskref.prep import prep
from daskref.simulate import simulate_campaign


def test_own_references_feed_prep__dark_current_recovered(tmp_path):
    # 64x64 corner window with full-frame timing (10.7 s frames), so 10 groups
    # accumulate a measurable dark; 2 % hot pixels at ~2-4 DN/s; cosmic rays.
    camp = simulate_campaign(
        tmp_path / "darks", 5, nints=2, ngroups=10, seed=21, subarray="SUB64P",
        substrt=(1, 1), subsize=(64, 64), tframe=10.73677, dark_current=0.05,
        hot_fraction=0.02, hot_rate=2.0, cosmic_ray_rate=2e-4, amp_offset_sigma=5.0,
        odd_even_offset=3.0)
    truth = camp.truth
    rn_path, sb_path = daskref.write(
        [daskref.readnoise(camp.paths), daskref.superbias(camp.paths)],
        [tmp_path / "readnoise.fits", tmp_path / "superbias.fits"])
    results = [prep(p, steps="saturation,superbias,refpix,jump,rate", saturation=60000.0,
                    superbias=sb_path, readnoise=rn_path, gain=truth.gain)
               for p in camp.paths]
    computed = daskref.compute(results)
    rate = np.stack([r.rate.values for r in computed])
    err = np.stack([r.rate_err.values for r in computed])
    good = np.stack([(r.dq.values & dq.DO_NOT_USE) == 0 for r in computed])
    science = ~truth.reference
    # Pixels hit by a cosmic ray are left out here: hits below the jump threshold
    # (~4 x 14 DN) bias their slope, which is physics, not the dark current.
    clean = np.ones(rate.shape, bool)
    for k, exposure in enumerate(camp.exposures):
        crs = exposure.cosmic_rays
        clean[k, crs["y"], crs["x"]] = False
    # Normal pixels: the mean rate equals the mean true dark. Reference-pixel
    # corrections are common to all pixels of an integration, so the errors of the
    # pixel means are correlated within an integration: the standard error comes from
    # the scatter of the 10 per-integration means (Student t, 9 dof: |t| < 4.78 at
    # 99.9 %).
    normal = science & ~truth.hot
    ints = np.concatenate([r.rateints.values for r in computed])  # (file*int, y, x)
    ints_ok = np.concatenate([(r.dq_ints.values & dq.DO_NOT_USE) == 0 for r in computed])
    clean_ints = np.repeat(clean, 2, axis=0)
    means = np.array([(ints[k] - truth.dark_current)[ints_ok[k] & clean_ints[k] & normal].mean()
                      for k in range(ints.shape[0])])
    se = means.std(ddof=1) / np.sqrt(means.size)
    assert abs(means.mean()) < 4.78 * se, (means, se)
    sel = good & clean & normal[None]
    assert abs(np.mean((rate - truth.dark_current[None])[sel])) < 4.78 * se + 1e-4
    # Hot pixels: each recovered within its error (pulls ~ N(0, 1)).
    hot = good & clean & truth.hot[None]
    pulls = ((rate - truth.dark_current[None]) / err)[hot]
    assert hot.sum() > 200
    assert abs(pulls.mean()) < 4 / np.sqrt(pulls.size) + 0.1
    assert 0.8 < pulls.std() < 1.25
