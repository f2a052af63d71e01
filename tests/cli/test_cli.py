import shutil
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels as dm

from daskref.cli import main
from daskref.testing import write_ramp_file


def test_readnoise_and_superbias_commands(nircam_darks, tmp_path, capsys):
    files = [str(p) for p in nircam_darks.paths]
    rc = main(["readnoise", *files, "-o", str(tmp_path / "rn.fits"), "--method", "ramp",
               "--group-diff-type", "consecutive", "--clipping-sigma", "2.5",
               "--max_clipping_iters", "2", "--author", "A. Person", "--useafter", "2026-02-01",
               "--history", "CLI test", "-q"])
    assert rc == 0
    with dm.ReadnoiseModel(str(tmp_path / "rn.fits")) as m:
        m.validate()
        assert m.meta.author == "A. Person" and m.meta.useafter == "2026-02-01T00:00:00"
    history = "\n".join(fits.getheader(tmp_path / "rn.fits")["HISTORY"])
    for text in ("method='ramp'", "group_diff_type='consecutive'", "clipping_sigma=2.5",
                 "max_clipping_iters=2", "CLI test"):
        assert text in history
    rc = main(["superbias", *files, "-o", str(tmp_path / "sb.fits"), "--save-filled",
               "--bad-sigma-threshold", "4", "--workers", "2", "--scheduler", "threads"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "sb.fits" in out and "sb_filled.fits" in out
    with dm.SuperBiasModel(str(tmp_path / "sb.fits")) as m:
        m.validate()


def test_single_value_flag(nircam_darks, tmp_path):
    rc = main(["readnoise", *map(str, nircam_darks.paths), "-o", str(tmp_path / "rn.fits"),
               "--single-value", "-q"])
    assert rc == 0
    assert np.unique(fits.getdata(tmp_path / "rn.fits", "SCI")).size == 1


def _bad_inputs(tmp_path, good):
    base = {"INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "SUBARRAY": "SUB64P", "READPATT": "RAPID"}

    def ramp(name, shape=(1, 3, 4, 4), **hdr):
        return write_ramp_file(tmp_path / name, np.zeros(shape, np.float32), header=base | hdr)

    text = tmp_path / "text.fits"
    text.write_text("not FITS\n" * 500)
    cut = tmp_path / "cut.fits"
    cut.write_bytes(good.read_bytes()[:-500])
    nosci = tmp_path / "nosci.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((3, 3)), name="IMG")]).writeto(nosci)
    return {
        "missing file": ([tmp_path / "missing.fits"], "missing.fits: no such file"),
        "not FITS": ([text], "text.fits: is not a readable FITS file"),
        "truncated": ([good, cut], "cut.fits: is truncated"),
        "no SCI": ([nosci], "nosci.fits: has no SCI extension"),
        "one group": ([ramp("g1.fits", shape=(2, 1, 4, 4))], "g1.fits: has 1 group"),
        "detectors": ([good, ramp("det.fits", DETECTOR="NRCB2")], "det.fits: DETECTOR is"),
        "subarrays": ([good, ramp("sub.fits", SUBARRAY="FULL")], "sub.fits: SUBARRAY is"),
        "readpatt": ([good, ramp("rp.fits", READPATT="DEEP8")], "rp.fits: READPATT is"),
        "empty list": ([], "no input files given"),
    }


@pytest.mark.parametrize("case", ["missing file", "not FITS", "truncated", "no SCI", "one group",
                                  "detectors", "subarrays", "readpatt", "empty list"])
@pytest.mark.parametrize("command", ["readnoise", "superbias"])
def test_bad_input__one_line_exit_2_no_output(tmp_path, capsys, case, command):
    good = write_ramp_file(tmp_path / "good.fits", np.zeros((1, 3, 4, 4), np.float32),
                           header={"SUBARRAY": "SUB64P", "DETECTOR": "NRCA1"})
    files, message = _bad_inputs(tmp_path, good)[case]
    out = tmp_path / "out" / "ref.fits"
    rc = main([command, *map(str, files), "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message in err and err.startswith(f"daskref {command}: error: ")
    assert not out.exists() and not (tmp_path / "out").exists()


def test_bad_metadata_and_output__exit_2(nircam_darks, tmp_path, capsys):
    files = list(map(str, nircam_darks.paths))
    assert main(["readnoise", *files, "-o", str(tmp_path / "rn.fits"),
                 "--description", "d" * 70]) == 2
    assert "at most 65" in capsys.readouterr().err
    assert main(["readnoise", *files, "-o", str(tmp_path / "rn.txt")]) == 2
    assert "must end in .fits" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["readnoise", *files, "-o", str(tmp_path / "r.fits"), "--method", "x"])
    assert info.value.code == 2  # argparse rejects a bad choice with its usage line
    assert list(tmp_path.iterdir()) == []


def test_inventory_command(nircam_darks, capsys):
    assert main(["inventory", *map(str, nircam_darks.paths)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "DETECTOR" in lines[0] and "MJD_START" in lines[0]
    assert len(lines) == 2 + 6 and all("NRCA1" in ln for ln in lines[2:])
    assert main(["inventory", "--format", "csv", str(nircam_darks.paths[0])]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("file,INSTRUME,DETECTOR")


def test_simulate_command(tmp_path):
    rc = main(["simulate", str(tmp_path), "--n-files", "2", "--ngroups", "3",
               "--instrument", "MIRI", "--subarray", "SUB64", "--substrt", "1", "779",
               "--subsize", "72", "64", "-q"])
    assert rc == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "dark_000_uncal.fits", "dark_001_uncal.fits", "dark_truth.fits"]
    assert fits.getval(tmp_path / "dark_000_uncal.fits", "INSTRUME") == "MIRI"
    assert fits.getdata(tmp_path / "dark_truth.fits", "READNOISE_CDS").shape == (64, 72)


def test_demo__installed_command(tmp_path):
    exe = shutil.which("daskref")
    cmd = [exe] if exe else [sys.executable, "-m", "daskref"]
    run = subprocess.run([*cmd, "demo", str(tmp_path / "demo"), "--n-files", "4"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "READNOISE: median recovered/true CDS noise" in run.stdout
    assert "MASK from the darks: recall hot" in run.stdout
    assert "MASK from the flats: recall dead" in run.stdout
    assert "DARK: rms(recovered - true)" in run.stdout
    index = tmp_path / "demo" / "out" / "run000" / "qa_index.html"
    assert f"QA of every file (image, histogram, per-amplifier statistics, flags): {index}" \
        in run.stdout and index.read_text().count("data:image/png;base64,") == 4
    for name, model in (("readnoise.fits", dm.ReadnoiseModel), ("superbias.fits",
                                                               dm.SuperBiasModel),
                        ("dark.fits", dm.DarkModel), ("mask.fits", dm.MaskModel)):
        # the demo runs mkrefs: <reflabel>/<reflabel>_run000.cmd<N>.<reftype>.fits
        reftype = name.removesuffix(".fits")
        path = next((tmp_path / "demo" / "out").rglob(f"*.cmd*.{reftype}.fits"))
        assert f"wrote {path}" in run.stdout
        with model(str(path)) as m:
            m.validate()


def test_scheduler_address__runs_on_distributed(nircam_darks, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        rc = main(["readnoise", *map(str, nircam_darks.paths), "-o", str(tmp_path / "rn.fits"),
                   "--scheduler", cluster.scheduler_address, "-q"])
    assert rc == 0
    with dm.ReadnoiseModel(str(tmp_path / "rn.fits")) as m:
        m.validate()


def test_unreachable_scheduler__one_line(nircam_darks, tmp_path, capsys):
    rc = main(["readnoise", *map(str, nircam_darks.paths), "-o", str(tmp_path / "rn.fits"),
               "--scheduler", "tcp://127.0.0.1:1"])
    assert rc == 2
    assert "cannot reach the dask scheduler" in capsys.readouterr().err
    assert not (tmp_path / "rn.fits").exists()


def test_example_script_runs(tmp_path):
    from pathlib import Path

    script = Path(__file__).parents[2] / "examples" / "readnoise_superbias.py"
    run = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "median READNOISE / truth" in run.stdout
