"""CRDS certification checks (the ``crds`` package's TPN constraints) of every file type.

``crds certify`` needs a CRDS context (a server or a cache), which this machine cannot
reach; the checks themselves are the package's own validators, run here on the
header and arrays loaded the way ``crds.certify`` loads them (without the context's
reference-to-dataset keyword mapping). Skipped where ``crds`` is not installed.
"""

from __future__ import annotations

import pytest

import daskref
from daskref.simulate import simulate_campaign, simulate_flats, write_references

crds = pytest.importorskip("crds")
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              # the flats' default calibration (rate-) names refpix, a no-op on MIRI subarrays
              pytest.mark.filterwarnings(
                  "ignore::daskref.algorithms.steps.refpix.RefpixSkippedWarning")]


def certify_checks(path) -> list[str]:
    """Every TPN validator of the file's type; the failures, as text."""
    from crds import data_file
    from crds.certify import validators
    from crds.io import abstract

    checks = validators.get_validators("jwst", str(path))
    header = dict(data_file.get_header(str(path), (), None, "jwst"))
    for checker in checks:
        if checker.info.keytype in ("A", "D") and checker.complex_name not in header:
            header[checker.complex_name] = data_file.get_array_properties(
                str(path), checker.name, checker.info.keytype)
    header = data_file.convert_to_eval_header(header)
    header = abstract.ensure_keys_defined(header, needed_keys=[c.complex_name for c in checks])
    failures = []
    for checker in checks:
        try:
            checker.check(str(path), header)
        except Exception as exc:  # each validator raises its own error type
            failures.append(f"{checker.info.name}: {exc}")
    assert len(checks) > 20  # the type's TPNs were found
    return failures


@pytest.fixture(scope="module", params=["NIRCAM", "MIRI"])
def products(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    if request.param == "MIRI":
        camp = simulate_campaign(d / "in", 3, nints=2, ngroups=8, seed=3, instrument="MIRI",
                                 subarray="SUB64", substrt=(1, 779), subsize=(72, 64),
                                 tframe=10.0)
    else:
        camp = simulate_campaign(d / "in", 4, nints=2, ngroups=10, seed=3, subarray="SUB64P",
                                 substrt=(1, 1), subsize=(64, 64), tframe=10.7)
    refs = write_references(camp.truth, d / "refs", camp.exposures[0].header["NGROUPS"],
                            kinds=["saturation", "superbias", "linearity", "readnoise", "gain"])
    if request.param == "MIRI":
        refs.pop("superbias")
    # flats of the same detector (the flats' calibration also subtracts a DARK)
    flats = simulate_flats(d / "flats", camp.truth, 2, nints=1, ngroups=8).paths
    flat_refs = dict(refs, dark=write_references(camp.truth, d / "refs", 8,
                                                 kinds=["dark"])["dark"])
    stack = daskref.open_stack(camp.paths)
    made = [daskref.readnoise(stack), daskref.superbias(stack),
            daskref.dark(camp.paths, **refs), daskref.mask_from_darks(camp.paths, **refs),
            daskref.mask_from_flats(flats, **flat_refs),
            daskref.bad_pixel_mask(darks=camp.paths, flats=flats, **flat_refs)]
    names = [d / f"{n}.fits" for n in PRODUCTS]
    return daskref.write(made, names, pedigree="SIMULATION")


PRODUCTS = ("readnoise", "superbias", "dark", "mask", "mask_flats", "mask_combined")


@pytest.mark.parametrize("index", range(len(PRODUCTS)), ids=PRODUCTS)
def test_files_pass_the_crds_certify_checks(products, index):
    assert certify_checks(products[index]) == []
