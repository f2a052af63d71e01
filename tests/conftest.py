"""Shared fixtures: small simulated campaigns with known truth (made once per session)."""

from __future__ import annotations

import dask
import pytest

from daskref.simulate import simulate_campaign

# Property-style tests compare chunkings; run graphs synchronously for determinism.
dask.config.set(scheduler="synchronous")


@pytest.fixture(scope="session")
def nircam_darks(tmp_path_factory):
    """6 NIRCam-like SUB64P (64x64 corner subarray, reference rows/columns included) darks,
    2 integrations x 10 groups, with cosmic rays."""
    d = tmp_path_factory.mktemp("nircam")
    return simulate_campaign(d, 6, nints=2, ngroups=10, seed=1, subarray="SUB64P",
                             substrt=(1, 1), subsize=(64, 64), cosmic_ray_rate=2e-3)


@pytest.fixture(scope="session")
def miri_darks(tmp_path_factory):
    """3 MIRI-like SUB64 darks (64 rows x 72 columns, left reference columns), 12 groups."""
    d = tmp_path_factory.mktemp("miri")
    return simulate_campaign(d, 3, nints=2, ngroups=12, seed=2, instrument="MIRI",
                             subarray="SUB64", substrt=(1, 779), subsize=(72, 64),
                             readnoise=20.0)


#: Bad-pixel classes injected in ``badpix_darks`` (fraction of the science pixels each).
BADPIX_FRACTIONS = {f"{name}_fraction": 0.006 for name in (
    "hot", "warm", "noisy", "rc", "inverse_rc", "telegraph", "low_pedestal", "saturated")}


@pytest.fixture(scope="session")
def badpix_darks(tmp_path_factory):
    """10 NIRCam SUB160 darks (160 x 160 corner subarray, full-frame frame time so dark
    current accumulates as in full-frame darks), 2 integrations x 20 groups, cosmic
    rays and every bad-pixel class of the simulator, with matching reference files
    (truth bias as SUPERBIAS, truth CDS noise as READNOISE, gain 2 e-/DN)."""
    from daskref.simulate import write_references

    d = tmp_path_factory.mktemp("badpix")
    campaign = simulate_campaign(d / "darks", 10, nints=2, ngroups=20, seed=2026,
                                 subarray="SUB160", substrt=(1, 1), subsize=(160, 160),
                                 tframe=10.7, cosmic_ray_rate=5e-5, **BADPIX_FRACTIONS)
    refs = write_references(campaign.truth, d / "refs", 20)
    refs.pop("dark")
    refs.pop("mask")
    return campaign, refs
