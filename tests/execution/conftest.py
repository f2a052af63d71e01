"""Fixtures of the execution tests: tiny campaigns, and the determinism check.

Determinism: every product is the same whatever runs it (threaded, processes,
distributed; worker counts; chunk sizes). Data arrays are identical; headers differ
at most in DATE (and the file's own name). The tests that use it are split in
modules of about 30 s.
"""

import dask
import pytest

import daskref
from daskref.simulate import (
    BAD_PIXEL_DEFAULTS,
    make_truth,
    simulate_campaign,
    simulate_exposure,
    simulate_flats,
    simulate_ptc,
    simulate_ramps,
    write_references,
)
from daskref.testing import assert_same_fits


@pytest.fixture(scope="session")
def tiny_darks(tmp_path_factory):
    """3 NIRCam SUB64P darks, 1 integration x 4 groups."""
    d = tmp_path_factory.mktemp("tiny")
    return simulate_campaign(d, 3, nints=1, ngroups=4, seed=5, subarray="SUB64P",
                             substrt=(1, 1), subsize=(64, 64)).paths


@pytest.fixture(scope="session")
def bigger_darks(tmp_path_factory):
    """Enough work that a signal lands in the middle: 4 SUB320 darks, 2 x 20 groups."""
    d = tmp_path_factory.mktemp("bigger")
    return simulate_campaign(d, 4, nints=2, ngroups=20, seed=3, subarray="SUB320",
                             substrt=(1, 1), subsize=(320, 320)).paths


NGROUPS = 5


@pytest.fixture(scope="session")
def determinism_campaign(tmp_path_factory):
    """3 darks (2 x 5 groups) and 2 flats (1 x 5 groups) of one SUB64P detector with
    every bad-pixel class, and its reference files."""
    d = tmp_path_factory.mktemp("determinism")
    truth = make_truth(subarray="SUB64P", substrt=(1, 1), subsize=(64, 64), seed=77,
                       tframe=10.7, cosmic_ray_rate=5e-4, **BAD_PIXEL_DEFAULTS,
                       dead_fraction=0.01, low_qe_fraction=0.01, open_fraction=0.005)
    darks = [simulate_exposure(d / "darks" / f"dark_{k}_uncal.fits", truth, nints=2,
                               ngroups=NGROUPS, seed=k).path for k in range(3)]
    flats = simulate_flats(d / "flats", truth, 2, nints=1, ngroups=NGROUPS,
                           fill_fraction=0.5).paths
    refs = write_references(truth, d / "refs", NGROUPS)
    refs.pop("mask")
    return darks, flats, refs


@pytest.fixture(scope="session")
def illuminated_campaign(tmp_path_factory):
    """SUB64P ramps into saturation at three fluxes and a two-level photon transfer
    campaign (flat and dark pairs) of one detector with a full well and non-linearity."""
    d = tmp_path_factory.mktemp("determinism-illuminated")
    truth = make_truth(subarray="SUB64P", substrt=(1, 1), subsize=(64, 64), tframe=10.0,
                       seed=8, full_well=60000.0, nonlin_quadratic=0.04, nonlin_cubic=0.01,
                       cosmic_ray_rate=2e-4)
    ramps = simulate_ramps(d / "lin", truth, (0.6, 1.2, 2.0), nints=1, ngroups=20).paths
    ptc = simulate_ptc(d / "ptc", truth, (0.2, 0.5), ngroups=4).paths
    return ramps, ptc


def _build(label, campaign, chunk_mb):
    if label in ("saturation", "linearity", "gain"):
        ramps, ptc = campaign
        if label == "saturation":
            return daskref.saturation(ramps, chunk_mb=chunk_mb)
        if label == "linearity":
            return daskref.linearity(ramps, chunk_mb=chunk_mb)
        return daskref.gain(ptc, chunk_mb=chunk_mb and chunk_mb / 4, fit_degree=1,
                            box_size=16)
    darks, flats, refs = campaign
    no_dark = {k: v for k, v in refs.items() if k != "dark"}
    if label == "readnoise":
        return daskref.readnoise(darks, chunk_mb=chunk_mb)
    if label == "superbias":
        return daskref.superbias(darks, chunk_mb=chunk_mb)
    if label == "dark":
        return daskref.dark(darks, chunk_mb=chunk_mb, **no_dark)
    if label == "badpix_from_darks":
        return daskref.mask_from_darks(darks, chunk_mb=chunk_mb, **no_dark)
    if label == "badpix_from_flats":  # fewer, shorter ramps: smaller slabs for as many
        return daskref.mask_from_flats(flats, chunk_mb=chunk_mb and chunk_mb / 3, **refs)
    if label == "bad_pixel_mask":
        return daskref.bad_pixel_mask(darks=darks, flats=flats, chunk_mb=chunk_mb, **no_dark,
                                      dark=refs["dark"])
    raise AssertionError(label)


@pytest.fixture(scope="module")
def distributed_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        yield cluster


#: (name, dask config, chunk_mb); the first is the reference run (one slab; the others
#: split the 64 rows into 2 to 8 slabs)
RUNS = [
    ("synchronous", {"scheduler": "synchronous"}, None),
    ("threads-2", {"scheduler": "threads", "num_workers": 2}, 0.08),
    ("processes-2", {"scheduler": "processes", "num_workers": 2}, 0.16),
    ("distributed-2x2", None, 0.04),
]


@pytest.fixture(scope="module")
def same_everywhere(determinism_campaign, distributed_cluster):
    """``check(label, tmp_path)``: the product ``label`` made by every run of
    :data:`RUNS` gives the same file (and the same files beside it)."""
    return lambda label, tmp_path: _check(label, determinism_campaign, distributed_cluster,
                                          tmp_path)


@pytest.fixture(scope="module")
def same_everywhere_illuminated(illuminated_campaign, distributed_cluster):
    """As ``same_everywhere``, for the products of illuminated campaigns."""
    return lambda label, tmp_path: _check(label, illuminated_campaign, distributed_cluster,
                                          tmp_path)


def _check(label, campaign, distributed_cluster, tmp_path):
    from distributed import Client

    outs = []
    for name, config, chunk_mb in RUNS:
        out = tmp_path / name / f"{label}.fits"
        out.parent.mkdir()
        product = _build(label, campaign, chunk_mb)
        if config is None:
            with Client(distributed_cluster):
                daskref.write(product, out, pedigree="SIMULATION")
        else:
            with dask.config.set(config):
                daskref.write(product, out, pedigree="SIMULATION")
        outs.append(out)
    # the chunkings differ, or the test would not test them
    chunks = set()
    for _, _, chunk_mb in RUNS:
        ds = _build(label, campaign, chunk_mb)
        chunks.add(ds[next(iter(ds.data_vars))].chunks)
    assert len(chunks) == len(RUNS)
    for out in outs[1:]:
        assert_same_fits(outs[0], out)
        for beside in sorted(outs[0].parent.glob("*.fits")):  # contribution, rate files
            assert_same_fits(beside, out.parent / beside.name)
