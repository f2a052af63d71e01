"""The bad-pixel MASK from flats and the combined MASK, against the simulated truth."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

import daskref
from daskref import dq
from daskref.algorithms.bad_pixel_mask import combine_masks
from daskref.algorithms.badpix_flat import NIRCAM_DEAD_LIMITS, mask_from_flats
from daskref.io.fits import InputError
from daskref.io.manual_flags import read_manual_flags
from daskref.kernels.badpix_flat import FLAT_CLASSES, flat_classes
from daskref.reftypes.mask_flats import manual_flags_for
from daskref.simulate import (
    BAD_PIXEL_DEFAULTS,
    make_truth,
    simulate_flats,
    write_references,
)

#: Flat defects at 0.6 % each of the science pixels (about 150 pixels a class here).
FRACTIONS = {"dead_fraction": 0.006, "low_qe_fraction": 0.006, "open_fraction": 0.002}


@pytest.fixture(scope="module")
def flats(tmp_path_factory):
    """3 NIRCam flats (160 x 160 corner subarray with its reference border, 2 x 6
    groups, lamp pattern, cosmic rays) of a detector with every dark class and the flat
    defects, with matching references; and 6 darks of the same detector."""
    d = tmp_path_factory.mktemp("flats")
    truth = make_truth(subarray="SUB160", substrt=(1, 1), subsize=(160, 160), seed=909,
                       tframe=10.7, cosmic_ray_rate=5e-5, **BAD_PIXEL_DEFAULTS, **FRACTIONS)
    camp = simulate_flats(d / "flats", truth, 3, nints=2, ngroups=6, fill_fraction=0.5)
    refs = write_references(truth, d / "refs", 20)
    refs.pop("mask")
    return truth, camp, refs, d


def recovery(truth, cls):
    """(recall, precision) per flat class, and the fraction of normal pixels flagged."""
    science = ~truth.reference
    out = {}
    for k, name in enumerate(FLAT_CLASSES):
        true = truth.class_mask(name) & science
        found = cls == k
        out[name] = (np.mean(found[true]), np.mean(true[found]) if found.any() else 0.0)
    normal = (truth.pixel_class == 0) & science
    return out, np.mean(cls[normal] >= 0)


def test_truth_recovery(flats):
    truth, camp, refs, _ = flats
    ds = daskref.mask_from_flats(camp.paths, **refs).compute()
    scores, false_rate = recovery(truth, ds["class"].values)
    for name, (recall, precision) in scores.items():
        # the targets: every injected pixel is far beyond the thresholds
        assert recall >= (0.98 if name in ("dead", "open") else 0.95), (name, recall)
        assert precision >= 0.97, (name, precision)
    assert false_rate < 0.001
    # every integration of every flat counted once (jwst_reffiles stacked file 0 twice)
    n = ds["n_slopes"].values[~truth.reference]
    assert n.max() == 6 and np.median(n) == 6
    assert np.all(ds["class"].values[truth.reference] == -2)
    assert np.all(ds["dq"].values[truth.reference] == dq.REFERENCE_PIXEL)
    # DO_NOT_USE on all four classes by default
    flagged = ds["class"].values >= 0
    assert np.all(ds["dq"].values[flagged] & dq.DO_NOT_USE)
    # the normalised image is 1 on normal pixels (the lamp pattern is taken out), up to
    # the deficit of the defects inside each Box2D mean: 0.6 % dead (~1) + 0.6 % low QE
    # (~0.72) = 1.0 % here
    normal = (truth.pixel_class == 0) & ~truth.reference
    deficit = 0.006 * 1.0 + 0.006 * 0.72
    norm = ds["normalized"].values[normal]
    assert np.median(norm) == pytest.approx(1.0 + deficit, abs=0.004)
    assert np.std(norm) < 0.03  # 2 % QE scatter and the Poisson noise, no pattern left


@pytest.mark.parametrize("method", ["smoothed", "fit2d", "mean", "none"])
def test_every_normalization_recovers_the_defects(flats, tmp_path, method):
    truth, _, refs, _ = flats
    # mean and none cannot take a lamp pattern out: give them a flat lamp
    amplitude = 0.15 if method in ("smoothed", "fit2d") else 0.0
    camp = simulate_flats(tmp_path, truth, 2, nints=2, ngroups=6, pattern_amplitude=amplitude)
    extra = {}
    if method == "none":  # DN/s: the dead limit is in DN/s too
        extra["max_dead_norm_signal"] = 0.05 * float(np.median(camp.flux[~truth.reference]))
    ds = daskref.mask_from_flats(camp.paths, flat_mean_normalization_method=method,
                                 max_low_qe_norm_signal=0.5 if method != "none" else 1e9,
                                 low_qe_and_open_search=method != "none", **extra,
                                 **refs).compute()
    scores, false_rate = recovery(truth, ds["class"].values)
    assert scores["dead"][0] >= 0.98 and scores["dead"][1] >= 0.97
    if method != "none":
        assert scores["low_qe"][0] >= 0.95 and scores["open"][0] >= 0.98
    assert false_rate < 0.001


def test_chunked_equals_eager_and_nothing_is_computed(flats, monkeypatch):
    truth, camp, refs, _ = flats
    import dask

    calls = []
    with dask.config.set(scheduler=lambda *a, **k: calls.append(1)):
        lazy = daskref.mask_from_flats(camp.paths, chunk_mb=0.05, **refs)
    assert not calls  # building the graph computes nothing
    assert len(lazy["class"].chunks[0]) > 4
    chunked = lazy.compute()
    one = daskref.mask_from_flats(camp.paths, chunk_mb=1000, **refs)
    assert len(one["class"].chunks[0]) == 1
    eager = one.compute()
    np.testing.assert_array_equal(chunked["class"].values, eager["class"].values)
    np.testing.assert_array_equal(chunked["dq"].values, eager["dq"].values)
    np.testing.assert_allclose(chunked["normalized"].values, eager["normalized"].values,
                               rtol=1e-6)


def synthetic(norm: np.ndarray) -> xr.Dataset:
    """A one-integration slope stack whose mean is ``norm`` (no reference pixels)."""
    attrs = {"INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "SUBARRAY": "SUBX",
             "SUBSTRT1": 900, "SUBSTRT2": 900, "SUBSIZE1": norm.shape[1],
             "SUBSIZE2": norm.shape[0], "NOUTPUTS": 1, "inputs": ["synthetic"]}
    return xr.Dataset({"rateints": (("integration", "y", "x"), norm[None].astype(np.float32))},
                      attrs=attrs)


def test_open_pixels_at_edges_corners_and_chunk_boundaries():
    norm = np.ones((12, 10))
    opens = [(0, 0), (0, 5), (11, 9), (5, 0), (3, 4), (4, 7)]  # corner, edge, ..., boundary
    for y, x in opens:
        norm[y, x] = 0.3
    for y, x in opens:
        for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
            if 0 <= yy < 12 and 0 <= xx < 10 and (yy, xx) not in opens:
                norm[yy, xx] = 1.2
    norm[8, 2] = 0.3  # low QE: its neighbours are normal
    expected = flat_classes(norm, dead=np.zeros(norm.shape, bool), low_limit=0.05,
                            high_limit=0.5, adj_limit=1.05, search_low=True)
    got_open = {tuple(p) for p in np.argwhere(expected == FLAT_CLASSES.index("open"))}
    assert got_open == set(opens)
    assert expected[8, 2] == FLAT_CLASSES.index("low_qe")
    # ADJ_OPEN: the in-bounds 8 neighbours; at the corner (0, 0) exactly 3
    assert expected[0, 1] == expected[1, 0] == expected[1, 1] == FLAT_CLASSES.index("adj_open")
    assert expected[11, 8] == FLAT_CLASSES.index("adj_open")
    ds = synthetic(norm)
    params = dict(flat_mean_normalization_method="none", max_dead_norm_signal=0.05,
                  dead_search_type="absolute_rate")
    for rows in (1, 3, 4, 5, 12):  # slabs cutting through the neighbourhoods
        out = mask_from_flats(ds.chunk({"y": rows}), **params).compute()
        np.testing.assert_array_equal(out["class"].values, expected)
    eager = mask_from_flats(ds, **params)
    np.testing.assert_array_equal(eager["class"].values, expected)


def test_dead_search_types_and_the_flux_check():
    rng = np.random.default_rng(1)
    norm = 1 + 0.02 * rng.standard_normal((40, 40))
    norm[5, 5] = 0.0  # dead
    norm[10, 10] = 0.03  # below the dead limit: dead for absolute_rate
    norm[20, 20] = 0.0  # no slope, but its ramp ends high (a saturated hot pixel)
    ds = synthetic(norm * 100.0)
    common = dict(flat_mean_normalization_method="mean", low_qe_and_open_search=False)
    dead = lambda out: {tuple(p) for p in np.argwhere(out["class"].values == 0)}  # noqa: E731
    assert dead(mask_from_flats(ds, dead_search_type="absolute_rate", **common)) == {
        (5, 5), (10, 10), (20, 20)}
    assert dead(mask_from_flats(ds, dead_search_type="sigma_rate", **common)) == {
        (5, 5), (10, 10), (20, 20)}
    # zero_signal: a slope consistent with 0 (here exactly 0; a single slope has no error)
    assert dead(mask_from_flats(ds, dead_search_type="zero_signal", **common)) == {
        (5, 5), (20, 20)}
    last_groups = xr.DataArray(np.full((40, 40), 20000.0), dims=("y", "x"))
    last_groups[20, 20] = 60000.0
    out = mask_from_flats(ds, dead_search_type="absolute_rate", run_dead_flux_check=True,
                          flux_check=45000.0, flux_check_image=last_groups, **common)
    assert dead(out) == {(5, 5), (10, 10)}
    with pytest.raises(ValueError, match="dead_flux_check_files"):
        mask_from_flats(ds, run_dead_flux_check=True)
    with pytest.raises(ValueError, match="smoothing_type"):
        mask_from_flats(ds, smoothing_type="gauss")
    # any case, and median smoothing is a median (jwst_reffiles took 'median' for Box2D)
    out = mask_from_flats(ds, smoothing_type="MEDIAN", smoothing_box_width=5)
    assert out.attrs["parameters"]["smoothing_type"] == "median"
    from scipy.ndimage import median_filter

    m = out["mean"].values
    np.testing.assert_allclose(out["smoothed"].values[2:-2, 2:-2],
                               median_filter(m, 5)[2:-2, 2:-2], rtol=1e-6)


def test_nircam_dead_limits_are_per_detector():
    for detector, limit in NIRCAM_DEAD_LIMITS.items():
        ds = synthetic(np.full((8, 8), 100.0))
        ds.attrs["DETECTOR"] = detector
        out = mask_from_flats(ds, flat_mean_normalization_method="none")
        assert float(out["dead_limit"]) == limit
    assert len(set(NIRCAM_DEAD_LIMITS.values())) == 4  # jwst_reffiles returned 25 always
    out = mask_from_flats(synthetic(np.ones((8, 8))), flat_mean_normalization_method="mean")
    assert float(out["dead_limit"]) == 0.05


def test_manual_flags(tmp_path):
    text = ("# a comment\nx y flag\n3 4 dead\n10:12 : LOW_QE  # inline\n:1 0: hot\n"
            "5: 7 open\n")
    path = tmp_path / "flags.txt"
    path.write_text(text)
    rows = read_manual_flags(path)
    assert [(r.x, r.y, r.flag) for r in rows] == [
        ((3, 3), (4, 4), "DEAD"), ((10, 12), (None, None), "LOW_QE"),
        ((None, 1), (0, None), "HOT"), ((5, None), (7, 7), "OPEN")]
    # full-frame coordinates moved into a subarray at (x, y) = (3, 2) 0-based
    attrs = {"INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "SUBSTRT1": 4, "SUBSTRT2": 3,
             "SUBSIZE1": 16, "SUBSIZE2": 8}
    flags, name = manual_flags_for(str(path), attrs, (8, 16))
    assert name == "flags.txt"
    assert flags[4 - 2, 3 - 3] & dq.DEAD
    assert np.all(flags[:, 10 - 3:13 - 3] & dq.LOW_QE)
    assert not np.any(flags & dq.HOT)  # columns 0-1 lie left of the subarray
    assert np.all(flags[7 - 2, 5 - 3:] & dq.OPEN) and not np.any(flags[7 - 2, :2] & dq.OPEN)
    bad = tmp_path / "bad.txt"
    bad.write_text("x y flag\n1 2 dead\n3 4 wonky\n")
    with pytest.raises(InputError, match=r"bad.txt: line 3: unknown flag 'wonky'"):
        read_manual_flags(bad)
    bad.write_text("x y flag\n1 2:a dead\n")
    with pytest.raises(InputError, match="line 2: y '2:a'"):
        read_manual_flags(bad)
    # default: MIRIMAGE's shorted columns 384 and 385; nothing for NRCA1
    miri = {"INSTRUME": "MIRI", "DETECTOR": "MIRIMAGE", "SUBSTRT1": 1, "SUBSTRT2": 1,
            "SUBSIZE1": 1032, "SUBSIZE2": 1024}
    flags, _ = manual_flags_for("default", miri, (1024, 1032))
    cols = np.flatnonzero(np.all(flags & dq.UNRELIABLE_SLOPE, axis=0))
    assert list(cols) == [384, 385] and np.count_nonzero(flags) == 2 * 1024
    assert manual_flags_for("default", attrs, (8, 16))[0] is None
    assert manual_flags_for("", attrs, (8, 16))[0] is None


def test_manual_flags_in_the_mask_get_do_not_use_when_listed():
    ds = synthetic(np.ones((6, 6)))
    manual = np.zeros((6, 6), np.uint32)
    manual[1, 1] = dq.DEAD
    manual[2, 2] = dq.UNRELIABLE_SLOPE
    out = mask_from_flats(ds, manual_flags=manual)
    assert out["dq"].values[1, 1] == dq.DEAD | dq.DO_NOT_USE
    assert out["dq"].values[2, 2] == dq.UNRELIABLE_SLOPE
    out = mask_from_flats(ds, manual_flags=manual, flat_do_not_use=["UNRELIABLE_SLOPE"])
    assert out["dq"].values[1, 1] == dq.DEAD
    assert out["dq"].values[2, 2] == dq.UNRELIABLE_SLOPE | dq.DO_NOT_USE
    with pytest.raises(ValueError, match="'WONKY' is not a JWST DQ flag"):
        mask_from_flats(ds, flat_do_not_use=["WONKY"])


def test_slope_files_are_inputs_too(flats, tmp_path):
    truth, camp, refs, _ = flats
    from daskref.io import products
    from daskref.prep import prep_many

    # the default calibration of flats, dq_init left out (no MASK is given)
    results = prep_many(camp.paths, steps="saturation,superbias,refpix,linearity,"
                        "dark_current,jump,rate", **refs)
    paths = products.write_products(results, tmp_path)
    rateints = sorted(str(p) for p in paths if str(p).endswith("_rateints.fits"))
    rate = sorted(str(p) for p in paths if str(p).endswith("_rate.fits"))
    assert len(rateints) == 3 and len(rate) == 3
    from_ramps = daskref.mask_from_flats(camp.paths, **refs).compute()
    from_files = daskref.mask_from_flats(rateints).compute()
    np.testing.assert_array_equal(from_files["class"].values, from_ramps["class"].values)
    assert from_files["n_slopes"].values.max() == 6
    from_rate = daskref.mask_from_flats(rate).compute()
    scores, _ = recovery(truth, from_rate["class"].values)
    assert scores["dead"][0] >= 0.98
    with pytest.raises(InputError, match="slope file among ramps"):
        daskref.mask_from_flats([rate[0], str(camp.paths[0])])
    with pytest.raises(InputError, match="S_RAMP"):
        daskref.mask_from_flats([str(tmp_path / "x_rate.fits")] if _write_no_sramp(
            tmp_path / "x_rate.fits") else [])


def _write_no_sramp(path) -> bool:
    hdul = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((4, 4), np.float32),
                                                          name="SCI")])
    hdul.writeto(path)
    return True


# --------------------------------------------------------------------------- combined


@pytest.fixture(scope="module")
def combined(flats):
    """The combined MASK of the flats and 6 darks of the same detector."""
    truth, camp, refs, d = flats
    from daskref.simulate import simulate_exposure

    (d / "darks").mkdir()
    dark_paths = [simulate_exposure(d / "darks" / f"dark_{k}_uncal.fits", truth, nints=2,
                                    ngroups=20, seed=k).path for k in range(6)]
    dark_refs = {k: v for k, v in refs.items() if k != "dark"}
    out = d / "mask.fits"
    daskref.write(daskref.bad_pixel_mask(darks=dark_paths, flats=camp.paths, **dark_refs,
                                         dark=refs["dark"]), out, pedigree="SIMULATION")
    return truth, out, dark_paths, camp, refs


def test_the_combined_mask_keeps_every_class_of_both_halves(combined):
    from stdatamodels.jwst.datamodels import MaskModel

    truth, out, _, _, _ = combined
    with MaskModel(str(out)) as model:
        model.validate()
        mask = model.dq.copy()
        names = [str(n) for n in model.dq_def["name"]]
    science = ~truth.reference
    for name, flag in (("dead", dq.DEAD), ("low_qe", dq.LOW_QE), ("open", dq.OPEN),
                       ("adj_open", dq.ADJ_OPEN), ("hot", dq.HOT), ("warm", dq.WARM),
                       ("rc", dq.RC), ("telegraph", dq.TELEGRAPH), ("saturated", dq.HOT)):
        sel = truth.class_mask(name) & science
        assert np.mean((mask[sel] & flag) != 0) >= 0.8, name
    assert np.all(mask[truth.reference] == dq.REFERENCE_PIXEL)
    # a DQ_DEF of exactly the bits used
    used = {n for n, v in dq.PIXEL.items() if v and np.any(mask & v)} | {"GOOD"}
    assert set(names) == used
    header = fits.getheader(out)
    for key in ("BPMSIGMA", "BPMSMOTH", "BPMDEDSG", "BPMMXDED", "BPMMXLQE", "BPMMXOAD",
                "BPDCLPSG", "BPDNSETH", "BPDMXSAT", "BPDRCTH", "BPDCRFC"):
        assert key in header, key
    assert header["SUBARRAY"] == "SUB160"
    history = "\n".join(header["HISTORY"])
    assert "flat_000_uncal.fits" in history and "dark_0_uncal.fits" in history
    assert "Calibration of the darks" in history and "Calibration of the flats" in history
    assert "smoothing_box_width=15" in history and "hot_threshold=" in history
    for suffix in ("_diagnostics.fits", "_flat_diagnostics.fits", "_flat_diagnostics.png"):
        assert out.with_name(out.stem + suffix).exists(), suffix


def test_hot_wins_over_dead():
    a = np.zeros((2, 2), np.uint32)
    darks = xr.Dataset({"dq": (("y", "x"), a + np.array([[dq.HOT | dq.DO_NOT_USE, 0],
                                                          [0, dq.WARM]], np.uint32))},
                       attrs={"DETECTOR": "NRCA1", "inputs": ["d"]})
    flats = xr.Dataset({"dq": (("y", "x"), a + np.array([[dq.DEAD | dq.DO_NOT_USE, dq.DEAD],
                                                          [0, 0]], np.uint32))},
                       attrs={"DETECTOR": "NRCA1", "inputs": ["f"]})
    out = combine_masks(darks, flats)["dq"].values
    assert out[0, 0] == dq.HOT | dq.DO_NOT_USE
    assert out[0, 1] == dq.DEAD and out[1, 1] == dq.WARM
    flats.attrs["DETECTOR"] = "NRCA2"
    with pytest.raises(ValueError, match="DETECTOR is 'NRCA2' in the flats but 'NRCA1'"):
        combine_masks(darks, flats)


def test_darks_and_flats_of_other_windows_are_refused(flats, combined, tmp_path, capsys):
    truth, camp, refs, _ = flats
    other = make_truth(subarray="SUB64P", substrt=(1, 1), subsize=(64, 64), seed=1)
    others = simulate_flats(tmp_path, other, 1, nints=1, ngroups=6)
    dark_paths = combined[2]
    with pytest.raises(InputError, match=r"flat_000_uncal.fits: does not match the darks "
                                         r"\(dark_0_uncal.fits\): SUBARRAY is 'SUB64P'"):
        daskref.bad_pixel_mask(darks=dark_paths, flats=others.paths, **refs)
    from daskref.cli import main

    ref_args = [a for k, v in refs.items() for a in (f"--{k}", str(v))]
    out = tmp_path / "refused.fits"
    assert main(["mask", "--darks", *map(str, dark_paths), "--flats", *map(str, others.paths),
                 "-o", str(out), "-q", *ref_args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not match the darks" in err[0] and "SUB64P" in err[0]
    assert not out.exists()


def test_mask_command_with_flats_and_darks(combined, tmp_path):
    from daskref.cli import main

    truth, first, dark_paths, camp, refs = combined
    out = tmp_path / "cli_mask.fits"
    ref_args = [a for k, v in refs.items() for a in (f"--{k}", str(v))]
    assert main(["mask", "--darks", *map(str, dark_paths), "--flats", *map(str, camp.paths),
                 "-o", str(out), "-q", "--pedigree", "SIMULATION", *ref_args]) == 0
    np.testing.assert_array_equal(fits.getdata(out, "DQ"), fits.getdata(first, "DQ"))
    # either half alone
    flats_only = tmp_path / "flats_only.fits"
    assert main(["mask", "--flats", *map(str, camp.paths), "-o", str(flats_only), "-q",
                 "--smoothing-type", "median", *ref_args]) == 0
    got = fits.getdata(flats_only, "DQ")
    assert np.any(got & dq.DEAD) and not np.any(got & dq.HOT)
    assert fits.getheader(flats_only)["BPFSMTYP"] == "median"
    assert main(["badpix_from_flats", "--flats", *map(str, camp.paths), "-o",
                 str(tmp_path / "f2.fits"), "-q", *ref_args]) == 0
    assert main(["mask", "-o", str(tmp_path / "none.fits")]) == 2
    assert main(["mask", "--flats", str(camp.paths[0]), "-o", str(tmp_path / "bad.fits"),
                 "--smoothing-type", "gauss", *ref_args]) == 2
    assert not (tmp_path / "bad.fits").exists()
