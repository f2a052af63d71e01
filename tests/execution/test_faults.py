"""Interrupts and killed runs: no partial or temporary file, one line, a rerun works."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daskref.cli import main
from daskref.io.exposure_writer import remove_stale
from daskref.testing import full_disk

ROOT = Path(__file__).resolve().parents[2]


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_stale_temporaries_of_a_killed_run_are_removed(tiny_darks, tmp_path):
    out = tmp_path / "rn.fits"
    stale = tmp_path / f".rn.fits.part-{_dead_pid()}"
    stale.write_bytes(b"SIMPLE  = half a file")
    busy = tmp_path / f".rn.fits.part-{os.getppid()}"  # a live process's: not ours to take
    busy.write_bytes(b"")
    other = tmp_path / f".other.fits.part-{_dead_pid()}"  # another output's
    other.write_bytes(b"")
    assert main(["readnoise", *map(str, tiny_darks), "-o", str(out), "--no-qa", "-q"]) == 0
    assert out.exists() and not stale.exists()
    assert busy.exists() and other.exists()
    assert remove_stale(tmp_path / "other.fits") == [other]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupt_stops_within_seconds_leaving_nothing(bigger_darks, tmp_path, sig):
    # a DARK with jump detection: long enough to be interrupted mid-computation (a
    # READNOISE of these inputs is over in well under a second)
    refs = tmp_path / "refs"
    refs.mkdir()
    assert main(["readnoise", *map(str, bigger_darks), "-o", str(refs / "rn.fits"), "--no-qa",
                 "-q"]) == 0
    assert main(["superbias", *map(str, bigger_darks), "-o", str(refs / "sb.fits"),
                 "--no-qa", "-q"]) == 0
    out = tmp_path / "dark.fits"
    command = ["dark", *map(str, bigger_darks), "-o", str(out), "--no-qa",
               "--steps", "superbias,refpix,jump", "--superbias", str(refs / "sb.fits"),
               "--readnoise", str(refs / "rn.fits"), "--gain", "2.0"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    child = subprocess.Popen(
        [sys.executable, "-m", "daskref", *command, "--chunk-mb", "0.1", "--workers", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the progress bar appears once the computation runs: interrupt it then
    deadline = time.monotonic() + 60
    seen = ""
    while time.monotonic() < deadline and "Completed" not in seen:
        seen += child.stdout.read(1) or ""
        if child.poll() is not None:
            break
    assert child.poll() is None, "the run ended before it could be interrupted"
    time.sleep(0.5)
    t0 = time.monotonic()
    child.send_signal(sig)
    try:
        _, err = child.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise
    finally:
        child.stdout.close()
        child.stderr.close()
    assert time.monotonic() - t0 < 20
    assert child.returncode == 128 + sig
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "interrupted" in lines[0], err
    assert not out.exists()
    assert not list(tmp_path.glob(".*part*"))
    # a rerun completes
    assert main([*command, "-q"]) == 0
    assert out.exists()


# --------------------------------------------------------------------------- outputs


def no_compute(monkeypatch):
    """Fail if a graph is computed: an output problem must be found before the work."""
    import daskref._compute
    import daskref.api
    import daskref.orchestrate.run  # (imported first: it binds compute when imported)

    def refuse(*args, **kwargs):
        raise AssertionError("the computation started")

    for module in (daskref._compute, daskref.api, daskref.orchestrate.run):
        monkeypatch.setattr(module, "compute", refuse)


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def _unwritable(tmp_path, how) -> Path:
    """A directory nothing can be written to: one under a regular file (for everyone,
    root too), or one without write permission (not for root, who ignores it)."""
    if how == "under-a-file":
        (tmp_path / "somefile").write_text("not a directory")
        return tmp_path / "somefile" / "sub"
    if os.geteuid() == 0:
        pytest.skip("root writes into a directory without write permission")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    return locked


@pytest.mark.parametrize("how", ["under-a-file", "no-permission"])
def test_unwritable_output_is_one_line_before_any_work(tiny_darks, tmp_path, capsys,
                                                       monkeypatch, how):
    where = _unwritable(tmp_path, how)
    no_compute(monkeypatch)
    before = sorted(tmp_path.rglob("*"))
    for argv, named in [
        (["readnoise", *map(str, tiny_darks), "-o", str(where / "rn.fits"), "--no-qa"],
         where / "rn.fits"),
        (["prep", *map(str, tiny_darks), "-o", str(where / "prepped"), "--steps", "refpix"],
         where / "prepped"),
        (["mkrefs", "readnoise", *map(str, tiny_darks), "--outrootdir", str(where / "out"),
          "--no-qa"], where / "out"),
    ]:
        assert main(argv) == 2, argv[0]
        line = _one_line(capsys.readouterr().err)
        assert str(named) in line and "not writable" in line, line
    assert sorted(tmp_path.rglob("*")) == before  # nothing made, not even a directory


def test_full_disk_is_one_line_and_leaves_nothing(tiny_darks, tmp_path, capsys, monkeypatch):
    out = tmp_path / "rn.fits"
    full_disk(monkeypatch)
    assert main(["readnoise", *map(str, tiny_darks), "-o", str(out), "--no-qa", "-q"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert str(out) in line and "the disk is full" in line and "no partial file" in line, line
    assert list(tmp_path.iterdir()) == []  # no file, no temporary


def test_full_disk_while_streaming_prep_products(tiny_darks, tmp_path, capsys, monkeypatch):
    calls = []
    real = os.pwrite

    def pwrite(fd, data, offset):  # the disk fills up during the third slab's write
        calls.append(offset)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    out = tmp_path / "prepped"
    assert main(["prep", *map(str, tiny_darks), "-o", str(out), "--steps", "refpix",
                 "--chunk-mb", "0.01", "--scheduler", "synchronous", "-q"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "_refpix.fits: no space left on device (the disk is full)" in line, line
    assert str(out) in line
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_a_refused_probe_is_reported_also_for_root(tiny_darks, tmp_path, capsys, monkeypatch):
    """What a directory without write permission gives a non-root user, or a read-only
    mount anyone, simulated where the probe file is made (the tests may run as root)."""
    import daskref.io.exposure_writer as writer

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), kwargs.get("dir"))

    monkeypatch.setattr(writer.tempfile, "mkstemp", refuse)
    no_compute(monkeypatch)
    out = tmp_path / "rn.fits"
    assert main(["readnoise", *map(str, tiny_darks), "-o", str(out), "--no-qa"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"{out}: not writable: permission denied" in line, line
