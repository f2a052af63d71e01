"""``daskref dark`` and ``daskref mask --darks``: files, one-line errors, no partial output."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from daskref.cli import main
from daskref.simulate import simulate_campaign, write_references


@pytest.fixture(scope="module")
def refs(nircam_darks, tmp_path_factory):
    d = tmp_path_factory.mktemp("refs")
    return write_references(nircam_darks.truth, d, 10,
                            kinds=["saturation", "superbias", "linearity", "readnoise", "gain"])


def _ref_flags(refs):
    return [f"--{k}={v}" for k, v in refs.items()]


def test_dark_command_writes_the_file_and_its_companions(nircam_darks, refs, tmp_path, capsys):
    out = tmp_path / "dark.fits"
    args = ["dark", *map(str, nircam_darks.paths), "-o", str(out), "--stat-to-use", "median",
            "--sigma-threshold", "4", *_ref_flags(refs), "--pedigree", "SIMULATION"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    for name in ("dark.fits", "dark_contribution.fits", "dark_darkrate.fits"):
        assert name in printed and (tmp_path / name).exists()
    header = fits.getheader(out)
    assert header["REFTYPE"] == "DARK" and header["SUBARRAY"] == "SUB64P"
    assert "stat_to_use='median'" in " ".join(header["HISTORY"])
    assert "sigma_threshold=4.0" in " ".join(header["HISTORY"])


def test_mask_command_with_jwst_reffiles_names(nircam_darks, refs, tmp_path):
    out = tmp_path / "mask.fits"
    args = ["mask", "--darks", *map(str, nircam_darks.paths), "-o", str(out),
            "--noisy_threshold", "6", "--dark_do_not_use", "hot,rc", "--flag-values",
            "{warm: [WARM, UNRELIABLE_DARK]}", *_ref_flags(refs), "-q"]
    assert main(args) == 0
    mask = fits.getdata(out, "DQ")
    assert (mask & (1 << 31)).any()  # reference pixels
    history = " ".join(fits.getheader(out)["HISTORY"])
    assert "dark_noisy_threshold=6.0" in history and "'hot', 'rc'" in history
    assert (tmp_path / "mask_diagnostics.fits").exists()


@pytest.mark.parametrize("extra, message", [
    (["--max-clipping-iters", "2.5"], "max_clipping_iters='2.5': expected int"),
    (["--steps", "superbias,refpix"], "has not had the jump step"),
])
def test_dark_command_errors_are_one_line(nircam_darks, refs, tmp_path, capsys, extra, message):
    out = tmp_path / "dark.fits"
    code = main(["dark", *map(str, nircam_darks.paths), "-o", str(out),
                 *_ref_flags(refs), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_missing_reference_is_one_line_naming_file_and_flag(nircam_darks, tmp_path, capsys):
    code = main(["mask", "--darks", *map(str, nircam_darks.paths), "-o",
                 str(tmp_path / "m.fits"), "--gain", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "dark_000_uncal.fits" in err and "--saturation" in err


def test_mixed_readout_is_refused_with_no_output(tmp_path, capsys):
    a = simulate_campaign(tmp_path / "a", 1, nints=1, ngroups=5, subarray="SUB64P",
                          subsize=(64, 64))
    b = simulate_campaign(tmp_path / "b", 1, nints=1, ngroups=5, subarray="SUB64P",
                          subsize=(64, 64), readpatt="BRIGHT1")
    out = tmp_path / "dark.fits"
    code = main(["dark", *map(str, a.paths + b.paths), "-o", str(out), "--readnoise", "10",
                 "--gain", "2", "--steps", "jump"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "READPATT is 'BRIGHT1'" in err and "b/dark_000_uncal.fits" in err
    assert not out.exists()


def test_written_dark_matches_the_api(nircam_darks, refs, tmp_path):
    import daskref

    out = tmp_path / "dark.fits"
    assert main(["dark", *map(str, nircam_darks.paths), "-o", str(out), *_ref_flags(refs),
                 "-q"]) == 0
    api = daskref.compute([daskref.dark(nircam_darks.paths, **refs)])[0]
    np.testing.assert_array_equal(fits.getdata(out, "SCI"), api["sci"].values[0])
