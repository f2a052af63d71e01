"""The bad-input catalogue (issue 11): every malformed input, one clean line.

Each row of :data:`CASES` is one malformed input: its id (also a row of the "Bad
input" table of README.md), what is wrong, and a builder that makes the bad input
from a kit of valid tiny inputs and returns the command line and the words the
message must contain (the offending file and, where there is one, the keyword or
extension). Every case runs ``daskref.cli.main`` in-process and must end with exit
status 2, exactly one line on stderr (naming the file), nothing on stdout, no
traceback, and no file (output or temporary) created.

``python tests/cli/test_bad_input.py`` runs every case and prints the README table
from the real messages.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from daskref.cli import main
from daskref.io import fits as dfits
from daskref.simulate import make_truth, simulate_exposure, write_references

NGROUPS, NINTS = 4, 2


@dataclass
class Kit:
    """Valid tiny inputs that the builders copy and corrupt."""

    root: Path
    darks: list[Path]
    miri: Path
    refs: dict[str, Path]
    miri_refs: dict[str, Path]


def make_kit(root: Path) -> Kit:
    """Two NIRCam SUB64P darks (2 x 4 groups, 64 x 64), a MIRI SUB64 dark, and their
    reference files (a few hundred kB in all)."""
    truth = make_truth(subarray="SUB64P", substrt=(1, 1), subsize=(64, 64), seed=11)
    darks = [simulate_exposure(root / f"dark_{k}_uncal.fits", truth, nints=NINTS,
                               ngroups=NGROUPS, seed=k,
                               start=f"2026-03-01T0{k}:00:00").path for k in range(2)]
    miri_truth = make_truth(instrument="MIRI", subarray="SUB64", substrt=(1, 779),
                            subsize=(72, 64), seed=12)
    miri = simulate_exposure(root / "miri_uncal.fits", miri_truth, nints=NINTS,
                             ngroups=NGROUPS, seed=3).path
    refs = write_references(truth, root / "refs", NGROUPS)
    miri_refs = write_references(miri_truth, root / "miri_refs", NGROUPS, kinds=["dark"])
    return Kit(root=root, darks=darks, miri=miri, refs=refs, miri_refs=miri_refs)


# --------------------------------------------------------------------------- helpers


def edited(src: Path, dst: Path, **keywords) -> Path:
    """A copy of ``src`` with primary keywords changed (None: removed)."""
    shutil.copy(src, dst)
    with fits.open(dst, mode="update") as hdul:
        for key, value in keywords.items():
            if value is None:
                del hdul[0].header[key]
            else:
                hdul[0].header[key] = value
    return dst


def rewritten(src: Path, dst: Path, sci: np.ndarray, *extra: fits.ImageHDU,
              **keywords) -> Path:
    """``src``'s primary header (``keywords`` changed) with a new SCI and extensions."""
    with fits.open(src) as hdul:
        header = hdul[0].header.copy()
    for key, value in keywords.items():
        header[key] = value
    fits.HDUList([fits.PrimaryHDU(header=header), fits.ImageHDU(sci, name="SCI"),
                  *extra]).writeto(dst)
    return dst


def raw(path: Path) -> np.ndarray:
    """The SCI data of a file (uint16 for an uncal file)."""
    return fits.getdata(path, "SCI")


def reference_part(src: Path, dst: Path, rows: int, cols: int, **keywords) -> Path:
    """A reference file cut to its first ``rows`` x ``cols`` pixels."""
    with fits.open(src) as hdul:
        for hdu in hdul[1:]:
            if hdu.data is not None and hdu.is_image and hdu.data.ndim >= 2:
                hdu.data = np.ascontiguousarray(hdu.data[..., :rows, :cols])
        hdul[0].header.update(SUBSIZE1=cols, SUBSIZE2=rows, **keywords)
        hdul.writeto(dst)
    return dst


@contextlib.contextmanager
def denied(path: Path):
    """``path`` cannot be opened: chmod 000, or as root (who may read it anyway) an
    ``open`` in daskref.io.fits that raises PermissionError for it."""
    os.chmod(path, 0)
    patched = os.geteuid() == 0
    if patched:
        def refuse(file, *args, **kwargs):
            if os.fspath(file) == str(path):
                raise PermissionError(13, "Permission denied", str(path))
            return open(file, *args, **kwargs)

        dfits.open = refuse  # a module global shadows the builtin for that module
    try:
        yield
    finally:
        if patched:
            del dfits.open
        os.chmod(path, 0o644)


def config(d: Path, text: str) -> Path:
    path = d / "mkrefs.cfg"
    path.write_text(text)
    return path


@dataclass
class Bad:
    """A built case: the command line, the words of the message, an optional context."""

    argv: list[str]
    words: list[str]
    context: Callable[[], contextlib.AbstractContextManager] | None = None


@dataclass
class Case:
    id: str
    what: str
    build: Callable[[Kit, Path], Bad]
    marks: list = field(default_factory=list)


def _s(*paths) -> list[str]:
    return [str(p) for p in paths]


def _out(d: Path) -> str:
    return str(d / "out" / "ref.fits")


def _prep(path: Path, d: Path, steps: str, *refs: str) -> list[str]:
    return ["prep", str(path), "--steps", steps, *refs, "-o", str(d / "out")]


def _mkrefs(k: Kit, d: Path, cfg: Path | str, label: str = "readnoise") -> list[str]:
    return ["mkrefs", "-c", str(cfg), label, *_s(*k.darks), "--outrootdir", str(d / "out")]


def _text(d: Path) -> Path:
    path = d / "notes.fits"
    path.write_text("observing notes, not FITS\n" * 200)
    return path


# --------------------------------------------------------------------------- the cases


def _no_inputs(k, d):
    return Bad(["readnoise", "-o", _out(d)], ["no input files given"])


def _missing_file(k, d):
    return Bad(["readnoise", str(d / "missing_uncal.fits"), "-o", _out(d)],
               ["missing_uncal.fits", "no such file"])


def _directory_input(k, d):
    (d / "darks").mkdir()
    return Bad(["readnoise", str(d / "darks"), "-o", _out(d)], ["darks", "is a directory"])


def _empty_file(k, d):
    (d / "empty.fits").write_bytes(b"")
    return Bad(["readnoise", str(d / "empty.fits"), "-o", _out(d)], ["empty.fits", "is empty"])


def _not_fits(k, d):
    return Bad(["readnoise", str(_text(d)), "-o", _out(d)],
               ["notes.fits", "is not a readable FITS file", "SIMPLE"])


def _unreadable(k, d):
    path = edited(k.darks[0], d / "locked_uncal.fits")
    return Bad(["readnoise", str(path), *_s(k.darks[1]), "-o", _out(d)],
               ["locked_uncal.fits", "permission denied"], lambda: denied(path))


def _truncated(k, d):
    path = d / "cut_uncal.fits"
    path.write_bytes(k.darks[0].read_bytes()[:-5000])
    return Bad(["readnoise", str(path), "-o", _out(d)], ["cut_uncal.fits", "is truncated"])


def _no_sci(k, d):
    path = d / "nosci.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((4, 4)), name="DATA")]).writeto(path)
    return Bad(["readnoise", str(path), "-o", _out(d)], ["nosci.fits", "no SCI extension"])


def _sci_3d(k, d):
    path = rewritten(k.darks[0], d / "cube_uncal.fits", raw(k.darks[0])[0])
    return Bad(["superbias", str(path), "-o", _out(d)], ["cube_uncal.fits", "SCI is 3-D"])


def _sci_float64(k, d):
    path = rewritten(k.darks[0], d / "f64_uncal.fits", raw(k.darks[0]).astype(np.float64))
    return Bad(["superbias", str(path), "-o", _out(d)],
               ["f64_uncal.fits", "SCI is float64", "uint16"])


def _one_group(k, d):
    path = rewritten(k.darks[0], d / "g1_uncal.fits", raw(k.darks[0])[:, :1], NGROUPS=1)
    return Bad(["superbias", str(path), "-o", _out(d)], ["g1_uncal.fits", "has 1 group"])


def _edited_keyword(name, expected, **keywords):
    """A case: the first dark with header ``keywords`` changed (None: removed), to ``name``."""
    def case(k, d):
        path = edited(k.darks[0], d / name, **keywords)
        return Bad(["superbias", str(path), "-o", _out(d)], [name, expected])
    return case


_ngroups_mismatch = _edited_keyword("ng_uncal.fits", "NGROUPS is 6", NGROUPS=NGROUPS + 2)
_ngroups_missing = _edited_keyword("nong_uncal.fits", "no NGROUPS", NGROUPS=None)
_nints_mismatch = _edited_keyword("ni_uncal.fits", "NINTS is 5", NINTS=5)
_nints_missing = _edited_keyword("noni_uncal.fits", "no NINTS", NINTS=None)
_subsize_mismatch = _edited_keyword("ss_uncal.fits", "SUBSIZE1 is 32", SUBSIZE1=32)


def _groupdq_shape(k, d):
    sci = raw(k.darks[0]).astype(np.float32)
    gdq = fits.ImageHDU(np.zeros((NINTS, NGROUPS - 1, 64, 64), np.uint8), name="GROUPDQ")
    path = rewritten(k.darks[0], d / "gdq_ramp.fits", sci, gdq, S_SATURA="COMPLETE")
    return Bad(["superbias", str(path), "-o", _out(d)], ["gdq_ramp.fits", "GROUPDQ shape"])


def _pixeldq_shape(k, d):
    sci = raw(k.darks[0]).astype(np.float32)
    pdq = fits.ImageHDU(np.zeros((32, 64), np.uint32), name="PIXELDQ")
    path = rewritten(k.darks[0], d / "pdq_ramp.fits", sci, pdq, S_SATURA="COMPLETE")
    return Bad(["superbias", str(path), "-o", _out(d)], ["pdq_ramp.fits", "PIXELDQ shape"])


def _all_nan(k, d):
    sci = np.full(raw(k.darks[0]).shape, np.nan, np.float32)
    path = rewritten(k.darks[0], d / "nan_ramp.fits", sci, S_SATURA="COMPLETE",
                     S_SUPERB="COMPLETE")
    return Bad(["superbias", str(path), *_s(k.darks[1]), "-o", _out(d)],
               ["nan_ramp.fits", "SCI is NaN"])


def _constant_data(k, d):
    sci = np.full(raw(k.darks[0]).shape, 12000, np.uint16)
    path = rewritten(k.darks[0], d / "flat_uncal.fits", sci)
    return Bad(["superbias", *_s(k.darks[1]), str(path), "-o", _out(d)],
               ["flat_uncal.fits", "SCI is constant", "12000"])


def _tgroup_missing(k, d):
    path = edited(k.darks[0], d / "notg_uncal.fits", TGROUP=None)
    return Bad(["dark", str(path), *_s(k.darks[1]), "-o", _out(d)],
               ["notg_uncal.fits", "no TGROUP", "DARK"])


def _tgroup_nonpositive(k, d):
    path = edited(k.darks[0], d / "tg0_uncal.fits", TGROUP=0.0)
    return Bad(["linearity", str(path), "-o", _out(d)],
               ["tg0_uncal.fits", "TGROUP is 0.0", "LINEARITY"])


def _duplicate_path(k, d):
    return Bad(["readnoise", *_s(k.darks[0], k.darks[1], k.darks[0]), "-o", _out(d)],
               [k.darks[0].name, "is given twice"])


def _duplicate_content(k, d):
    copy = d / "copy_of_dark_0.fits"
    shutil.copy(k.darks[0], copy)
    return Bad(["readnoise", *_s(*k.darks), str(copy), "-o", _out(d)],
               ["copy_of_dark_0.fits", "same header and data as", k.darks[0].name])


def _mixed(key, value, word):
    def build(k, d):
        path = edited(k.darks[1], d / "other_uncal.fits", **{key: value})
        return Bad(["readnoise", *_s(k.darks[0]), str(path), "-o", _out(d)],
                   ["other_uncal.fits", word])
    return build


def _miri_nir_mix(k, d):
    return Bad(["readnoise", *_s(k.darks[0], k.miri), "-o", _out(d)],
               [k.miri.name, "INSTRUME is 'MIRI'", "NIRCAM"])


def _mixed_frame_size(k, d):
    path = rewritten(k.darks[1], d / "half_uncal.fits", raw(k.darks[1])[:, :, :32], SUBSIZE2=32)
    return Bad(["readnoise", *_s(k.darks[0]), str(path), "-o", _out(d)],
               ["half_uncal.fits", "frame size (32, 64)"])


def _mixed_ngroups(k, d):
    path = rewritten(k.darks[1], d / "short_uncal.fits", raw(k.darks[1])[:, :3], NGROUPS=3)
    return Bad(["readnoise", *_s(k.darks[0]), str(path), "-o", _out(d)],
               ["short_uncal.fits", "has 3 groups but"])


def _superbias_one_integration(k, d):
    path = rewritten(k.darks[0], d / "int1_uncal.fits", raw(k.darks[0])[:1], NINTS=1)
    return Bad(["superbias", str(path), "-o", _out(d)],
               ["int1_uncal.fits", "1 integration", "SUPERBIAS needs at least 2"])


def _readnoise_too_few_differences(k, d):
    path = rewritten(k.darks[0], d / "cds_uncal.fits", raw(k.darks[0])[:1, :3], NINTS=1,
                     NGROUPS=3)
    return Bad(["readnoise", str(path), "-o", _out(d)],
               ["cds_uncal.fits", "1 independent group difference", "READNOISE needs"])


def _reference_missing(k, d):
    return Bad(_prep(k.darks[0], d, "superbias", "--superbias", str(d / "nosb.fits")),
               ["--superbias", "nosb.fits", "no such file"])


def _reference_not_fits(k, d):
    return Bad(_prep(k.darks[0], d, "superbias", "--superbias", str(_text(d))),
               ["notes.fits", "not a readable FITS", "superbias reference"])


def _reference_wrong_reftype(k, d):
    return Bad(_prep(k.darks[0], d, "superbias", "--superbias", str(k.refs["readnoise"])),
               ["readnoise.fits", "REFTYPE is READNOISE", "SUPERBIAS"])


def _reference_wrong_shape(k, d):
    ref = d / "sb_cube.fits"
    with fits.open(k.refs["superbias"]) as hdul:
        hdul["SCI"].data = hdul["SCI"].data[None]
        hdul.writeto(ref)
    return Bad(_prep(k.darks[0], d, "superbias", "--superbias", str(ref)),
               ["sb_cube.fits", "SCI is 3-D", "SUPERBIAS reference's SCI is 2-D"])


def _reference_wrong_detector(k, d):
    ref = edited(k.refs["superbias"], d / "sb_nrcb2.fits", DETECTOR="NRCB2")
    return Bad(_prep(k.darks[0], d, "superbias", "--superbias", str(ref)),
               ["sb_nrcb2.fits", "DETECTOR is NRCB2", "NRCA1"])


def _reference_too_small(k, d):
    ref = reference_part(k.refs["superbias"], d / "sb_small.fits", 32, 32)
    return Bad(_prep(k.darks[0], d, "superbias", "--superbias", str(ref)),
               ["sb_small.fits", "too small", "SUBSTRT/SUBSIZE"])


def _reference_other_window(k, d):
    ref = edited(k.refs["superbias"], d / "sb_moved.fits", SUBSTRT1=101)
    return Bad(_prep(k.darks[0], d, "superbias", "--superbias", str(ref)),
               ["sb_moved.fits", "SUBSTRT1/2 101,1"])


def _reference_miri_readpatt(k, d):
    ref = edited(k.miri_refs["dark"], d / "dark_slow.fits", READPATT="SLOW")
    return Bad(_prep(k.miri, d, "dark_current", "--dark", str(ref)),
               ["dark_slow.fits", "READPATT is SLOW", "FAST"])


def _reference_dark_too_short(k, d):
    ref = d / "dark_short.fits"
    with fits.open(k.refs["dark"]) as hdul:
        for name in ("SCI", "ERR"):
            if name in hdul:
                hdul[name].data = np.ascontiguousarray(hdul[name].data[:2])
        hdul[0].header["NGROUPS"] = 2
        hdul.writeto(ref)
    return Bad(_prep(k.darks[0], d, "dark_current", "--dark", str(ref)),
               ["dark_short.fits", "the dark has 2 groups", f"needs {NGROUPS}"])


def _reference_needed(k, d):
    return Bad(_prep(k.darks[0], d, "superbias"),
               [k.darks[0].name, "'superbias' needs a SUPERBIAS reference", "--superbias"])


def _unknown_step(k, d):
    return Bad(_prep(k.darks[0], d, "saturation,superbais"), ["superbais"])


def _output_is_directory(k, d):
    (d / "out").mkdir()
    return Bad(["readnoise", *_s(*k.darks), "-o", str(d / "out")],
               ["out", "output is a directory"])


def _output_not_fits(k, d):
    return Bad(["readnoise", *_s(*k.darks), "-o", str(d / "out" / "ref.txt")],
               ["ref.txt", "must end in .fits"])


def _output_under_file(k, d):
    (d / "blocker").write_text("a file where a directory is needed\n")
    return Bad(["readnoise", *_s(*k.darks), "-o", str(d / "blocker" / "ref.fits")],
               ["blocker", "not writable", "is not a directory"])


def _bad_metadata(k, d):
    return Bad(["readnoise", *_s(*k.darks), "-o", _out(d), "--useafter", "yesterday"],
               ["useafter", "yesterday"])


def _config_missing(k, d):
    return Bad(_mkrefs(k, d, d / "none.cfg"), ["none.cfg", "cannot read the config file"])


def _config_bad_yaml(k, d):
    cfg = config(d, "readnoise: [clipping_sigma, 3\n  method: : stack\n")
    return Bad(_mkrefs(k, d, cfg), ["mkrefs.cfg", "not valid YAML at line 2"])


def _config_unknown_key(k, d):
    cfg = config(d, "readnoise:\n  clipping_sigmaa: 3.0\n")
    return Bad(_mkrefs(k, d, cfg),
               ["mkrefs.cfg", "'clipping_sigmaa'", "did you mean 'clipping_sigma'"])


def _config_wrong_type(k, d):
    cfg = config(d, "readnoise:\n  clipping_sigma: three\n")
    return Bad(_mkrefs(k, d, cfg), ["mkrefs.cfg", "clipping_sigma='three'", "expected float"])


def _config_section_typo(k, d):
    cfg = config(d, "readnoize:\n  clipping_sigma: 3.0\n")
    return Bad(_mkrefs(k, d, cfg), ["mkrefs.cfg", "'readnoize'", "did you mean 'readnoise'"])


def _mkrefs_unknown_reflabel(k, d):
    return Bad(["mkrefs", "readnoise,readnoize", *_s(*k.darks), "--outrootdir", str(d / "out")],
               ["readnoise,readnoize", "neither a reflabel"])


def _mkrefs_reference_reftype(k, d):
    refs = {**{n: str(k.refs[n]) for n in ("saturation", "linearity", "readnoise", "gain")},
            "superbias": str(k.refs["readnoise"])}
    cfg = config(d, "reffile4ssb:\n" + "".join(f"  {n}: {p}\n" for n, p in refs.items()))
    return Bad(_mkrefs(k, d, cfg, "dark"), ["readnoise.fits", "REFTYPE is READNOISE"])


CASES = [
    # the files themselves
    Case("no_inputs", "no input file at all", _no_inputs),
    Case("missing_file", "an input that does not exist", _missing_file),
    Case("directory_input", "a directory given as an input", _directory_input),
    Case("empty_file", "an empty (0-byte) input", _empty_file),
    Case("not_fits", "a text file named .fits", _not_fits),
    Case("unreadable", "an input without read permission (simulated as root)", _unreadable),
    Case("truncated", "an input cut short (its headers describe more bytes)", _truncated),
    Case("no_sci", "no SCI extension", _no_sci),
    # headers against the data
    Case("sci_3d", "a 3-D SCI in an uncal file", _sci_3d),
    Case("sci_float64", "a float64 SCI in a raw (uncal) file", _sci_float64),
    Case("one_group", "one group: nothing to difference", _one_group),
    Case("ngroups_mismatch", "NGROUPS other than SCI's groups", _ngroups_mismatch),
    Case("ngroups_missing", "no NGROUPS keyword", _ngroups_missing),
    Case("nints_mismatch", "NINTS other than SCI's integrations", _nints_mismatch),
    Case("nints_missing", "no NINTS keyword", _nints_missing),
    Case("subsize_mismatch", "SUBSIZE1/2 other than SCI's frame", _subsize_mismatch),
    Case("groupdq_shape", "GROUPDQ of another shape than SCI", _groupdq_shape),
    Case("pixeldq_shape", "PIXELDQ of another shape than a SCI frame", _pixeldq_shape),
    Case("all_nan", "a calibrated ramp that is all NaN (a sample read)", _all_nan),
    Case("constant_data", "constant data (first group, a sample read)", _constant_data),
    Case("tgroup_missing", "no TGROUP for a type that needs group times", _tgroup_missing),
    Case("tgroup_nonpositive", "TGROUP 0 for a type that needs group times",
         _tgroup_nonpositive),
    # the inputs together
    Case("duplicate_path", "one file given twice", _duplicate_path),
    Case("duplicate_content", "a copy of an input under another name", _duplicate_content),
    Case("mixed_detectors", "inputs of two detectors", _mixed("DETECTOR", "NRCA2",
                                                              "DETECTOR is 'NRCA2'")),
    Case("mixed_subarrays", "inputs of two subarrays", _mixed("SUBARRAY", "SUB64FP",
                                                              "SUBARRAY is 'SUB64FP'")),
    Case("mixed_readpatt", "inputs of two readout patterns", _mixed("READPATT", "BRIGHT2",
                                                                    "READPATT is 'BRIGHT2'")),
    Case("miri_nir_mix", "MIRI and near-IR inputs in one call", _miri_nir_mix),
    Case("mixed_frame_size", "inputs of two frame sizes", _mixed_frame_size),
    Case("mixed_ngroups", "inputs of two group counts", _mixed_ngroups),
    Case("superbias_one_integration", "a SUPERBIAS from one integration",
         _superbias_one_integration),
    Case("readnoise_too_few_differences", "a READNOISE from one group difference per pixel",
         _readnoise_too_few_differences),
    # reference files
    Case("reference_missing", "a reference file that does not exist", _reference_missing),
    Case("reference_not_fits", "a reference file that is not FITS", _reference_not_fits),
    Case("reference_wrong_reftype", "a READNOISE given as --superbias",
         _reference_wrong_reftype),
    Case("reference_wrong_shape", "a SUPERBIAS whose SCI is 3-D", _reference_wrong_shape),
    Case("reference_wrong_detector", "a reference of another DETECTOR",
         _reference_wrong_detector),
    Case("reference_too_small", "a reference too small for the science window",
         _reference_too_small),
    Case("reference_other_window", "a subarray reference of the right size elsewhere",
         _reference_other_window),
    Case("reference_miri_readpatt", "a MIRI DARK of another READPATT",
         _reference_miri_readpatt),
    Case("reference_dark_too_short", "a DARK with fewer groups than the science",
         _reference_dark_too_short),
    Case("reference_needed", "a step without its reference", _reference_needed),
    Case("unknown_step", "a misspelt calibration step", _unknown_step),
    # outputs and options
    Case("output_is_directory", "-o an existing directory", _output_is_directory),
    Case("output_not_fits", "-o not ending in .fits", _output_not_fits),
    Case("output_under_file", "-o under an existing file", _output_under_file),
    Case("bad_metadata", "a CRDS keyword value that is not valid", _bad_metadata),
    # mkrefs configuration
    Case("config_missing", "a config file that does not exist", _config_missing),
    Case("config_bad_yaml", "a config file that is not YAML", _config_bad_yaml),
    Case("config_unknown_key", "a misspelt key in a known section", _config_unknown_key),
    Case("config_wrong_type", "a value of the wrong type", _config_wrong_type),
    Case("config_section_typo", "a misspelt section", _config_section_typo),
    Case("mkrefs_unknown_reflabel", "an unknown reflabel", _mkrefs_unknown_reflabel),
    Case("mkrefs_reference_reftype", "reffile4ssb naming a file of the wrong REFTYPE",
         _mkrefs_reference_reftype),
]


# --------------------------------------------------------------------------- running


def _files(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


def run_case(case: Case, kit: Kit, d: Path) -> tuple[int, str, str, Bad]:
    """Build the case in ``d``, run the CLI in-process; (status, stdout, stderr, bad)."""
    bad = case.build(kit, d)
    before = _files(d)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        if bad.context is not None:
            stack.enter_context(bad.context())
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        try:
            status = main(bad.argv)
        except SystemExit as exc:  # argparse's own errors
            status = exc.code
    created = _files(d) - before
    if created:
        err.write(f"[created: {sorted(created)}]\n")
    return status, out.getvalue(), err.getvalue(), bad


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    return make_kit(tmp_path_factory.mktemp("kit"))


def test_at_least_25_distinct_cases():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 25


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input__one_line_exit_2_no_output(case, kit, tmp_path):
    status, out, err, bad = run_case(case, kit, tmp_path)
    assert status == 2, err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.endswith("\n"), err  # one line: nothing created
    assert out == ""
    assert err.startswith(f"daskref {bad.argv[0]}: error: "), err
    for word in bad.words:
        assert word in err, (word, err)


def _readme() -> str:
    return (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_table_lists_every_case():
    text = _readme()
    section = text.split("\n## Bad input", 1)[1].split("\n## ", 1)[0]
    ids = re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.M)
    assert ids == [c.id for c in CASES]
    assert f"[{len(CASES)} cases](#bad-input)" in text


def readme_table(kit: Kit, work: Path) -> list[str]:
    """The README rows: case id, what is wrong, what daskref says (paths shortened)."""
    lines = ["| case | what is wrong | what daskref says |", "|---|---|---|"]
    for case in CASES:
        d = work / case.id
        d.mkdir()
        _, _, err, _ = run_case(case, kit, d)
        message = err.strip().split(": error: ", 1)[-1]
        for prefix in (str(d) + "/", str(kit.root) + "/"):
            message = message.replace(prefix, "")
        message = message.replace("|", "\\|")
        lines.append(f"| `{case.id}` | {case.what} | {message} |")
    return lines


if __name__ == "__main__":  # print the README table from the real messages
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "kit").mkdir()
        (root / "cases").mkdir()
        for line in readme_table(make_kit(root / "kit"), root / "cases"):
            print(line)
    sys.exit(0)
