"""``daskref mkrefs`` end to end over a simulated multi-epoch campaign."""

from __future__ import annotations

import os
import sys
import textwrap

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from daskref.cli import main
from daskref.simulate import make_truth, simulate_exposure, write_references

EPOCHS = ("2026-01-01", "2026-01-20", "2026-02-10", "2026-03-01")


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """Four epochs of 3 SUB160 darks (2 x 10 groups) and 1 flat each, one detector."""
    d = tmp_path_factory.mktemp("campaign")
    truth = make_truth(subarray="SUB160", substrt=(1, 1), subsize=(160, 160), tframe=10.7,
                       hot_fraction=0.01, seed=8, cosmic_ray_rate=5e-5)
    paths = []
    for e, day in enumerate(EPOCHS):
        for k in range(3):
            p = d / "in" / f"dark_e{e}_{k}_uncal.fits"
            p.parent.mkdir(exist_ok=True)
            simulate_exposure(p, truth, nints=2, ngroups=10, seed=10 * e + k,
                              start=f"{day}T0{k}:00:00")
            paths.append(p)
        p = d / "in" / f"flat_e{e}_uncal.fits"
        simulate_exposure(p, truth, nints=1, ngroups=10, seed=100 + e, start=f"{day}T05:00:00",
                          exp_type="NRC_FLAT")
        paths.append(p)
    refs = write_references(truth, d / "refs", 10, kinds=["saturation", "linearity", "gain"])
    return d, truth, paths, refs


def _config(d, refs, **extra):
    text = textwrap.dedent(f"""\
        reflabels: [readnoise, superbias, dark, badpix_from_darks]
        test1: 4
        output:
          outrootdir: {d / 'out'}
          outsubdir: test1
          runID: AUTO
        reffile4ssb:
          superbias: SELF
          rdnoise: SELF
          saturation: {refs['saturation']}
          linearity: {refs['linearity']}
          gain: {refs['gain']}
        readnoise:
          imtypes: D+
        superbias:
          imtypes: D+
        dark:
          reftype: dark
          imtypes: DD
          ssbsteps: saturation,superbias,refpix,linearity,jump
          max_equivalent_groups: 60
          sigma_threshold: 3
          combine: mean
          pedigree: GROUND
          use_after: '2026-01-01T00:00:00'
        badpix_from_darks:
          imtypes: D+
          ssb_save_steps: jump
        gain_armin:
          imtypes: DDFF
        """)
    for k, v in extra.items():
        text += f"{k}: {v}\n"
    cfg = d / "mkrefs.cfg"
    cfg.write_text(text)
    return cfg


def test_mkrefs__campaign_plan_files_and_rerun(campaign, capsys):
    d, truth, paths, refs = campaign
    cfg = _config(d, refs)
    args = ["mkrefs", "-c", str(cfg), "readnoise,superbias", "dark", "badpix_from_darks",
            *map(str, paths), "-q"]
    assert main(args) == 0
    run = d / "out" / "test1" / "run000"
    # 3 darks an epoch, epochs weeks apart: greedy pairing within 2 days gives one DD
    # pair an epoch (the third dark is left over): 4 pairs
    names = sorted(p.name for p in (run / "dark").glob("*.dark.fits"))
    assert names == sorted([f"dark_test1_run000.cmd{i}.dark.fits" for i in range(2, 6)]
                           + ["dark_test1_run000.NRCA1.final.dark.fits"])
    assert (run / "readnoise" / "readnoise_test1_run000.cmd0.readnoise.fits").exists()
    assert (run / "superbias" / "superbias_test1_run000.cmd1.superbias.fits").exists()
    mask = run / "badpix_from_darks" / "badpix_from_darks_test1_run000.cmd6.mask.fits"
    assert mask.exists()
    from stdatamodels.jwst import datamodels as dm

    final = run / "dark" / "dark_test1_run000.NRCA1.final.dark.fits"
    with dm.DarkModel(str(final)) as m:
        m.validate()
    assert "mean of 4 DARK files" in " ".join(fits.getheader(final)["HISTORY"])
    individual = [fits.getdata(run / "dark" / f"dark_test1_run000.cmd{i}.dark.fits")
                  for i in range(2, 6)]
    np.testing.assert_allclose(fits.getdata(final), np.mean(individual, axis=0), rtol=1e-6,
                               atol=1e-5)
    with dm.MaskModel(str(mask)) as m:
        m.validate()
    # SELF: the dark's calibration used this run's SUPERBIAS
    history = " ".join(fits.getheader(run / "dark" / "dark_test1_run000.cmd2.dark.fits")
                       ["HISTORY"])
    assert "use_after" not in history
    assert fits.getval(run / "dark" / "dark_test1_run000.cmd2.dark.fits", "USEAFTER") == \
        "2026-01-01T00:00:00"
    sets = Table.read(run / "test1_run000.sets.txt", format="ascii.ecsv")
    assert set(sets["reflabel"]) == {"readnoise", "superbias", "dark", "badpix_from_darks"}
    assert len(sets[sets["cmdID"] == 0]) == 12  # D+: the darks only, not the flats
    outputs = Table.read(run / "test1_run000.outputs.txt", format="ascii.ecsv")
    assert set(outputs["status"]) == {"made"}
    assert list((d / "out" / "test1" / "ssb").glob("*_ramp.fits"))  # ssb_save_steps
    assert list(run.glob("mkrefs_*.log"))

    # a second identical run makes nothing
    capsys.readouterr()
    assert main(args[:-1]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_mkrefs__onlyshow_creates_nothing(campaign, tmp_path, capsys):
    d, truth, paths, refs = campaign
    cfg = _config(d, refs)
    out = tmp_path / "nothing"
    assert main(["mkrefs", "-c", str(cfg), "--outrootdir", str(out), "--onlyshow", "dark",
                 "readnoise,superbias", *map(str, paths)]) == 0
    text = capsys.readouterr().out
    assert "cmd0 dark NRCA1 stage 1 [make]" in text and str(out) in text
    assert "cmd4 readnoise NRCA1 stage 0" in text
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["bogus_label"], "neither a reflabel"),
    (["dark"], "reffile4ssb.readnoise is SELF but this run makes no READNOISE"),
    (["readnoise", "--pp", "readnoise", "imtypes", "D+F+"], "takes darks only"),
    (["dark", "--pp", "dark", "sigma_treshold", "4"], "sigma_treshold"),
    (["dark", "--pp", "dark", "max_clipping_iters", "2.5"], "max_clipping_iters"),
])
def test_mkrefs__errors_are_one_line(campaign, tmp_path, capsys, args, message):
    d, truth, paths, refs = campaign
    cfg = _config(d, refs)
    code = main(["mkrefs", "-c", str(cfg), "--outrootdir", str(tmp_path / "o"), *args,
                 *map(str, paths[:4])])  # an epoch: 3 darks and a flat
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_mkrefs__resumes_an_interrupted_run(campaign, tmp_path):
    d, truth, paths, refs = campaign
    cfg = _config(d, refs)
    base = ["mkrefs", "-c", str(cfg), "--outrootdir", str(tmp_path / "o"), "readnoise",
            "superbias", *map(str, paths[:6]), "-q"]
    assert main(base) == 0
    run = tmp_path / "o" / "test1" / "run000"
    rn = run / "readnoise" / "readnoise_test1_run000.cmd0.readnoise.fits"
    sb = run / "superbias" / "superbias_test1_run000.cmd1.superbias.fits"
    before = sb.stat().st_mtime_ns
    rn.unlink()  # as if the run had stopped before writing it
    assert main(base) == 0
    assert rn.exists() and sb.stat().st_mtime_ns == before
    # -n starts a new run
    assert main(base[:-1] + ["-n", "-q"]) == 0
    assert (tmp_path / "o" / "test1" / "run001" / "readnoise").is_dir()


def test_mkrefs__plugin_from_a_directory(campaign, tmp_path):
    d, truth, paths, refs = campaign
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "mkref_hotcount.py").write_text(textwrap.dedent("""\
        import xarray as xr
        from daskref.reftypes.plugins import Plugin
        from daskref.reftypes.registry import Param

        class HotCount(Plugin):
            reflabel, reftype, datamodel = "hotcount", "MASK", "MaskModel"
            imtypes, ssbsteps = "D+", "saturation,superbias,refpix,linearity,jump,rate"
            params = [Param("threshold", "DN/s above which a pixel is HOT")]

            def make(self, stack, threshold: float = 1.0):
                hot = stack.rateints.median("integration") > threshold
                return xr.Dataset({"dq": xr.where(hot, 2048, 0).astype("uint32")})
        """))
    cfg = _config(d, refs, plugin_dirs=f"[{plugins}]")
    assert main(["mkrefs", "-c", str(cfg), "--outrootdir", str(tmp_path / "o"), "superbias",
                 "readnoise", "hotcount", "--pp", "hotcount", "threshold", "0.5",
                 *map(str, paths[:6]), "-q"]) == 0
    out = next((tmp_path / "o").rglob("hotcount*.mask.fits"))
    hot = (fits.getdata(out, "DQ") & 2048) != 0
    assert hot[truth.hot].mean() > 0.95 and hot[~truth.hot].mean() < 0.01
    assert "threshold=0.5" in " ".join(fits.getheader(out)["HISTORY"])


def test_mkrefs__plugin_with_the_wrong_reflabel_is_refused(campaign, tmp_path, capsys):
    d, truth, paths, refs = campaign
    plugins = tmp_path / "bad"
    plugins.mkdir()
    (plugins / "mkref_oops.py").write_text(textwrap.dedent("""\
        from daskref.reftypes.plugins import Plugin

        class Oops(Plugin):
            reflabel, reftype, datamodel = "other", "MASK", "MaskModel"
        """))
    cfg = _config(d, refs, plugin_dirs=f"[{plugins}]")
    code = main(["mkrefs", "-c", str(cfg), "--outrootdir", str(tmp_path / "o"), "readnoise",
                 *map(str, paths[:3])])
    err = capsys.readouterr().err
    assert code == 2 and "declares reflabel 'other' but is named 'oops'" in err


def test_mkrefs__plugin_from_an_entry_point(campaign, tmp_path, monkeypatch):
    d, truth, paths, refs = campaign
    site = tmp_path / "site"
    (site / "hotpkg").mkdir(parents=True)
    (site / "hotpkg" / "__init__.py").write_text(textwrap.dedent("""\
        import xarray as xr
        from daskref.reftypes.plugins import Plugin

        class Bias0(Plugin):
            reflabel, reftype, datamodel = "bias0", "SUPERBIAS", "SuperBiasModel"
            imtypes = "D+"

            def make(self, stack):
                sci = stack.ramp.isel(group=0).mean("integration").astype("float32")
                return xr.Dataset({"sci": sci, "err": sci * 0, "dq": (sci * 0).astype("uint32")})
        """))
    dist = site / "hotpkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hotpkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[daskref.reflabels]\nbias0 = hotpkg:Bias0\n")
    monkeypatch.syspath_prepend(str(site))
    cfg = _config(d, refs)
    assert main(["mkrefs", "-c", str(cfg), "--outrootdir", str(tmp_path / "o"), "bias0",
                 *map(str, paths[:3]), "-q"]) == 0
    out = next((tmp_path / "o").rglob("bias0*.superbias.fits"))
    assert np.isfinite(fits.getdata(out, "SCI")).all()
    del sys.modules["hotpkg"]
    os.environ.pop("DUMMY", None)


def _plain_config(d, refs, tmp_path, **sections):
    """readnoise/superbias as files of an earlier run (no SELF)."""
    import yaml

    cfg = {"output": {"outrootdir": str(tmp_path / "o"), "runID": ""},
           "reffile4ssb": {"saturation": str(refs["saturation"]),
                           "linearity": str(refs["linearity"]), "gain": str(refs["gain"]),
                           "superbias": str(refs["superbias"]),
                           "readnoise": str(refs["readnoise"])}}
    cfg.update(sections)
    path = tmp_path / "plain.cfg"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def file_refs(campaign):
    d, truth, paths, refs = campaign
    more = write_references(truth, d / "refs2", 10, kinds=["superbias", "readnoise"])
    return {**refs, **more}


def test_mkrefs__reuses_kept_calibrations(campaign, file_refs, tmp_path):
    d, truth, paths, _ = campaign
    cfg = _plain_config(d, file_refs, tmp_path,
                        badpix_from_darks={"ssb_save_steps": "jump", "imtypes": "D+"})
    base = ["mkrefs", "-c", str(cfg), "badpix_from_darks", *map(str, paths[:6]), "-q"]
    assert main(base) == 0
    mask = next((tmp_path / "o").rglob("*.mask.fits"))
    first = fits.getdata(mask, "DQ")
    kept = sorted((tmp_path / "o" / "ssb").glob("*_ramp.fits"))
    assert len(kept) == 5  # the 5 darks of the 6 files (one is a flat)
    assert main(base[:-1] + ["--force_redo_ref", "-q"]) == 0
    prep = Table.read(next((tmp_path / "o").glob("*.prep.txt")), format="ascii.ecsv")
    assert all(str(s).endswith("_ramp.fits") for s in prep["source"])  # only rate was left
    np.testing.assert_array_equal(fits.getdata(mask, "DQ"), first)


def test_mkrefs__validation_against_a_previous_file(campaign, file_refs, tmp_path):
    d, truth, paths, _ = campaign
    cfg = _plain_config(d, file_refs, tmp_path,
                        validation={"rdnoise": str(file_refs["readnoise"])})
    assert main(["mkrefs", "-c", str(cfg), "readnoise", *map(str, paths), "-q"]) == 0
    report = next((tmp_path / "o").rglob("*.validation.json"))
    import json

    values = json.loads(report.read_text())
    assert values["median_ratio"] == pytest.approx(1.0, abs=0.03)  # made vs the true noise
    assert values["previous"] == str(file_refs["readnoise"])


def test_mkrefs__crds_without_a_server_is_one_line(campaign, file_refs, tmp_path, capsys):
    d, truth, paths, _ = campaign
    cfg = _plain_config(d, file_refs, tmp_path)
    code = main(["mkrefs", "-c", str(cfg), "--pp", "reffile4ssb", "gain", "CRDS", "dark",
                 *map(str, paths[:3])])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "reffile4ssb.gain: CRDS" in err


def test_mkrefs__write_config_and_caps(campaign, file_refs, tmp_path, capsys):
    from daskref.orchestrate.config import default_config, load_config

    out = tmp_path / "default.cfg"
    assert main(["mkrefs", "--write-config", str(out)]) == 0
    assert load_config(str(out)).data == load_config(None).data
    assert "badpix_from_darks:" in out.read_text() and default_config()["dark"]["imtypes"]
    d, truth, paths, _ = campaign
    cfg = _plain_config(d, file_refs, tmp_path)
    capsys.readouterr()
    assert main(["mkrefs", "-c", str(cfg), "--onlyshow", "--pp", "dark", "imtypes", "D",
                 "--maxNref", "2", "dark", *map(str, paths[:8])]) == 0
    text = capsys.readouterr().out
    assert text.count("[make]") == 2 and "skipped" in text


def test_mkrefs__each_input_read_once_per_stage_and_globs_matched(campaign, tmp_path):
    import shutil

    from daskref.testing import count_reads

    d, truth, paths, refs = campaign
    globdir = tmp_path / "sat"
    globdir.mkdir()
    shutil.copy(refs["saturation"], globdir / "sat_a1.fits")
    shutil.copy(refs["saturation"], globdir / "sat_b1.fits")
    with fits.open(globdir / "sat_b1.fits", mode="update") as h:
        h[0].header["DETECTOR"] = "NRCB1"
    cfg = _config(d, {**refs, "saturation": str(globdir / "sat_*.fits")})
    with count_reads() as reads:
        assert main(["mkrefs", "-c", str(cfg), "--outrootdir", str(tmp_path / "o"),
                     "readnoise,superbias,dark", "--pp", "dark", "imtypes", "D+",
                     *map(str, paths[:4]), "-q"]) == 0
    sci = 2 * 10 * 160 * 160 * 2
    darks = [str(p) for p in paths[:3]]
    # stage 0: READNOISE and SUPERBIAS; stage 1: the DARK, calibrated with them (SELF)
    assert [reads[p] for p in darks] == [2 * sci] * 3
    assert reads[str(paths[3])] == 0  # the flat is in no set
    prep = Table.read(next((tmp_path / "o").rglob("*.outputs.txt")), format="ascii.ecsv")
    assert set(prep["status"]) == {"made"}
    history = " ".join(fits.getheader(next((tmp_path / "o").rglob("*.cmd2.dark.fits")))
                       ["HISTORY"])
    assert "dark_e0_0_uncal.fits" in history
    # the calibration and its references, SELF ones by the files this run made
    assert "steps run saturation,superbias,refpix,linearity,jump" in history
    assert "superbias=superbias_test1_run000.cmd1.superbias.fits" in history.replace(" ", "")
