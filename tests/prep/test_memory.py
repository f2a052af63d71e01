"""Memory of the prep chain is bounded by the slab size, and every input byte is read once.

The measure is exact and machine-independent: with the synchronous scheduler, a dask
callback sums the bytes of every task result held in the scheduler's cache after each
task (the arrays alive between tasks). Without the slab sequencing, aligned reference
reads and refpix spilling, most of a ramp was held at once.
"""

from __future__ import annotations

from functools import partial

import dask
import numpy as np
import pytest
from dask.callbacks import Callback

import daskref.io.fits as dfits
from daskref._compute import compute
from daskref.algorithms.steps.refpix import edge_row_chunks, needs_all_rows, refpix
from daskref.io import products
from daskref.io.spill import spill
from daskref.prep import prep_many
from daskref.simulate import simulate_campaign, write_references
from daskref.testing import count_reads

CHAIN = "dq_init,saturation,superbias,refpix,linearity,dark_current,jump,rate"
MIRI_CHAIN = "dq_init,saturation,linearity,dark_current,refpix,jump,rate"


def _nbytes(value) -> int:
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (tuple, list)):
        return sum(_nbytes(v) for v in value)
    return 0


class PeakHeld(Callback):
    """Largest total size of the task results held by the local scheduler."""

    def __init__(self):
        super().__init__()
        self.peak = 0

    def _posttask(self, key, result, dsk, state, worker_id):
        self.peak = max(self.peak, sum(_nbytes(v) for v in state["cache"].values()))


def _run(paths, refs, steps, out, **kw):
    with count_reads() as reads:
        results = prep_many(paths, steps=steps, spill_dir=out / "spill", **refs, **kw)
        held = PeakHeld()
        with dask.config.set(scheduler="sync"), held:
            products.write_products(results, out)
    return results, held.peak, reads


@pytest.fixture(scope="module")
def nircam(tmp_path_factory):
    """One NIRCam full frame (4 outputs, 2048 x 2048), 1 integration x 3 groups."""
    d = tmp_path_factory.mktemp("nircamfull")
    c = simulate_campaign(d / "in", 1, nints=1, ngroups=3, seed=5, subarray="FULL",
                          flux=20.0, amp_offset_sigma=5.0, cosmic_ray_rate=1e-4)
    return c, write_references(c.truth, d / "refs", 3)


@pytest.fixture(scope="module")
def miri(tmp_path_factory):
    """One MIRI full-frame exposure (1024 x 1032: reference columns in every row)."""
    d = tmp_path_factory.mktemp("mirifull")
    c = simulate_campaign(d / "in", 1, nints=2, ngroups=5, seed=6, instrument="MIRI",
                          subarray="FULL", cosmic_ray_rate=1e-3)
    return c, write_references(c.truth, d / "refs", 5)


def test_prep_memory__nir_bounded_by_slab_size(nircam, tmp_path):
    campaign, refs = nircam
    peaks = {}
    for rows in (64, 128):
        results, peak, reads = _run(campaign.paths, refs, CHAIN, tmp_path / str(rows),
                                    chunk_rows=rows)
        peaks[rows] = peak
        for p in campaign.paths:  # every input byte once
            assert reads[str(p)] == dfits.read_info(p).sci.nbytes
    ramp_bytes = sum(r["ramp"].nbytes for r in results)  # float32, both inputs
    # some slabs' worth (data, flags and the ramp fit's float64 work arrays: about 8
    # slabs of float32 data at 128 rows), far from the 16-slab ramp ...
    assert peaks[128] < ramp_bytes / 2, (peaks, ramp_bytes)
    # ... and it follows the slab size (holding the ramp, both would be about equal)
    assert peaks[64] < 0.65 * peaks[128], peaks


def test_prep_memory__miri_spills_instead_of_holding(miri, tmp_path):
    campaign, refs = miri
    (path,) = campaign.paths
    assert needs_all_rows({"INSTRUME": "MIRI"}, (1024, 1032))
    results, peak, reads = _run(campaign.paths, refs, MIRI_CHAIN, tmp_path, chunk_rows=64)
    assert reads[str(path)] == dfits.read_info(path).sci.nbytes  # once, across both passes
    ramp_bytes = results[0]["ramp"].nbytes
    assert peak < ramp_bytes / 3, (peak, ramp_bytes)
    assert not any((tmp_path / "spill").glob("*/*.npy"))  # spilled blocks cleaned up


def test_refpix__spilled_equals_in_memory(miri, tmp_path):
    campaign, _ = miri
    ds = dfits.open_exposure(campaign.paths[0], chunk_rows=128)
    ds["ramp"] = ds["ramp"].astype(np.float32)
    plain = refpix(ds)
    spilled = refpix(ds, spill=partial(spill, directory=tmp_path))
    assert any(k.startswith("spill-load") for k in spilled["ramp"].data.__dask_graph__().layers)
    a, b = compute([plain, spilled])
    np.testing.assert_array_equal(a["ramp"].values, b["ramp"].values)
    assert not any(tmp_path.glob("*/*.npy"))


def test_spill__roundtrip(tmp_path):
    x = dask.array.random.default_rng(0).normal(size=(6, 10), chunks=(2, 5))
    y = spill(x, tmp_path) * 2
    (out,) = compute([y])
    np.testing.assert_array_equal(out, x.compute() * 2)
    assert not any(tmp_path.iterdir())


def test_edge_row_chunks__reference_rows_and_guards_are_thin_slabs():
    attrs = {"INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "SUBSTRT1": 1, "SUBSTRT2": 1}
    rows = edge_row_chunks(attrs, (2048, 2048), (256,) * 8, guard=10)
    assert sum(rows) == 2048
    assert rows[0] == 4 and rows[-1] == 4
    body = rows[1:-1]
    assert all(g == 10 for g in body[1::2])  # guards alternate with big slabs
    assert all(b >= 200 for b in body[::2])
    # nothing to do for MIRI or a single-output subarray
    assert edge_row_chunks({"INSTRUME": "MIRI"}, (1024, 1032), (64,) * 16) == (64,) * 16


def test_prep_memory__does_not_grow_with_the_number_of_inputs(tmp_path):
    """Inputs are finished one after another; only the shared references stay."""
    c = simulate_campaign(tmp_path / "in", 6, nints=1, ngroups=3, seed=8,
                          subarray="SUBGRISM128", substrt=(1, 1921), subsize=(2048, 128),
                          flux=20.0, cosmic_ray_rate=1e-4)
    refs = write_references(c.truth, tmp_path / "refs", 3)
    peaks = [_run(c.paths[:n], refs, CHAIN, tmp_path / f"out{n}", chunk_rows=32)[1]
             for n in (2, 6)]
    assert peaks[1] < 1.1 * peaks[0], peaks
