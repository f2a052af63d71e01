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
