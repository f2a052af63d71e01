import os

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels as dm

import daskref
from daskref import dq
from daskref.io.crds import MetadataError, validate_pedigree, validate_useafter
from daskref.testing import assert_lazy


@pytest.fixture(scope="module")
def written(nircam_darks, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    stack = daskref.open_stack(nircam_darks.paths)
    rn = daskref.readnoise(stack, clipping_sigma=2.5)
    sb = daskref.superbias(stack, save_filled=True)
    paths = daskref.write([rn, sb], [out / "rn.fits", out / "sb.fits"], author="Test Author",
                          pedigree="INFLIGHT 2026-01-01 2026-01-02", useafter="2026-01-01",
                          history="made in a test", description="Test readnoise")
    return paths


def test_readnoise_file__validates_with_stdatamodels(written, nircam_darks):
    with dm.ReadnoiseModel(written[0]) as m:
        m.validate()
        assert m.data.shape == (64, 64) and m.data.dtype == np.dtype(">f4")
        assert m.meta.reftype == "READNOISE"
        assert m.meta.instrument.name == "NIRCAM" and m.meta.instrument.detector == "NRCA1"
        assert m.meta.subarray.name == "SUB64P"
        assert (m.meta.subarray.xstart, m.meta.subarray.ystart) == (1, 1)
        assert (m.meta.subarray.xsize, m.meta.subarray.ysize) == (64, 64)
        assert (m.meta.subarray.fastaxis, m.meta.subarray.slowaxis) == (-1, 2)
        assert m.meta.exposure.readpatt == "ANY"
        assert m.meta.author == "Test Author"
        assert m.meta.pedigree == "INFLIGHT 2026-01-01 2026-01-02"
        assert m.meta.useafter == "2026-01-01T00:00:00"
        assert m.meta.description == "Test readnoise"
        assert m.meta.telescope == "JWST"
    header = fits.getheader(written[0])
    history = "\n".join(header["HISTORY"])
    assert "clipping_sigma=2.5" in history and f"daskref {daskref.__version__}" in history
    for p in nircam_darks.paths:
        assert os.path.basename(p) in history
    assert "made in a test" in history
    assert fits.getheader(written[0], "SCI")["BUNIT"] == "DN"


def test_superbias_file__validates_with_stdatamodels(written):
    with dm.SuperBiasModel(written[1]) as m:
        m.validate()
        assert m.data.shape == m.err.shape == m.dq.shape == (64, 64)
        assert m.dq.dtype == np.uint32
        names = [r["NAME"] if isinstance(r["NAME"], str) else r["NAME"].decode()
                 for r in m.dq_def]
        assert names == ["GOOD", "DO_NOT_USE", "UNRELIABLE_BIAS"]
        assert list(m.dq_def["VALUE"]) == [0, dq.DO_NOT_USE, dq.UNRELIABLE_BIAS]
        assert m.meta.reftype == "SUPERBIAS"
    filled = written[1].with_name("sb_filled.fits")
    assert fits.getdata(filled).shape == (64, 64)


def test_miri_file__validates(miri_darks, tmp_path):
    rn = daskref.readnoise(miri_darks.paths)
    (path,) = daskref.write(rn, tmp_path / "miri_rn.fits")
    with dm.ReadnoiseModel(path) as m:
        m.validate()
        assert m.meta.instrument.name == "MIRI" and m.meta.instrument.detector == "MIRIMAGE"
        assert m.data.shape == (64, 72)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"description": "x" * 66}, "66 characters"),
        ({"useafter": "2024-13-01T00:00:00"}, "useafter"),
        ({"pedigree": "BOGUS"}, "pedigree"),
        ({"pedigree": "INFLIGHT 2024-01-01"}, "INFLIGHT YYYY-MM-DD YYYY-MM-DD"),
    ],
)
def test_bad_metadata__fails_before_computing(nircam_darks, tmp_path, kwargs, match):
    rn = daskref.readnoise(nircam_darks.paths)
    with assert_lazy(), pytest.raises(MetadataError, match=match):
        daskref.write(rn, tmp_path / "rn.fits", **kwargs)
    assert not list(tmp_path.iterdir())


def test_validators():
    assert validate_useafter("2022-01-01 12:00:00") == "2022-01-01T12:00:00"
    assert validate_pedigree("inflight  2022-01-01 2022-02-01") == "INFLIGHT 2022-01-01 2022-02-01"
    assert validate_pedigree("GROUND") == "GROUND"


def test_interrupted_write__leaves_no_file(nircam_darks, tmp_path, monkeypatch):
    rn = daskref.readnoise(nircam_darks.paths)
    real = fits.HDUList.writeto

    def failing(self, name, *args, **kwargs):
        real(self, name, *args, **kwargs)  # the bytes hit the disk ...
        raise OSError("disk full")  # ... then the run dies

    monkeypatch.setattr(fits.HDUList, "writeto", failing)
    with pytest.raises(OSError, match="disk full"):
        daskref.write(rn, tmp_path / "rn.fits")
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary


def test_invalid_subarray_name__refused_by_schema(tmp_path):
    """Where stdatamodels is installed, a file its schema rejects is never delivered."""
    camp = daskref.simulate.simulate_campaign(tmp_path / "in", 2, ngroups=4, subarray="SUB96",
                                              substrt=(1, 1), subsize=(16, 16))
    rn = daskref.readnoise(camp.paths)
    with pytest.raises(MetadataError, match="not a valid ReadnoiseModel.*SUB96"):
        daskref.write(rn, tmp_path / "rn.fits")
    assert not (tmp_path / "rn.fits").exists()
    (ok,) = daskref.write(rn, tmp_path / "rn.fits", subarray="GENERIC")
    assert fits.getval(ok, "SUBARRAY") == "GENERIC"
