"""QA beside every reference file: the JSON agrees with the file, the PNG opens."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from astropy.io import fits

import daskref
from daskref import dq
from daskref.cli import main
from daskref.geometry import amplifier_index, reference_pixel_mask
from daskref.qa import compare_files, index_page, qa, qa_paths
from daskref.simulate import (
    BAD_PIXEL_DEFAULTS,
    FLAT_DEFECT_DEFAULTS,
    simulate_campaign,
    simulate_flats,
    write_references,
)

mpimg = pytest.importorskip("matplotlib.image")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """READNOISE, SUPERBIAS, DARK and the combined MASK of a small 4-amplifier window
    (full-width rows, so every amplifier is there)."""
    d = tmp_path_factory.mktemp("qa")
    camp = simulate_campaign(d / "darks", 4, nints=2, ngroups=6, seed=12,
                             subarray="SUBGRISM64", substrt=(1, 1985), subsize=(2048, 64),
                             tframe=10.7, **BAD_PIXEL_DEFAULTS, **FLAT_DEFECT_DEFAULTS)
    refs = write_references(camp.truth, d / "refs", 6,
                            kinds=["saturation", "superbias", "linearity", "readnoise",
                                   "gain", "dark"])
    flats = simulate_flats(d / "flats", camp.truth, 2, nints=1, ngroups=6).paths
    dark_refs = {k: v for k, v in refs.items() if k != "dark"}
    names = [d / f"{n}.fits" for n in ("readnoise", "superbias", "dark", "mask")]
    daskref.write([daskref.readnoise(camp.paths), daskref.superbias(camp.paths),
                   daskref.dark(camp.paths, **dark_refs),
                   daskref.bad_pixel_mask(darks=camp.paths, flats=flats, **refs)], names,
                  pedigree="SIMULATION")
    return dict(zip(("readnoise", "superbias", "dark", "mask"), names, strict=True)), camp


@pytest.mark.parametrize("kind", ["readnoise", "superbias", "dark", "mask"])
def test_json_agrees_with_the_file_and_the_png_opens(files, kind):
    paths, camp = files
    path = paths[kind]
    written = qa(path)
    json_path, png_path = qa_paths(path)
    assert written == [json_path, png_path]
    s = json.loads(json_path.read_text())
    header = fits.getheader(path)
    assert s["reftype"] == header["REFTYPE"] and s["detector"] == "NRCA1"
    assert s["daskref_version"] == daskref.__version__
    assert len(s["inputs"]) >= 4 and s["inputs"][0] == "dark_000_uncal.fits"
    assert s["call"].startswith(("readnoise(", "superbias(", "dark(", "bad_pixel_mask("))
    image = mpimg.imread(png_path)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 800
    attrs = dict(header)
    shape = (64, 2048)
    science = ~reference_pixel_mask(attrs, shape)
    amps = amplifier_index(attrs, shape)
    if kind == "mask":
        mask = fits.getdata(path, "DQ")
        counts = s["dq"]["counts"]
        for name in ("HOT", "DEAD", "OPEN", "REFERENCE_PIXEL", "DO_NOT_USE"):
            assert counts[name] == np.count_nonzero(mask & dq.PIXEL[name])
        assert s["dq"]["flagged_fraction"] == pytest.approx(np.mean(mask[science] != 0))
        return
    sci = fits.getdata(path, "SCI").astype(np.float64)
    planes = sci.reshape((-1,) + shape)
    entry = s["extensions"]["SCI"]["planes"][-1]
    last = planes[-1]
    assert sorted(a["amp"] for a in entry["amplifiers"]) == [0, 1, 2, 3]
    for a in entry["amplifiers"]:
        values = last[:, amps == a["amp"]][science[:, amps == a["amp"]]]
        values = values[np.isfinite(values)]
        assert a["n"] == values.size
        assert a["median"] == pytest.approx(np.median(values))
        assert a["robust_sigma"] == pytest.approx(
            1.4826 * np.median(np.abs(values - np.median(values))))
        assert a["percentiles"]["99"] == pytest.approx(np.percentile(values, 99))
    assert entry["nan_fraction"] == pytest.approx(np.mean(~np.isfinite(last[science])))
    if kind == "dark":
        assert len(s["extensions"]["SCI"]["planes"]) == 6


def test_compare_reports_the_changes(files, tmp_path):
    paths, _ = files
    previous = tmp_path / "previous_readnoise.fits"
    shutil.copy(paths["readnoise"], previous)
    with fits.open(previous, mode="update") as hdul:
        hdul["SCI"].data[10, 100:120] *= 2.0  # 20 pixels twice as noisy
    result = compare_files(paths["readnoise"], previous)
    assert result["kind"] == "ratio"
    science = ~reference_pixel_mask(dict(fits.getheader(previous)), (64, 2048))
    new, old = fits.getdata(paths["readnoise"], "SCI"), fits.getdata(previous, "SCI")
    with np.errstate(divide="ignore", invalid="ignore"):
        usable = science & np.isfinite(new / old)  # no ratio where the noise is 0 or NaN
    assert result["changed_fraction"] == pytest.approx(20 / usable.sum())
    assert result["stats"]["median"] == pytest.approx(1.0)
    out = qa(paths["readnoise"], compare=previous)
    s = json.loads(out[0].read_text())
    assert s["compare"]["previous"] == "previous_readnoise.fits"
    assert mpimg.imread(out[1]).shape[0] > 600  # a second row of panels
    # masks: the pixels that gained and lost each flag
    old_mask = tmp_path / "previous_mask.fits"
    shutil.copy(paths["mask"], old_mask)
    with fits.open(old_mask, mode="update") as hdul:
        dqa = hdul["DQ"].data
        hot = np.flatnonzero((dqa.ravel() & dq.HOT) != 0)[:5]
        dqa.ravel()[hot] &= ~np.uint32(dq.HOT)
        dqa[30, 1000] |= dq.DEAD
    result = compare_files(paths["mask"], old_mask)
    assert result["flags"]["HOT"] == {"gained": 5, "lost": 0}
    assert result["flags"]["DEAD"]["lost"] == (0 if fits.getdata(paths["mask"], "DQ")[30, 1000]
                                               & dq.DEAD else 1)
    with pytest.raises(ValueError, match="REFTYPE"):
        compare_files(paths["mask"], paths["readnoise"])


def test_index_page_embeds_every_picture(files, tmp_path):
    paths, _ = files
    for p in paths.values():
        qa(p)
    page = index_page(list(paths.values()), tmp_path / "index.html")
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 4
    for p in paths.values():
        assert p.name in text


def test_cli_writes_qa_by_default_and_not_with_no_qa(files, tmp_path, capsys):
    paths, camp = files
    out = tmp_path / "rn.fits"
    assert main(["readnoise", *map(str, camp.paths), "-o", str(out), "-q"]) == 0
    assert all(q.exists() for q in qa_paths(out))
    out2 = tmp_path / "rn2.fits"
    assert main(["readnoise", *map(str, camp.paths), "-o", str(out2), "-q", "--no-qa"]) == 0
    assert not any(q.exists() for q in qa_paths(out2))
    out3 = tmp_path / "rn3.fits"
    assert main(["readnoise", *map(str, camp.paths), "-o", str(out3), "-q",
                 "--compare", str(out)]) == 0
    assert json.loads(qa_paths(out3)[0].read_text())["compare"]["changed_fraction"] == 0.0
    assert main(["readnoise", *map(str, camp.paths), "-o", str(tmp_path / "x.fits"),
                 "--compare", str(tmp_path / "missing.fits")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "x.fits").exists()
    assert main(["qa", str(paths["superbias"]), "--index", str(tmp_path / "i.html"),
                 "-q"]) == 0
    assert (tmp_path / "i.html").exists()


def test_qa_of_linearity_gain_and_saturation(tmp_path):
    """The illuminated types: their QA JSON agrees with the file, the PNG opens."""
    from daskref.simulate import make_truth, simulate_ptc, simulate_ramps

    well = {"full_well": 45000.0, "nonlin_quadratic": 0.03, "nonlin_cubic": 0.02}
    truth = make_truth(subarray="SUB64P", substrt=(1, 1), subsize=(64, 64), seed=505,
                       tframe=10.0, **well)
    ramps = simulate_ramps(tmp_path / "ramps", truth, (0.6, 1.2, 2.0), nints=1,
                           ngroups=20).paths
    strip = make_truth(subarray="SUBGRISM64", substrt=(1, 1), subsize=(2048, 64), seed=11,
                       tframe=10.0, amp_gains=(1.8, 2.0, 2.2, 1.9), **well)
    ptc = simulate_ptc(tmp_path / "ptc", strip, ngroups=5, n_pairs=1).paths
    names = {k: tmp_path / f"{k}.fits" for k in ("linearity", "saturation", "gain")}
    daskref.write([daskref.linearity(ramps), daskref.saturation(ramps)],
                  [names["linearity"], names["saturation"]], pedigree="SIMULATION")
    daskref.write(daskref.gain(ptc, box_size=32), names["gain"], pedigree="SIMULATION")
    for kind, path in names.items():
        json_path, png_path = qa(path)
        s = json.loads(json_path.read_text())
        assert mpimg.imread(png_path).shape[1] > 800
        ext = "COEFFS" if kind == "linearity" else "SCI"
        data = fits.getdata(path, ext).astype(np.float64)
        planes = data.reshape((-1,) + data.shape[-2:])
        science = ~reference_pixel_mask(dict(fits.getheader(path)), planes.shape[1:])
        for k, entry in enumerate(s["extensions"][ext]["planes"]):
            v = planes[k][science]
            v = v[np.isfinite(v)]
            assert entry["all"]["median"] == pytest.approx(np.median(v), abs=1e-12)
    gain = json.loads(qa_paths(names["gain"])[0].read_text())
    medians = [a["median"] for a in gain["extensions"]["SCI"]["planes"][0]["amplifiers"]]
    np.testing.assert_allclose(medians, (1.8, 2.0, 2.2, 1.9), rtol=0.03)
