"""An mkrefs campaign interrupted, killed or out of disk: nothing partial, the rerun finishes.

The campaign: READNOISE (of ramps through ``refpix``, kept in ``ssbdir``) and SUPERBIAS
from 4 SUB320 darks. The calibrated products are streamed slab by slab while the stage
computes, so their part files exist for most of it: a signal sent when one appears
lands in the middle of the work, with temporaries on disk.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from daskref.cli import main
from daskref.testing import assert_same_fits, full_disk

ROOT = Path(__file__).resolve().parents[2]

#: every file of the campaign, relative to outrootdir
EXPECTED = ["readnoise/readnoise.cmd0.readnoise.fits", "superbias/superbias.cmd1.superbias.fits",
            *(f"ssb/dark_00{k}_refpix.fits" for k in range(4))]


def _config(tmp_path: Path, out: Path) -> Path:
    cfg = tmp_path / "mkrefs.cfg"
    cfg.write_text(textwrap.dedent(f"""\
        output: {{outrootdir: {out}, runID: ''}}
        readnoise: {{imtypes: D+, ssbsteps: refpix, ssb_save_steps: [refpix]}}
        superbias: {{imtypes: D+}}
        """))
    return cfg


def _args(cfg, darks, spill) -> list[str]:
    return ["mkrefs", "-c", str(cfg), "readnoise,superbias", *map(str, darks), "--no-qa",
            "--spill-dir", str(spill)]


@pytest.fixture(scope="module")
def undisturbed(bigger_darks, tmp_path_factory):
    """The campaign's files from a run left alone."""
    d = tmp_path_factory.mktemp("undisturbed")
    out = d / "out"
    assert main([*_args(_config(d, out), bigger_darks, d / "spill"), "-q"]) == 0
    return out


def _parts(*dirs) -> list[Path]:
    return [p for d in dirs for p in Path(d).rglob("*") if ".part" in p.name]


def _stop_while_computing(argv, out: Path, sig) -> subprocess.CompletedProcess:
    """Run ``daskref ARGV`` in a child; send ``sig`` once a part file appears."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    child = subprocess.Popen([sys.executable, "-m", "daskref", *argv], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not _parts(out / "ssb") and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert child.poll() is None, "the run ended before it could be stopped"
        assert _parts(out / "ssb"), "no part file appeared"
        t0 = time.monotonic()
        child.send_signal(sig)
        _, err = child.communicate(timeout=30)
    except BaseException:
        child.kill()
        child.communicate()
        raise
    assert time.monotonic() - t0 < 20, "it did not stop within seconds"
    return subprocess.CompletedProcess(argv, child.returncode, "", err)


def _rerun_completes(argv, out: Path, undisturbed: Path, capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 0
    text = capsys.readouterr().out
    for name in EXPECTED:
        assert_same_fits(undisturbed / name, out / name)
    made = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.fits"))
    assert made == sorted(EXPECTED)
    return text


def test_mkrefs_interrupted_leaves_nothing_and_the_rerun_finishes(bigger_darks, undisturbed,
                                                                  tmp_path, capsys):
    out, spill = tmp_path / "out", tmp_path / "spill"
    argv = _args(_config(tmp_path, out), bigger_darks, spill)
    run = _stop_while_computing([*argv, "--chunk-mb", "1", "--workers", "1"], out,
                                signal.SIGINT)
    assert run.returncode == 128 + signal.SIGINT
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "interrupted (SIGINT)" in lines[0], run.stderr
    assert "a rerun makes the rest" in lines[0]
    assert not _parts(out, spill)  # no temporary: not beside the outputs, not spilled
    assert not list(out.rglob("*.fits"))  # the stage did not finish: no file at all
    assert not list(spill.glob("*")) if spill.exists() else True
    assert "not made" in (out / "mkrefs.outputs.txt").read_text()  # and why in the log
    assert "run stopped (interrupted)" in next(out.glob("mkrefs_*.log")).read_text()
    _rerun_completes([*argv, "-q"], out, undisturbed, capsys)


def test_mkrefs_killed_the_rerun_removes_its_temporaries(bigger_darks, undisturbed, tmp_path,
                                                         capsys):
    out, spill = tmp_path / "out", tmp_path / "spill"
    argv = _args(_config(tmp_path, out), bigger_darks, spill)
    run = _stop_while_computing([*argv, "--chunk-mb", "1", "--workers", "1"], out,
                                signal.SIGKILL)
    assert run.returncode == -signal.SIGKILL
    # what a kill leaves: the part files of the products being written, spilled blocks
    assert _parts(out) and list(spill.glob("daskref-spill-*"))
    text = _rerun_completes(argv, out, undisturbed, capsys)
    assert not _parts(out, spill)
    assert not list(spill.glob("daskref-spill-*"))  # the killed run's spilled blocks too
    # what the killed run had finished is kept, not made again
    kept = [name for name in EXPECTED if f"exists {out / name}" in text]
    assert all(name.startswith("ssb/") for name in kept)
    log = sorted(out.glob("mkrefs_*.log"))[-1].read_text()
    assert "left by a run that was killed" in log


def test_mkrefs_out_of_disk_names_the_file_keeps_the_others(bigger_darks, undisturbed,
                                                            tmp_path, capsys, monkeypatch):
    out, spill = tmp_path / "out", tmp_path / "spill"
    argv = _args(_config(tmp_path, out), bigger_darks, spill)
    with monkeypatch.context() as patch:
        full_disk(patch, match="superbias")  # READNOISE is written first, then the disk fills
        assert main([*argv, "-q"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    superbias = out / "superbias" / "superbias.cmd1.superbias.fits"
    assert len(err) == 1, err
    assert f"{superbias}: no space left on device (the disk is full)" in err[0]
    assert "no partial file left" in err[0] and "a rerun makes the rest" in err[0]
    assert not superbias.exists() and not _parts(out, spill)
    assert (out / EXPECTED[0]).exists()
    table = (out / "mkrefs.outputs.txt").read_text()
    assert "failed (no space left on device (the disk is full))" in table
    # the rerun keeps READNOISE (and the calibrated ramps) and makes the SUPERBIAS
    text = _rerun_completes(argv, out, undisturbed, capsys)
    assert f"exists {out / EXPECTED[0]}" in text and f"wrote {superbias}" in text
