"""Final files: pixel-by-pixel combination of individual files, and comparisons."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from daskref import dq
from daskref.io.crds import CrdsMeta, crds_header, write_reference
from daskref.reftypes.combine import combine_files, compare_files


def _superbias(path, sci, err, mask):
    attrs = {"INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "SUBARRAY": "SUB64P",
             "SUBSTRT1": 1, "SUBSTRT2": 1, "FASTAXIS": -1, "SLOWAXIS": 2}
    header = crds_header(attrs, reftype="SUPERBIAS", datamodel="SuperBiasModel",
                         meta=CrdsMeta(pedigree="SIMULATION"), description="test superbias",
                         shape=sci.shape, filename=path.name)
    return write_reference(path, header, ["individual"], [
        ("SCI", sci.astype(np.float32), "DN"), ("ERR", err.astype(np.float32), "DN"),
        ("DQ", mask.astype(np.uint32), None)], dq.dq_def(["GOOD", "DO_NOT_USE", "HOT"]))


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for k in range(12):
        sci = 100 + rng.normal(0, 1, (64, 64))
        if k == 11:
            sci[10, 10] = 1e4  # an outlier in one file
        mask = np.zeros((64, 64), np.uint32)
        mask[k % 5, 0] = dq.HOT
        paths.append(_superbias(tmp_path / f"sb{k}.fits", sci, np.ones((64, 64)), mask))
    return paths


@pytest.mark.parametrize("method", ["mean", "median", "clipped_mean"])
def test_combine_files(files, tmp_path, method):
    from stdatamodels.jwst import datamodels as dm

    out = combine_files(files, tmp_path / f"final_{method}.fits", method)
    with dm.SuperBiasModel(str(out)) as m:
        m.validate()
        stack = np.stack([fits.getdata(p, "SCI") for p in files])
        expected = {"mean": stack.mean(0), "median": np.median(stack, 0)}.get(method)
        if expected is not None:
            np.testing.assert_allclose(m.data, expected, rtol=1e-6)
        else:  # the outlier is clipped, the rest is the plain mean
            assert m.data[10, 10] == pytest.approx(stack[:11, 10, 10].mean(), rel=1e-6)
            # elsewhere the plain mean, but where a 3-sigma tail sample was clipped (~1 %)
            same = np.isclose(m.data[20:], stack[:, 20:].mean(0), rtol=1e-6)
            assert 0.97 < same.mean() < 1.0
        # ERR: 1 / sqrt(n) for the mean, times the estimator's efficiency factor
        from daskref.kernels.stats import estimator_error_factor

        stat = "median" if method == "median" else "mean"
        clip = (3.0, 3) if method == "clipped_mean" else (np.inf, 0)
        factor = float(estimator_error_factor(12, stat=stat, sigma=clip[0], maxiters=clip[1]))
        assert 1.0 <= factor < 1.3
        assert np.median(m.err) == pytest.approx(factor / np.sqrt(12), rel=0.01)
        assert np.all(m.dq[:5, 0] == dq.HOT)  # OR of the files' flags
    history = " ".join(fits.getheader(out)["HISTORY"])
    assert f"{method} of 12 SUPERBIAS files" in history and "sb11.fits" in history


def test_compare_files(files, tmp_path):
    report = compare_files(files[0], files[1])
    assert report["median_ratio"] == pytest.approx(1.0, abs=0.01)
    # differences of two N(0, 1) against errors of 1 each: beyond 3 sqrt(2) sigma, rare
    assert report["changed_fraction"] < 0.01
    assert report["flags_added"] == {"HOT": 1} and report["flags_removed"] == {"HOT": 1}
    with pytest.raises(ValueError, match="must be one of"):
        combine_files(files, tmp_path / "x.fits", "mode")


def test_final_mask_lists_every_flag_of_the_or(tmp_path):
    """OR-ing masks can add flags the first file's DQ_DEF lacks: they are listed."""
    from daskref import dq
    from daskref.io.crds import CrdsMeta
    from daskref.reftypes.combine import combine_files
    from daskref.simulate import make_truth, write_references

    truth = make_truth(subarray="SUB64P", substrt=(1, 1), subsize=(64, 64), seed=4)
    a = write_references(truth, tmp_path / "a", 4, kinds=["mask"])["mask"]
    b = tmp_path / "b.fits"
    with fits.open(a) as hdul:
        hdul["DQ"].data[10, 10] |= dq.HOT | dq.DO_NOT_USE
        hdul.writeto(b)
    out = combine_files([a, b], tmp_path / "final.fits", "mean", CrdsMeta(pedigree="SIMULATION"))
    names = {n.decode() if isinstance(n, bytes) else str(n)
             for n in fits.getdata(out, "DQ_DEF")["NAME"]}
    assert {"HOT", "DO_NOT_USE", "REFERENCE_PIXEL"} <= names
    assert fits.getdata(out, "DQ")[10, 10] & dq.HOT
