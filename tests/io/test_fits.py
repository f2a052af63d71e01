import numpy as np
import pytest
from astropy.io import fits

import daskref
from daskref.io import fits as dfits
from daskref.io.fits import InputError, inventory, open_exposure, open_stack, scan
from daskref.testing import assert_lazy, write_ramp_file


def test_open_stack__equals_astropy(nircam_darks):
    ds = open_stack(nircam_darks.paths, chunk_rows=17)
    assert ds.ramp.dims == ("integration", "group", "y", "x")
    assert ds.ramp.dtype == np.uint16
    assert ds.ramp.chunks[0] == (12,) and ds.ramp.chunks[1] == (10,)
    assert ds.ramp.chunks[2] == (17, 17, 17, 13)
    got = ds.ramp.values
    want = np.concatenate([fits.getdata(p, "SCI") for p in nircam_darks.paths])
    np.testing.assert_array_equal(got, want)
    assert list(ds.file.values[:3]) == ["dark_000_uncal.fits"] * 2 + ["dark_001_uncal.fits"]
    assert list(ds.int_in_file.values[:4]) == [0, 1, 0, 1]
    assert ds.attrs["DETECTOR"] == "NRCA1" and ds.attrs["NGROUPS"] == 10
    assert ds.attrs["inputs"] == [str(p) for p in nircam_darks.paths]


def test_open_stack__is_lazy(nircam_darks):
    with assert_lazy():
        ds = open_stack(nircam_darks.paths)
        _ = (ds.ramp.astype("f4").diff("group")).std("integration")
    with pytest.raises(AssertionError):
        with assert_lazy():
            ds.ramp.values  # noqa: B018


def test_chunk_mb__bounds_slab_size(nircam_darks):
    ds = open_stack(nircam_darks.paths, chunk_mb=0.1)
    per_row = 12 * 10 * 64 * 2  # integrations * groups * x * bytes
    assert max(ds.ramp.chunks[2]) == int(0.1 * 2**20 // per_row)


def test_calibrated_ramp__groupdq_pixeldq(tmp_path):
    rng = np.random.default_rng(0)
    sci = rng.normal(0, 5, (2, 4, 12, 9)).astype(np.float32)
    gdq = rng.integers(0, 8, sci.shape).astype(np.uint8)
    pdq = rng.integers(0, 2**32, sci.shape[2:], dtype=np.uint64).astype(np.uint32)
    path = write_ramp_file(tmp_path / "x_ramp.fits", sci, gdq, pdq)
    ds = open_exposure(path, chunk_rows=5)
    assert ds.ramp.dtype == np.float32 and ds.groupdq.dtype == np.uint8
    assert ds.pixeldq.dtype == np.uint32 and ds.pixeldq.dims == ("y", "x")
    np.testing.assert_array_equal(ds.ramp.values, sci)
    np.testing.assert_array_equal(ds.groupdq.values, gdq)
    np.testing.assert_array_equal(ds.pixeldq.values, pdq)
    assert ds.attrs["SUBSTRT1"] == 101 and ds.attrs["SUBSIZE1"] == 9


def test_stack__pixeldq_is_or_of_files(tmp_path):
    sci = np.random.default_rng(1).normal(0, 5, (1, 2, 4, 4)).astype(np.float32)
    a = write_ramp_file(tmp_path / "a.fits", sci, pixeldq=np.full((4, 4), 1, np.uint32))
    b = write_ramp_file(tmp_path / "b.fits", sci, pixeldq=np.full((4, 4), 2**31, np.uint32))
    ds = open_stack([a, b])
    assert (ds.pixeldq.values == 1 + 2**31).all()


def test_each_input_byte_read_once(nircam_darks, monkeypatch):
    """READNOISE and SUPERBIAS written together read every byte of every file once."""
    calls = []
    real = dfits.read_rows

    def counting(layout, path, y0, y1, out=None):
        calls.append((path, y0, y1))
        return real(layout, path, y0, y1, out=out)

    monkeypatch.setattr(dfits, "read_rows", counting)
    stack = open_stack(nircam_darks.paths, chunk_rows=20)
    rn, sb = daskref.readnoise(stack), daskref.superbias(stack)
    daskref.compute([rn, sb])
    assert len(calls) == len(set(calls)) == 6 * 4  # files x slabs, no repeats
    for p in nircam_darks.paths:
        rows = sorted((y0, y1) for path, y0, y1 in calls if path == str(p))
        assert rows == [(0, 20), (20, 40), (40, 60), (60, 64)]


def test_inventory__columns_and_times(nircam_darks, tmp_path):
    table = inventory(nircam_darks.paths)
    assert len(table) == 6
    assert list(table["DETECTOR"]) == ["NRCA1"] * 6
    assert list(table["NGROUPS"]) == [10] * 6
    # sequential exposures one hour apart
    np.testing.assert_allclose(np.diff(table["MJD_START"]), 1 / 24, rtol=1e-9)
    assert (table["MJD_END"] > table["MJD_START"]).all()
    # DATE-OBS/TIME-OBS when there is no EXPSTART
    path = write_ramp_file(tmp_path / "r.fits", np.zeros((1, 2, 3, 3), np.float32))
    assert inventory([path])["MJD_START"][0] == pytest.approx(61074.17020833, abs=1e-7)


# ---------------------------------------------------------------- bad input


def _uncal_like(tmp_path, name, shape=(1, 3, 4, 4), **header):
    hdr = {"INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "SUBARRAY": "S4", "READPATT": "RAPID"}
    hdr.update(header)
    return write_ramp_file(tmp_path / name, np.zeros(shape, np.float32), header=hdr)


def test_errors__name_file_and_problem(tmp_path):
    good = _uncal_like(tmp_path, "good.fits")
    with pytest.raises(InputError, match="no input files"):
        scan([])
    with pytest.raises(InputError, match=r"missing\.fits: no such file"):
        scan([good, tmp_path / "missing.fits"])
    text = tmp_path / "notes.fits"
    text.write_text("hello, not a FITS file\n" * 200)
    with pytest.raises(InputError, match=r"notes\.fits: is not a readable FITS file"):
        scan([text])
    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.fits: is empty"):
        scan([empty])
    for n_cut in (100, 3000):  # inside the data; inside the SCI header
        cut = tmp_path / f"cut{n_cut}.fits"
        cut.write_bytes(good.read_bytes()[:-n_cut])
        with pytest.raises(InputError, match=rf"cut{n_cut}\.fits: is truncated"):
            scan([cut])
    nosci = tmp_path / "nosci.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((2, 2)), name="DATA")]).writeto(nosci)
    with pytest.raises(InputError, match=r"nosci\.fits: has no SCI extension"):
        scan([nosci])
    rate = tmp_path / "rate.fits"
    sci2d = fits.ImageHDU(np.zeros((4, 4), "f4"), name="SCI")
    fits.HDUList([fits.PrimaryHDU(), sci2d]).writeto(rate)
    with pytest.raises(InputError, match=r"rate\.fits: SCI is 2-D"):
        scan([rate])
    one = _uncal_like(tmp_path, "one.fits", shape=(2, 1, 4, 4))
    with pytest.raises(InputError, match=r"one\.fits: has 1 group; at least 2"):
        scan([one])
    with pytest.raises(InputError, match="given twice"):
        scan([good, good])


@pytest.mark.parametrize(
    ("header", "shape", "message"),
    [
        ({"DETECTOR": "NRCB4"}, (1, 3, 4, 4), "DETECTOR is 'NRCB4' but good.fits has 'NRCA1'"),
        ({"SUBARRAY": "FULL"}, (1, 3, 4, 4), "SUBARRAY is 'FULL'"),
        ({"READPATT": "BRIGHT2"}, (1, 3, 4, 4), "READPATT is 'BRIGHT2'"),
        ({"SUBSTRT1": 5}, (1, 3, 4, 4), "SUBSTRT1 is 5"),
        ({}, (1, 3, 4, 5), r"frame size \(4, 5\) differs"),
        ({}, (1, 4, 4, 4), "has 4 groups but good.fits has 3"),
    ],
)
def test_errors__incompatible_stack(tmp_path, header, shape, message):
    good = _uncal_like(tmp_path, "good.fits")
    other = _uncal_like(tmp_path, "other.fits", shape=shape, **header)
    with pytest.raises(InputError, match=message) as info:
        open_stack([good, other])
    assert str(info.value).startswith(str(other))
