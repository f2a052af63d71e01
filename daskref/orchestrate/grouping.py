"""Image-set formation: group a campaign's exposures into the sets each reference type needs.

This is ``mkrefs``' ``imtypes`` rule set (jwst_reffiles, design notes section 2.6), applied
per detector *and* readout configuration, over the files of each group sorted by observation
time (MJD):

==========================================  ====================================================
``imtypes``                                 sets per (detector, readout) group
==========================================  ====================================================
``D`` / ``F``                               every dark (flat) alone
``DD`` / ``FF``                             greedy consecutive pairs (:func:`pair_consecutive`)
``D+`` / ``F+``                             all darks (flats) in one set
``D+F+``, ``DF+`` / ``F+D+``, ``FD+``       all darks and all flats in one set
``DDFF`` / ``FFDD``                         one set per FF pair matched to a DD pair
                                            (:func:`match_pairs`), least-reused DD pair first
==========================================  ====================================================

Differences from the original: a missing side (no darks or no flats) gives no set and a note
instead of a ``NameError``; ``F`` is accepted; groups are processed in a sorted, hash-free
order so the output never depends on the input order or on the interpreter's hash seed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "KNOWN_IMTYPES",
    "ImageSet",
    "InputFile",
    "image_sets",
    "match_pairs",
    "merge_sets",
    "normalize_imtypes",
    "pair_consecutive",
]

#: Every ``imtypes`` value :func:`image_sets` understands (upper case).
KNOWN_IMTYPES = ("D", "DD", "D+", "F", "FF", "F+", "D+F+", "F+D+", "DF+", "FD+", "DDFF", "FFDD")

_KINDS = ("dark", "flat")
_LETTER = {"dark": "D", "flat": "F"}


@dataclass(frozen=True)
class InputFile:
    """One input exposure of a campaign.

    Parameters
    ----------
    path : str
        The file's path, as given (never resolved or normalised).
    kind : str
        ``"dark"`` or ``"flat"`` (case-insensitive; stored lower case).
    mjd : float
        Observation time, Modified Julian Date (days). Must be finite.
    detector : str
        The ``DETECTOR`` keyword (stored stripped and upper case, e.g. ``"NRCA1"``).
    readout : tuple
        The readout configuration ``(SUBARRAY, READPATT, NGROUPS, NFRAMES, GROUPGAP)``.
        ``NINTS`` is deliberately not part of it: exposures that differ only in the number
        of integrations belong to the same group. Any sequence is stored as a tuple.
    index : int, optional
        Position in the input list (``imID`` of mkrefs); a tie-breaker after the MJD.
    """

    path: str
    kind: str
    mjd: float
    detector: str
    readout: tuple
    index: int = 0

    def __post_init__(self):
        kind = str(self.kind).strip().lower()
        if kind not in _KINDS:
            raise ValueError(f"InputFile {self.path!r}: kind must be 'dark' or 'flat', "
                             f"not {self.kind!r}")
        mjd = float(self.mjd)
        if not math.isfinite(mjd):
            raise ValueError(f"InputFile {self.path!r}: mjd must be finite, not {self.mjd!r}")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "mjd", mjd)
        object.__setattr__(self, "detector", str(self.detector).strip().upper())
        object.__setattr__(self, "readout", tuple(self.readout))
        object.__setattr__(self, "index", int(self.index))


@dataclass(frozen=True)
class ImageSet:
    """The exposures of one reference-file command (one row of mkrefs' command table).

    Parameters
    ----------
    detector : str
        Detector of every member.
    readout : tuple
        Readout configuration of every member (see :class:`InputFile`).
    members : tuple of (str, InputFile)
        ``(imlabel, file)`` in the set's order: labels ``D1, D2, ...`` for darks and
        ``F1, F2, ...`` for flats, the kinds in the letter order of the ``imtypes``
        (``FFDD``, ``F+D+`` and ``FD+`` list flats first), each kind in MJD order.
    """

    detector: str
    readout: tuple
    members: tuple[tuple[str, InputFile], ...]

    def __post_init__(self):
        object.__setattr__(self, "readout", tuple(self.readout))
        object.__setattr__(self, "members", tuple((str(lab), f) for lab, f in self.members))

    @property
    def darks(self) -> tuple[InputFile, ...]:
        """The dark members, in set order."""
        return tuple(f for _, f in self.members if f.kind == "dark")

    @property
    def flats(self) -> tuple[InputFile, ...]:
        """The flat members, in set order."""
        return tuple(f for _, f in self.members if f.kind == "flat")

    @property
    def labels(self) -> tuple[str, ...]:
        """The image labels (``D1``, ``F1``, ...), in set order."""
        return tuple(lab for lab, _ in self.members)

    @property
    def paths(self) -> tuple[str, ...]:
        """The member paths, in set order."""
        return tuple(f.path for _, f in self.members)

    def __len__(self) -> int:
        return len(self.members)


def normalize_imtypes(imtypes: str) -> str:
    """Return the canonical (stripped, upper-case) spelling of an ``imtypes`` value.

    Parameters
    ----------
    imtypes : str
        E.g. ``"ddff"``, ``" D+F+ "``.

    Returns
    -------
    str
        One of :data:`KNOWN_IMTYPES`.

    Raises
    ------
    ValueError
        When the value is not a known ``imtypes``; the message lists the known ones.
    """
    if not isinstance(imtypes, str):
        raise ValueError(f"imtypes must be a string, not {imtypes!r}; "
                         f"known: {', '.join(KNOWN_IMTYPES)}")
    key = imtypes.strip().upper()
    if key not in KNOWN_IMTYPES:
        raise ValueError(f"unknown imtypes {imtypes!r}; known: {', '.join(KNOWN_IMTYPES)}")
    return key


def _check_limit(name: str, value) -> float | None:
    """Validate a maximum Delta MJD (days): None (no limit) or a non-negative number."""
    if value is None:
        return None
    limit = float(value)
    if math.isnan(limit) or limit < 0:
        raise ValueError(f"{name} must be None or a non-negative number of days, not {value!r}")
    return limit


def pair_consecutive(mjds: Sequence[float],
                     max_delta_mjd: float | None = None) -> list[tuple[int, int]]:
    """Greedy consecutive pairing of time-sorted frames (mkrefs' DD / FF rule).

    Starting at ``i = 0``, while ``i < n - 1``: when a limit is set and
    ``mjds[i + 1] - mjds[i] > max_delta_mjd``, frame ``i`` is skipped (``i += 1``);
    otherwise ``(i, i + 1)`` is a pair and ``i += 2``. Frames are never reused and an
    odd leftover frame is dropped. The pairing is not optimal (it does not maximise the
    number of pairs); it is the original's rule.

    Parameters
    ----------
    mjds : sequence of float
        Observation times (MJD, days), sorted ascending.
    max_delta_mjd : float or None, optional
        Maximum time between the two frames of a pair (days); None for no limit.

    Returns
    -------
    list of (int, int)
        Index pairs into ``mjds``, in time order.
    """
    limit = _check_limit("max_delta_mjd", max_delta_mjd)
    pairs = []
    i, n = 0, len(mjds)
    while i < n - 1:
        if limit is not None and mjds[i + 1] - mjds[i] > limit:
            i += 1
        else:
            pairs.append((i, i + 1))
            i += 2
    return pairs


def _span(d_range: tuple[float, float], f_range: tuple[float, float]) -> float:
    """Largest distance (days) between an end of a DD pair and an end of an FF pair."""
    dmin, dmax = d_range
    fmin, fmax = f_range
    return max(abs(dmax - fmin), abs(dmin - fmax), abs(dmax - fmax), abs(dmin - fmin))


def match_pairs(dd_ranges: Sequence[tuple[float, float]],
                ff_ranges: Sequence[tuple[float, float]],
                max_delta_mjd: float | None = None) -> list[int | None]:
    """Match every FF pair to a DD pair, balancing the reuse of DD pairs (mkrefs' DDFF rule).

    For each FF pair in order, the valid DD pairs are those whose span to it,
    ``max(|Dmax - Fmin|, |Dmin - Fmax|, |Dmax - Fmax|, |Dmin - Fmin|)``, is at most
    ``max_delta_mjd`` (all when None). Of these the one used least so far wins, ties going
    to the earliest; its usage count is then incremented. The rule balances reuse; it does
    not pick the DD pair closest in time.

    Parameters
    ----------
    dd_ranges : sequence of (float, float)
        ``(Dmin, Dmax)`` MJD range (days) of each DD pair, in time order.
    ff_ranges : sequence of (float, float)
        ``(Fmin, Fmax)`` MJD range (days) of each FF pair, in time order.
    max_delta_mjd : float or None, optional
        Maximum span (days) between a DD pair and an FF pair; None for no limit.

    Returns
    -------
    list of int or None
        For each FF pair, the index of its DD pair, or None when no DD pair is valid.
    """
    limit = _check_limit("max_delta_mjd", max_delta_mjd)
    usage = [0] * len(dd_ranges)
    chosen: list[int | None] = []
    for f_range in ff_ranges:
        best = None
        for j, d_range in enumerate(dd_ranges):
            if limit is not None and _span(d_range, f_range) > limit:
                continue
            if best is None or usage[j] < usage[best]:
                best = j
        if best is not None:
            usage[best] += 1
        chosen.append(best)
    return chosen


# --------------------------------------------------------------------------- helpers


def _element_key(value) -> tuple:
    """Total-order key for one readout element: numbers numerically, then anything by text."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number):
            return (0, value, "", "")
    return (1, 0, type(value).__name__, str(value))


def _group_key(group: tuple[str, tuple]) -> tuple:
    """Sort key of a (detector, readout) group that works for mixed str / number tuples."""
    detector, readout = group
    return (detector, tuple(_element_key(v) for v in readout), repr(readout))


def _file_key(f: InputFile) -> tuple:
    """Within-group order: by MJD, then input position, then path (then anything else)."""
    return (f.mjd, f.index, str(f.path), f.kind, repr(f.readout))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _pairing_phrase(n: int, npairs: int, kind: str) -> str:
    """E.g. ``"3 darks give 1 pair, 1 dark left over"`` or ``"no darks"``."""
    word = kind
    if n == 0:
        return f"no {word}s"
    verb = "gives" if n == 1 else "give"
    text = f"{_plural(n, word)} {verb} {_plural(npairs, 'pair')}"
    left = n - 2 * npairs
    if left:
        text += f", {_plural(left, word)} left over"
    return text


def _limit_text(limit: float | None) -> str:
    return "no limit" if limit is None else f"{limit:g} d"


def _labelled(files: Iterable[InputFile]) -> list[tuple[str, InputFile]]:
    """Label files ``D1, D2, ...`` / ``F1, F2, ...`` per kind, in the given order."""
    counts = {"dark": 0, "flat": 0}
    out = []
    for f in files:
        counts[f.kind] += 1
        out.append((f"{_LETTER[f.kind]}{counts[f.kind]}", f))
    return out


def _group_label(detector: str, readout: tuple) -> str:
    return f"{detector} ({', '.join(map(str, readout))})"


def image_sets(files: Iterable[InputFile], imtypes: str, *,
               dd_max_delta_mjd: float | None = None,
               ff_max_delta_mjd: float | None = None,
               ddff_max_delta_mjd: float | None = None) -> tuple[list[ImageSet], list[str]]:
    """Every image set of one ``imtypes`` rule over a campaign, and notes.

    The files are grouped by ``(detector, readout)``; files of different groups never
    share a set. Groups are processed in sorted order (detector, then readout with numbers
    compared numerically and other values by text), and within a group the files are sorted
    by ``(mjd, index, path)``; the result is therefore the same for any order of ``files``.

    Parameters
    ----------
    files : iterable of InputFile
        The campaign's darks and flats.
    imtypes : str
        One of :data:`KNOWN_IMTYPES` (case-insensitive, surrounding whitespace ignored).
    dd_max_delta_mjd : float or None, optional
        Maximum time between the two darks of a DD pair (days; ``DD.max_Delta_MJD``), used by
        ``DD``, ``DDFF`` and ``FFDD``. None for no limit.
    ff_max_delta_mjd : float or None, optional
        Maximum time between the two flats of an FF pair (days; ``FF.max_Delta_MJD``), used by
        ``FF``, ``DDFF`` and ``FFDD``. None for no limit.
    ddff_max_delta_mjd : float or None, optional
        Maximum span between a DD pair and an FF pair (days; ``DDFF.max_Delta_MJD``), used by
        ``DDFF`` and ``FFDD``. None for no limit.

    Returns
    -------
    sets : list of ImageSet
        In group order, then in the rule's order within a group (time order of the frames,
        pairs, or FF pairs).
    notes : list of str
        Human-readable lines: one summary per group (e.g. ``"NRCA1 (SUB160, RAPID, 20, 1,
        0): imtypes DDFF: 3 darks give 1 pair, 1 dark left over; ..."``), plus one per FF
        pair left without a DD pair.

    Raises
    ------
    ValueError
        For an unknown ``imtypes`` or a negative / NaN limit.
    TypeError
        When an element of ``files`` is not an :class:`InputFile`.
    """
    imt = normalize_imtypes(imtypes)
    dd_limit = _check_limit("dd_max_delta_mjd", dd_max_delta_mjd)
    ff_limit = _check_limit("ff_max_delta_mjd", ff_max_delta_mjd)
    ddff_limit = _check_limit("ddff_max_delta_mjd", ddff_max_delta_mjd)

    groups: dict[tuple[str, tuple], list[InputFile]] = {}
    for f in files:
        if not isinstance(f, InputFile):
            raise TypeError(f"image_sets expects InputFile items, got {type(f).__name__}")
        groups.setdefault((f.detector, f.readout), []).append(f)

    sets: list[ImageSet] = []
    notes: list[str] = []
    if not groups:
        notes.append(f"imtypes {imt}: no input files, no set")
        return sets, notes

    for key in sorted(groups, key=_group_key):
        members = sorted(groups[key], key=_file_key)
        # Representative readout: that of the first file (equal tuples may differ in type).
        detector, readout = key[0], members[0].readout
        darks = [f for f in members if f.kind == "dark"]
        flats = [f for f in members if f.kind == "flat"]
        prefix = f"{_group_label(detector, readout)}: imtypes {imt}: "

        def emit(ordered: Iterable[InputFile], detector=detector, readout=readout) -> None:
            sets.append(ImageSet(detector, readout, tuple(_labelled(ordered))))

        if imt in ("D", "F"):
            kind_files = darks if imt == "D" else flats
            kind = "dark" if imt == "D" else "flat"
            if not kind_files:
                notes.append(prefix + f"no {kind}s, no set")
            for f in kind_files:
                emit([f])
            if kind_files:
                verb = "gives" if len(kind_files) == 1 else "give"
                notes.append(prefix + f"{_plural(len(kind_files), kind)} {verb} "
                             f"{_plural(len(kind_files), 'set')}")

        elif imt in ("DD", "FF"):
            kind_files, kind, limit = ((darks, "dark", dd_limit) if imt == "DD"
                                       else (flats, "flat", ff_limit))
            pairs = pair_consecutive([f.mjd for f in kind_files], limit)
            for i, j in pairs:
                emit([kind_files[i], kind_files[j]])
            text = _pairing_phrase(len(kind_files), len(pairs), kind)
            if kind_files and len(kind_files) - 2 * len(pairs) and limit is not None:
                text += f" (max Delta MJD {_limit_text(limit)})"
            notes.append(prefix + text + ("" if pairs else ", no set"))

        elif imt in ("D+", "F+"):
            kind_files, kind = (darks, "dark") if imt == "D+" else (flats, "flat")
            if kind_files:
                emit(kind_files)
                notes.append(prefix + f"{_plural(len(kind_files), kind)} in 1 set")
            else:
                notes.append(prefix + f"no {kind}s, no set")

        elif imt in ("D+F+", "F+D+", "DF+", "FD+"):
            if darks and flats:
                emit(darks + flats if imt[0] == "D" else flats + darks)
                notes.append(prefix + f"{_plural(len(darks), 'dark')} and "
                             f"{_plural(len(flats), 'flat')} in 1 set")
            elif darks:
                notes.append(prefix + f"{_plural(len(darks), 'dark')} but no flats, no set")
            elif flats:
                notes.append(prefix + f"{_plural(len(flats), 'flat')} but no darks, no set")
            else:  # pragma: no cover - a group always has at least one file
                notes.append(prefix + "no darks and no flats, no set")

        else:  # DDFF / FFDD
            dd = pair_consecutive([f.mjd for f in darks], dd_limit)
            ff = pair_consecutive([f.mjd for f in flats], ff_limit)
            dd_ranges = [(min(darks[i].mjd, darks[j].mjd), max(darks[i].mjd, darks[j].mjd))
                         for i, j in dd]
            ff_ranges = [(min(flats[i].mjd, flats[j].mjd), max(flats[i].mjd, flats[j].mjd))
                         for i, j in ff]
            chosen = match_pairs(dd_ranges, ff_ranges, ddff_limit)
            usage = [0] * len(dd)
            skipped = []
            for k, d_index in enumerate(chosen):
                f_pair = [flats[ff[k][0]], flats[ff[k][1]]]
                if d_index is None:
                    skipped.append(k)
                    continue
                usage[d_index] += 1
                d_pair = [darks[dd[d_index][0]], darks[dd[d_index][1]]]
                emit(d_pair + f_pair if imt == "DDFF" else f_pair + d_pair)
            nsets = len(chosen) - len(skipped)
            text = (f"{_pairing_phrase(len(darks), len(dd), 'dark')}; "
                    f"{_pairing_phrase(len(flats), len(ff), 'flat')}; ")
            if nsets:
                text += (f"{_plural(nsets, 'set')} (DD pair usage "
                         f"{', '.join(map(str, usage))})")
            elif not dd or not ff:
                missing = " and ".join(n for n, p in (("DD", dd), ("FF", ff)) if not p)
                text += f"no {missing} pairs, no set"
            else:
                text += "no set"
            notes.append(prefix + text)
            if dd:
                for k in skipped:
                    fmin, fmax = ff_ranges[k]
                    notes.append(prefix + f"FF pair {k + 1} (MJD {fmin:.5f}-{fmax:.5f}) has no "
                                 f"DD pair within {_limit_text(ddff_limit)}, skipped")

    return sets, notes


def merge_sets(sets: Iterable[ImageSet]) -> tuple[list[ImageSet], list[str]]:
    """One set per (detector, readout) from every set of it, for a type that fits them all.

    Photon transfer fits every level of a detector at once: its ``DDFF`` sets (a flat
    pair and a dark pair each) or ``FF`` sets (a flat pair each) become one set per
    detector and readout whose members are the darks and then the flats, each in the
    order of the sets and each file once (a dark pair matched to several flat pairs
    is used once), so consecutive members of a kind stay the sets' pairs.

    Parameters
    ----------
    sets : iterable of ImageSet
        From :func:`image_sets`, in its order.

    Returns
    -------
    merged : list of ImageSet
        In the order of each group's first set.
    notes : list of str
        One line per merged group, e.g. ``"NRCA1 (...): 5 sets merged into 1 (5 flat
        pairs, 1 dark pair)"``.
    """
    groups: dict[tuple, list[ImageSet]] = {}
    for imset in sets:
        groups.setdefault((imset.detector, imset.readout), []).append(imset)
    merged, notes = [], []
    for (detector, readout), members in groups.items():
        seen: set[str] = set()
        darks, flats = [], []
        for imset in members:
            for _, f in imset.members:
                if f.path in seen:
                    continue
                seen.add(f.path)
                (darks if f.kind == "dark" else flats).append(f)
        merged.append(ImageSet(detector, readout, tuple(_labelled(darks + flats))))
        notes.append(f"{_group_label(detector, readout)}: {_plural(len(members), 'set')} "
                     f"merged into 1 ({_plural(len(flats) // 2, 'flat pair')}, "
                     f"{_plural(len(darks) // 2, 'dark pair')})")
    return merged, notes
