"""Shared fixtures: small simulated campaigns with known truth (made once per session)."""

from __future__ import annotations

import dask
import pytest

from daskref.simulate import simulate_campaign

# Property-style tests compare chunkings; run graphs synchronously for determinism.
dask.config.set(scheduler="synchronous")


@pytest.fixture(scope="session")
def nircam_darks(tmp_path_factory):
    """6 NIRCam-like 96x80 corner-subarray darks (reference rows/columns included),
    2 integrations x 10 groups, with cosmic rays."""
    d = tmp_path_factory.mktemp("nircam")
    return simulate_campaign(d, 6, nints=2, ngroups=10, seed=1, subarray="SUB96",
                             substrt=(1, 1), subsize=(80, 96), cosmic_ray_rate=2e-3)


@pytest.fixture(scope="session")
def miri_darks(tmp_path_factory):
    """3 MIRI-like darks cut to 64 rows x 1032 columns (full width), 12 groups."""
    d = tmp_path_factory.mktemp("miri")
    return simulate_campaign(d, 3, nints=2, ngroups=12, seed=2, instrument="MIRI",
                             subarray="MASK1065", substrt=(1, 1), subsize=(1032, 64),
                             readnoise=20.0)
