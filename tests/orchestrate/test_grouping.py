"""Image-set formation (mkrefs ``imtypes``) against hand-worked expectations.

MJD offsets are binary fractions (multiples of 1/8 day) so every difference is exact.
"""

from __future__ import annotations

import random

import pytest

from daskref.orchestrate.grouping import (
    KNOWN_IMTYPES,
    ImageSet,
    InputFile,
    image_sets,
    match_pairs,
    merge_sets,
    normalize_imtypes,
    pair_consecutive,
)

T0 = 60000.0
RO = ("SUB160", "RAPID", 20, 1, 0)
RO_B = ("SUB160", "RAPID", 5, 1, 0)
RO_FULL = ("FULL", "RAPID", 10, 1, 0)
PREFIX = "NRCA1 (SUB160, RAPID, 20, 1, 0): imtypes "


def dark(name, dt, det="NRCA1", ro=RO, index=0):
    return InputFile(f"{name}.fits", "dark", T0 + dt, det, ro, index)


def flat(name, dt, det="NRCA1", ro=RO, index=0):
    return InputFile(f"{name}.fits", "flat", T0 + dt, det, ro, index)


def names(s: ImageSet):
    return [f.path.removesuffix(".fits") for f in (m[1] for m in s.members)]


def summary(sets):
    return [(s.detector, s.readout, s.labels, names(s)) for s in sets]


# ----------------------------------------------------------------------- InputFile / ImageSet


def test_inputfile_normalises_kind_detector_readout():
    f = InputFile("a.fits", " Dark ", 60000, "nrca1 ", ["SUB160", "RAPID", 20, 1, 0], 3)
    assert f.kind == "dark"
    assert f.detector == "NRCA1"
    assert f.readout == RO
    assert isinstance(f.mjd, float) and f.index == 3


@pytest.mark.parametrize("kind", ["bias", "", "darks"])
def test_inputfile_rejects_unknown_kind(kind):
    with pytest.raises(ValueError, match="kind"):
        InputFile("a.fits", kind, T0, "NRCA1", RO)


def test_inputfile_rejects_nan_mjd():
    with pytest.raises(ValueError, match="mjd"):
        InputFile("a.fits", "dark", float("nan"), "NRCA1", RO)


def test_imageset_properties():
    d1, f1, f2 = dark("d1", 0), flat("f1", 1), flat("f2", 2)
    s = ImageSet("NRCA1", RO, (("F1", f1), ("F2", f2), ("D1", d1)))
    assert s.darks == (d1,)
    assert s.flats == (f1, f2)
    assert s.paths == ("f1.fits", "f2.fits", "d1.fits")
    assert s.labels == ("F1", "F2", "D1")
    assert len(s) == 3


# ----------------------------------------------------------------------- greedy pairing


@pytest.mark.parametrize(("mjds", "limit", "pairs"), [
    ([], None, []),
    ([0.0], None, []),
    ([0.0, 1.0], None, [(0, 1)]),
    ([0.0, 1.0, 2.0, 3.0, 4.0], None, [(0, 1), (2, 3)]),          # odd leftover dropped
    ([0.0, 100.0, 200.0, 300.0], None, [(0, 1), (2, 3)]),         # no limit: any gap pairs
    ([0.0, 5.0, 5.5, 6.0, 20.0], 1.0, [(1, 2)]),                 # gaps > limit skip frames
    ([0.0, 0.5], 0.5, [(0, 1)]),                                 # gap == limit pairs
    ([0.0, 0.625], 0.5, []),                                     # gap > limit: nothing
    ([1.0, 1.0, 2.0, 2.0], 0.0, [(0, 1), (2, 3)]),               # equal MJDs, zero limit
    ([1.0, 1.0, 1.0], 0.0, [(0, 1)]),
    ([0.0, 0.875, 1.75], 1.0, [(0, 1)]),                         # greedy, not maximal
    ([0.0, 2.0, 2.5, 2.75], 1.0, [(1, 2)]),                      # skip, pair, leftover
])
def test_pair_consecutive(mjds, limit, pairs):
    assert pair_consecutive(mjds, limit) == pairs


@pytest.mark.parametrize("limit", [-0.125, float("nan")])
def test_pair_consecutive_rejects_bad_limit(limit):
    with pytest.raises(ValueError):
        pair_consecutive([0.0, 1.0], limit)


def test_match_pairs_balances_reuse():
    dd = [(0.0, 0.125), (0.5, 0.625)]
    ff = [(1.0, 1.125), (2.0, 2.125), (3.0, 3.125)]
    assert match_pairs(dd, ff) == [0, 1, 0]
    assert match_pairs(dd, []) == []
    assert match_pairs([], ff) == [None, None, None]


def test_match_pairs_span_is_max_of_four_distances():
    dd = [(0.0, 0.5)]
    # spans to FF (1.0, 1.5): |0.5-1|, |0-1.5|, |0.5-1.5|, |0-1| -> max 1.5
    assert match_pairs(dd, [(1.0, 1.5)], 1.5) == [0]
    assert match_pairs(dd, [(1.0, 1.5)], 1.375) == [None]
    # FF before DD: same distances
    assert match_pairs([(1.0, 1.5)], [(0.0, 0.5)], 1.5) == [0]
    assert match_pairs([(1.0, 1.5)], [(0.0, 0.5)], 1.375) == [None]


# ----------------------------------------------------------------------- single-kind rules


def test_D_every_dark_alone_in_time_order():
    files = [dark("d3", 2.0), dark("d1", 0.0), flat("f1", 0.5), dark("d2", 1.0)]
    sets, notes = image_sets(files, "D")
    assert summary(sets) == [("NRCA1", RO, ("D1",), ["d1"]),
                             ("NRCA1", RO, ("D1",), ["d2"]),
                             ("NRCA1", RO, ("D1",), ["d3"])]
    assert notes == [PREFIX + "D: 3 darks give 3 sets"]


def test_F_every_flat_alone():
    files = [flat("f2", 1.0), dark("d1", 0.0), flat("f1", 0.0)]
    sets, notes = image_sets(files, "F")
    assert summary(sets) == [("NRCA1", RO, ("F1",), ["f1"]),
                             ("NRCA1", RO, ("F1",), ["f2"])]
    assert notes == [PREFIX + "F: 2 flats give 2 sets"]


def test_DD_pairs_with_limit_and_leftover():
    # 0 -> 5 is too far (skip d0); (d5, d5.5); 6 -> 20 too far; d20 left alone
    files = [dark("d0", 0.0), dark("d5", 5.0), dark("d5.5", 5.5), dark("d6", 6.0),
             dark("d20", 20.0), flat("f", 5.25)]
    sets, notes = image_sets(files, "DD", dd_max_delta_mjd=1.0)
    assert summary(sets) == [("NRCA1", RO, ("D1", "D2"), ["d5", "d5.5"])]
    assert notes == [PREFIX + "DD: 5 darks give 1 pair, 3 darks left over "
                     "(max Delta MJD 1 d)"]


def test_DD_no_limit_odd_leftover_note():
    files = [dark(f"d{i}", float(i * 10)) for i in range(3)]
    sets, notes = image_sets(files, "dd")
    assert summary(sets) == [("NRCA1", RO, ("D1", "D2"), ["d0", "d1"])]
    assert notes == [PREFIX + "DD: 3 darks give 1 pair, 1 dark left over"]


def test_DD_equal_mjds_ordered_by_index_then_path():
    files = [dark("b", 1.0, index=1), dark("a", 1.0, index=1), dark("c", 1.0, index=0),
             dark("d", 1.0, index=2)]
    sets, _ = image_sets(files, "DD", dd_max_delta_mjd=0.0)
    assert [names(s) for s in sets] == [["c", "a"], ["b", "d"]]


def test_FF_uses_ff_limit_only():
    files = [flat("f0", 0.0), flat("f1", 0.75), flat("f2", 3.0), flat("f3", 3.25)]
    sets, notes = image_sets(files, "FF", dd_max_delta_mjd=0.0, ff_max_delta_mjd=0.5)
    assert [names(s) for s in sets] == [["f2", "f3"]]
    assert [s.labels for s in sets] == [("F1", "F2")]
    assert notes == [PREFIX + "FF: 4 flats give 1 pair, 2 flats left over "
                     "(max Delta MJD 0.5 d)"]


def test_Dplus_and_Fplus_all_in_one_set():
    files = [dark("d2", 1.0), flat("f1", 0.5), dark("d1", 0.0), flat("f2", 0.75)]
    sets, notes = image_sets(files, "D+")
    assert summary(sets) == [("NRCA1", RO, ("D1", "D2"), ["d1", "d2"])]
    assert notes == [PREFIX + "D+: 2 darks in 1 set"]
    sets, notes = image_sets(files, " f+ ")
    assert summary(sets) == [("NRCA1", RO, ("F1", "F2"), ["f1", "f2"])]
    assert notes == [PREFIX + "F+: 2 flats in 1 set"]


# ----------------------------------------------------------------------- darks + flats rules


MIXED = [flat("f2", 3.0), dark("d1", 0.0), flat("f1", 1.0), dark("d2", 2.0), dark("d3", 4.0)]


@pytest.mark.parametrize(("imtypes", "labels", "order"), [
    ("D+F+", ("D1", "D2", "D3", "F1", "F2"), ["d1", "d2", "d3", "f1", "f2"]),
    ("DF+", ("D1", "D2", "D3", "F1", "F2"), ["d1", "d2", "d3", "f1", "f2"]),
    ("F+D+", ("F1", "F2", "D1", "D2", "D3"), ["f1", "f2", "d1", "d2", "d3"]),
    ("FD+", ("F1", "F2", "D1", "D2", "D3"), ["f1", "f2", "d1", "d2", "d3"]),
])
def test_all_darks_and_flats_in_one_set(imtypes, labels, order):
    sets, notes = image_sets(MIXED, imtypes)
    assert summary(sets) == [("NRCA1", RO, labels, order)]
    assert notes == [PREFIX + f"{imtypes}: 3 darks and 2 flats in 1 set"]


def test_DDFF_balances_dd_reuse_earliest_first():
    # DD pairs: (d1, d2) at 0, (d3, d4) at 0.5; FF pairs at 1, 2, 3.
    darks = [dark("d1", 0.0), dark("d2", 0.125), dark("d3", 0.5), dark("d4", 0.625)]
    flats = [flat("f1", 1.0), flat("f2", 1.125), flat("f3", 2.0), flat("f4", 2.125),
             flat("f5", 3.0), flat("f6", 3.125)]
    sets, notes = image_sets(flats + darks, "DDFF")
    assert [names(s) for s in sets] == [["d1", "d2", "f1", "f2"],
                                        ["d3", "d4", "f3", "f4"],
                                        ["d1", "d2", "f5", "f6"]]
    assert all(s.labels == ("D1", "D2", "F1", "F2") for s in sets)
    assert notes == [PREFIX + "DDFF: 4 darks give 2 pairs; 6 flats give 3 pairs; "
                     "3 sets (DD pair usage 2, 1)"]


def test_merge_sets_keeps_pairs_and_uses_each_file_once():
    """GAIN's rule: every DDFF set of a detector and readout in one set, darks first."""
    darks = [dark("d1", 0.0), dark("d2", 0.125), dark("d3", 0.5), dark("d4", 0.625)]
    flats = [flat("f1", 1.0), flat("f2", 1.125), flat("f3", 2.0), flat("f4", 2.125),
             flat("f5", 3.0), flat("f6", 3.125), flat("g1", 1.0, ro=RO_B),
             flat("g2", 1.125, ro=RO_B)]
    sets, _ = image_sets(flats + darks, "DDFF")
    merged, notes = merge_sets(sets)
    # the (d1, d2) pair served two flat pairs: it is there once; the other readout has
    # no dark pair, hence no DDFF set
    assert summary(merged) == [("NRCA1", RO, ("D1", "D2", "D3", "D4", "F1", "F2", "F3", "F4",
                                              "F5", "F6"),
                                ["d1", "d2", "d3", "d4", "f1", "f2", "f3", "f4", "f5", "f6"])]
    assert notes == ["NRCA1 (SUB160, RAPID, 20, 1, 0): 3 sets merged into 1 (3 flat pairs, "
                     "2 dark pairs)"]
    ff, _ = image_sets(flats, "FF")
    merged, notes = merge_sets(ff)
    assert [names(s) for s in merged] == [["g1", "g2"], ["f1", "f2", "f3", "f4", "f5", "f6"]]
    assert merge_sets([]) == ([], [])


def test_FFDD_lists_flats_first():
    darks = [dark("d1", 0.0), dark("d2", 0.125)]
    flats = [flat("f1", 1.0), flat("f2", 1.125)]
    sets, notes = image_sets(darks + flats, "ffdd")
    assert summary(sets) == [("NRCA1", RO, ("F1", "F2", "D1", "D2"), ["f1", "f2", "d1", "d2"])]
    assert notes == [PREFIX + "FFDD: 2 darks give 1 pair; 2 flats give 1 pair; "
                     "1 set (DD pair usage 1)"]


def test_DDFF_limit_excludes_dd_pairs_and_skips_unmatched_ff():
    # DD1 at [0, 0.125], DD2 at [10, 10.125]; FF1 at [0.5, 0.625] (span to DD1 0.625),
    # FF2 at [10.5, 10.625] (span to DD2 0.625), FF3 at [20, 20.125] (nothing within 1 d).
    darks = [dark("d1", 0.0), dark("d2", 0.125), dark("d3", 10.0), dark("d4", 10.125)]
    flats = [flat("f1", 0.5), flat("f2", 0.625), flat("f3", 10.5), flat("f4", 10.625),
             flat("f5", 20.0), flat("f6", 20.125)]
    sets, notes = image_sets(darks + flats, "DDFF", ddff_max_delta_mjd=1.0)
    assert [names(s) for s in sets] == [["d1", "d2", "f1", "f2"], ["d3", "d4", "f3", "f4"]]
    assert notes == [
        PREFIX + "DDFF: 4 darks give 2 pairs; 6 flats give 3 pairs; 2 sets (DD pair usage 1, 1)",
        PREFIX + "DDFF: FF pair 3 (MJD 60020.00000-60020.12500) has no DD pair within 1 d, "
        "skipped",
    ]


def test_DDFF_prefers_least_used_not_closest():
    # Both DD pairs are within the limit of both FF pairs; FF1 takes DD1 (tie -> earliest)
    # although DD2 is closer, FF2 then takes the unused DD2.
    darks = [dark("d1", 0.0), dark("d2", 0.125), dark("d3", 0.5), dark("d4", 0.625)]
    flats = [flat("f1", 0.75), flat("f2", 0.875), flat("f3", 1.0), flat("f4", 1.125)]
    sets, _ = image_sets(darks + flats, "DDFF", ddff_max_delta_mjd=2.0)
    assert [names(s) for s in sets] == [["d1", "d2", "f1", "f2"], ["d3", "d4", "f3", "f4"]]


def test_DDFF_limit_leaves_only_one_valid_pair_for_all():
    # DD1 [0, 0.125] is too far from every FF pair; DD2 [5, 5.125] is used three times.
    darks = [dark("d1", 0.0), dark("d2", 0.125), dark("d3", 5.0), dark("d4", 5.125)]
    flats = [flat(f"f{i}", 5.25 + i * 0.125) for i in range(6)]
    sets, notes = image_sets(darks + flats, "DDFF", ddff_max_delta_mjd=1.0)
    assert [names(s)[:2] for s in sets] == [["d3", "d4"]] * 3
    assert notes[0].endswith("3 sets (DD pair usage 0, 3)")


def test_DDFF_pair_limits_apply():
    # dd limit 0.5 breaks (d1, d2); ff limit 0.5 breaks (f1, f2) but keeps (f3, f4).
    darks = [dark("d1", 0.0), dark("d2", 1.0), dark("d3", 1.25)]
    flats = [flat("f1", 2.0), flat("f2", 3.0), flat("f3", 3.25), flat("f4", 3.5)]
    sets, notes = image_sets(darks + flats, "DDFF", dd_max_delta_mjd=0.5,
                             ff_max_delta_mjd=0.5)
    assert [names(s) for s in sets] == [["d2", "d3", "f2", "f3"]]
    assert notes == [PREFIX + "DDFF: 3 darks give 1 pair, 1 dark left over; "
                     "4 flats give 1 pair, 2 flats left over; 1 set (DD pair usage 1)"]


def test_DDFF_note_matches_the_documented_example():
    files = [dark("d1", 0.0), dark("d2", 0.125), dark("d3", 0.25), flat("f1", 1.0)]
    sets, notes = image_sets(files, "DDFF")
    assert sets == []
    assert notes[0].startswith(
        "NRCA1 (SUB160, RAPID, 20, 1, 0): imtypes DDFF: 3 darks give 1 pair, 1 dark left over")
    assert notes == [PREFIX + "DDFF: 3 darks give 1 pair, 1 dark left over; "
                     "1 flat gives 0 pairs, 1 flat left over; no FF pairs, no set"]


# ----------------------------------------------------------------------- empty sides


ONLY_DARKS = [dark("d1", 0.0), dark("d2", 0.125)]
ONLY_FLATS = [flat("f1", 0.0), flat("f2", 0.125)]


@pytest.mark.parametrize(("imtypes", "n_darks_only", "n_flats_only"), [
    ("D", 2, 0), ("DD", 1, 0), ("D+", 1, 0),
    ("F", 0, 2), ("FF", 0, 1), ("F+", 0, 1),
    ("D+F+", 0, 0), ("F+D+", 0, 0), ("DF+", 0, 0), ("FD+", 0, 0),
    ("DDFF", 0, 0), ("FFDD", 0, 0),
])
def test_empty_sides_never_crash(imtypes, n_darks_only, n_flats_only):
    for files, expected in ((ONLY_DARKS, n_darks_only), (ONLY_FLATS, n_flats_only)):
        sets, notes = image_sets(files, imtypes)
        assert len(sets) == expected
        assert len(notes) == 1 and notes[0].startswith(PREFIX + imtypes + ": ")
        if expected == 0:
            assert notes[0].endswith("no set")
    sets, notes = image_sets([], imtypes)
    assert sets == []
    assert notes == [f"imtypes {imtypes}: no input files, no set"]


def test_empty_side_notes_wording():
    assert image_sets(ONLY_DARKS, "D+F+")[1] == [PREFIX + "D+F+: 2 darks but no flats, no set"]
    assert image_sets(ONLY_FLATS, "DF+")[1] == [PREFIX + "DF+: 2 flats but no darks, no set"]
    assert image_sets(ONLY_FLATS, "D")[1] == [PREFIX + "D: no darks, no set"]
    assert image_sets(ONLY_FLATS, "D+")[1] == [PREFIX + "D+: no darks, no set"]
    assert image_sets(ONLY_DARKS, "FF")[1] == [PREFIX + "FF: no flats, no set"]
    assert image_sets(ONLY_DARKS, "DDFF")[1] == [
        PREFIX + "DDFF: 2 darks give 1 pair; no flats; no FF pairs, no set"]
    assert image_sets(ONLY_FLATS, "FFDD")[1] == [
        PREFIX + "FFDD: no darks; 2 flats give 1 pair; no DD pairs, no set"]
    assert image_sets([dark("d", 0.0), flat("f", 0.0)], "DDFF")[1] == [
        PREFIX + "DDFF: 1 dark gives 0 pairs, 1 dark left over; "
        "1 flat gives 0 pairs, 1 flat left over; no DD and FF pairs, no set"]


# ----------------------------------------------------------------------- groups


def test_groups_never_mix_and_are_sorted():
    files = [
        dark("b1", 0.0, det="NRCB1"), dark("b2", 0.125, det="NRCB1"),
        dark("a_full1", 0.0, ro=RO_FULL), dark("a_full2", 0.125, ro=RO_FULL),
        dark("a20_1", 0.0), dark("a5_1", 0.25, ro=RO_B), dark("a20_2", 0.5),
        dark("a5_2", 0.375, ro=RO_B),
    ]
    sets, notes = image_sets(files, "DD")
    # NRCA1: FULL before SUB160; NGROUPS 5 before 20 (numeric, not text order); then NRCB1
    assert summary(sets) == [
        ("NRCA1", RO_FULL, ("D1", "D2"), ["a_full1", "a_full2"]),
        ("NRCA1", RO_B, ("D1", "D2"), ["a5_1", "a5_2"]),
        ("NRCA1", RO, ("D1", "D2"), ["a20_1", "a20_2"]),
        ("NRCB1", RO, ("D1", "D2"), ["b1", "b2"]),
    ]
    assert [n.split(":")[0] for n in notes] == [
        "NRCA1 (FULL, RAPID, 10, 1, 0)", "NRCA1 (SUB160, RAPID, 5, 1, 0)",
        "NRCA1 (SUB160, RAPID, 20, 1, 0)", "NRCB1 (SUB160, RAPID, 20, 1, 0)"]


def test_single_frames_of_different_groups_do_not_pair():
    files = [dark("a", 0.0), dark("b", 0.125, det="NRCB1"), dark("c", 0.25, ro=RO_B)]
    sets, notes = image_sets(files, "DD")
    assert sets == []
    assert len(notes) == 3 and all(n.endswith("1 dark left over, no set") for n in notes)


def test_darks_and_flats_of_other_readouts_never_join_ddff():
    files = [dark("d1", 0.0), dark("d2", 0.125), flat("f1", 0.25, ro=RO_B),
             flat("f2", 0.375, ro=RO_B)]
    sets, notes = image_sets(files, "DDFF")
    assert sets == []
    assert len(notes) == 2


def test_nints_is_not_part_of_the_readout():
    # Two darks with different NINTS (not in ``readout``) share a group and pair.
    a = InputFile("nints2.fits", "dark", T0, "NRCA1", RO)
    b = InputFile("nints5.fits", "dark", T0 + 0.125, "nrca1", list(RO))
    sets, _ = image_sets([b, a], "DD")
    assert [s.paths for s in sets] == [("nints2.fits", "nints5.fits")]


def test_mixed_str_and_int_readout_elements_sort():
    ro_text = ("SUB160", "RAPID", "20", 1, 0)
    files = [dark("t", 0.0, ro=ro_text), dark("n", 0.0), dark("x", 0.0, ro=("SUB160", None)),
             dark("b", 0.0, ro=("SUB160", "RAPID", 20.0, 1, 0), index=1)]
    sets, _ = image_sets(files, "D+")
    # elements: numbers (numerically) before text, text by (type name, str): None < "RAPID"
    assert [names(s) for s in sets] == [["x"], ["n", "b"], ["t"]]
    # 20 == 20.0: one group, whose readout is that of its first file in time/index order
    assert sets[1].readout == RO and isinstance(sets[1].readout[2], int)
    for perm in (files[::-1], files[1:] + files[:1]):
        assert image_sets(perm, "D+") == (sets, image_sets(files, "D+")[1])


# ----------------------------------------------------------------------- determinism


CAMPAIGN = [
    *(dark(f"a_d{i}", i * 0.25, index=i) for i in range(7)),
    *(flat(f"a_f{i}", 0.125 + i * 0.25, index=10 + i) for i in range(5)),
    *(dark(f"b_d{i}", 0.0, det="NRCB2", index=20 + i) for i in range(3)),       # equal MJDs
    *(flat(f"b_f{i}", 0.5, det="NRCB2", index=30 + i) for i in range(4)),
    *(dark(f"c_d{i}", i * 2.0, ro=RO_B, index=40 + i) for i in range(4)),
]


@pytest.mark.parametrize("imtypes", KNOWN_IMTYPES)
def test_input_order_does_not_matter(imtypes):
    kw = dict(dd_max_delta_mjd=1.0, ff_max_delta_mjd=1.0, ddff_max_delta_mjd=1.5)
    reference = image_sets(CAMPAIGN, imtypes, **kw)
    rng = random.Random(1234)
    for _ in range(10):
        files = list(CAMPAIGN)
        rng.shuffle(files)
        assert image_sets(files, imtypes, **kw) == reference
    assert image_sets(reversed(CAMPAIGN), imtypes, **kw) == reference


def test_campaign_ddff_hand_worked():
    sets, notes = image_sets(CAMPAIGN, "DDFF", dd_max_delta_mjd=1.0, ff_max_delta_mjd=1.0)
    # NRCA1 RO: DD (d0,d1) (d2,d3) (d4,d5); FF (f0,f1) (f2,f3) -> DD1, DD2.
    # NRCA1 RO_B: darks only. NRCB2: DD (d0,d1); FF (f0,f1) (f2,f3) -> DD1 twice.
    assert [(s.detector, names(s)) for s in sets] == [
        ("NRCA1", ["a_d0", "a_d1", "a_f0", "a_f1"]),
        ("NRCA1", ["a_d2", "a_d3", "a_f2", "a_f3"]),
        ("NRCB2", ["b_d0", "b_d1", "b_f0", "b_f1"]),
        ("NRCB2", ["b_d0", "b_d1", "b_f2", "b_f3"]),
    ]
    assert notes == [
        "NRCA1 (SUB160, RAPID, 5, 1, 0): imtypes DDFF: 4 darks give 0 pairs, 4 darks left "
        "over; no flats; no DD and FF pairs, no set",
        PREFIX + "DDFF: 7 darks give 3 pairs, 1 dark left over; 5 flats give 2 pairs, "
        "1 flat left over; 2 sets (DD pair usage 1, 1, 0)",
        "NRCB2 (SUB160, RAPID, 20, 1, 0): imtypes DDFF: 3 darks give 1 pair, 1 dark left "
        "over; 4 flats give 2 pairs; 2 sets (DD pair usage 2)",
    ]


# ----------------------------------------------------------------------- imtypes parsing


@pytest.mark.parametrize(("given", "canonical"), [
    ("ddff", "DDFF"), (" D+F+ ", "D+F+"), ("fd+", "FD+"), ("\tD\n", "D"),
])
def test_imtypes_case_and_whitespace(given, canonical):
    assert normalize_imtypes(given) == canonical


@pytest.mark.parametrize("bad", ["DF", "X", "", "D F", "DDF", "D+ F+"])
def test_unknown_imtypes(bad):
    with pytest.raises(ValueError, match="unknown imtypes") as info:
        image_sets(ONLY_DARKS, bad)
    assert repr(bad) in str(info.value)
    assert "DDFF" in str(info.value) and "D+F+" in str(info.value)


def test_bad_limits_and_items():
    with pytest.raises(ValueError, match="dd_max_delta_mjd"):
        image_sets(ONLY_DARKS, "DD", dd_max_delta_mjd=-1.0)
    with pytest.raises(ValueError, match="ddff_max_delta_mjd"):
        image_sets(ONLY_DARKS, "DDFF", ddff_max_delta_mjd=float("nan"))
    with pytest.raises(TypeError, match="InputFile"):
        image_sets(["a.fits"], "D")
