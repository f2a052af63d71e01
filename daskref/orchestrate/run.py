"""mkrefs: a config and a pile of exposures in, every reference file of a campaign out.

:func:`plan` reads every input's headers, forms the image sets of every reflabel
(per detector and readout configuration, :mod:`.grouping`), names every output,
decides what exists already and what must be made, and resolves the references of
the calibration (``reffile4ssb``: files, glob patterns, ``SELF``, ``CRDS``). Nothing is
read or written. :func:`execute` then makes the files, stage by stage: a stage is one
collection step over every product it holds (each input byte read once per stage,
each distinct (input, steps) calibration built once), and a new stage starts only
where ``SELF`` needs a finished file of the run. The final file of a reflabel and
detector with several individual files is their pixel-by-pixel combination.

Layout (``basedir = outrootdir[/outsubdir][/runNNN]``)::

    basedir/<reflabel>/<reflabel>[_outsubdir][_runNNN][.addsuffix].cmd<ID>.<reftype>.fits
    basedir/<reflabel>/<reflabel>[_outsubdir][_runNNN][.addsuffix].<DETECTOR>.final.<reftype>.fits
    basedir/<name>.inputs.txt, .sets.txt, .prep.txt, .outputs.txt   (astropy ECSV tables)
    basedir/mkrefs_<YYYY-MM-DDTHH-MM-SS>.log
    ssbdir/<base>_<step>.fits                                        (ssb_save_steps)
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import reftypes as _reftypes  # noqa: F401  (registers the built-in types)
from .._compute import compute
from ..geometry import is_miri
from ..io.crds import CrdsMeta
from ..io.fits import (
    InputError,
    _stack_bytes_per_row,
    check_data,
    check_group_time,
    open_infos,
    read_info,
    row_chunks_for,
)
from ..io.products import open_reference
from ..prep.engine import NEEDS, PREP_CHUNK_MB, REFTYPES, check_reference_fit, prep_many
from ..prep.stack import concat_integrations, default_steps
from ..prep.steps import parse_steps, steps_to_run
from ..reftypes._inputs import describe_reference, group_time_for
from ..reftypes.registry import REGISTRY, RefType
from .grouping import ImageSet, InputFile, image_sets, merge_sets
from .inputs import read_inputs

log = logging.getLogger("daskref.mkrefs")

#: reffile4ssb / validation keys: the lower-case CRDS type names, and jwst_reffiles'.
REFFILE_KEYS = {name: name for name in REFTYPES} | {"rdnoise": "readnoise", "bpm": "mask"}


class MkrefsError(ValueError):
    """A campaign that cannot be planned as configured (one line, before any work)."""


# --------------------------------------------------------------------------- directories


@dataclass
class Dirs:
    """Where a run's files go."""

    root: Path
    subdir: str
    runlabel: str
    addsuffix: str
    basedir: Path
    ssbdir: Path

    @property
    def prefix(self) -> str:
        """``_outsubdir_runNNN`` part of the names."""
        return "".join(f"_{p}" for p in (self.subdir, self.runlabel) if p)

    def table(self, what: str) -> Path:
        """A bookkeeping table of the run."""
        name = "_".join(p for p in (self.subdir, self.runlabel) if p) or "mkrefs"
        return self.basedir / f"{name}.{what}.txt"

    def reffile(self, reflabel: str, reftype: str, cmd_id: int) -> Path:
        """An individual reference file."""
        suffix = f".{self.addsuffix}" if self.addsuffix else ""
        name = f"{reflabel}{self.prefix}{suffix}.cmd{cmd_id}.{reftype}.fits"
        return self.basedir / reflabel / name

    def final(self, reflabel: str, reftype: str, detector: str) -> Path:
        """The final reference file of a reflabel and detector."""
        suffix = f".{self.addsuffix}" if self.addsuffix else ""
        return (self.basedir / reflabel
                / f"{reflabel}{self.prefix}{suffix}.{detector}.final.{reftype}.fits")


def run_number(root: Path, run_id, new: bool) -> int | None:
    """The run number: an integer as given; ``AUTO`` the latest existing (``new``: +1)."""
    if run_id in (None, ""):
        return None
    if str(run_id).upper() != "AUTO":
        try:
            return int(run_id)
        except ValueError:
            raise MkrefsError(f"runID {run_id!r} is neither a number nor AUTO") from None
    numbers = [int(m.group(1)) for p in (root.glob("run*") if root.is_dir() else ())
               if (m := re.fullmatch(r"run(\d+)", p.name)) and p.is_dir()]
    if not numbers:
        return 0
    return max(numbers) + 1 if new else max(numbers)


def directories(output: Mapping, *, newrunid: bool = False) -> Dirs:
    """The run's directories from the config's ``output`` section (CLI values merged)."""
    rootdir = str(output.get("outrootdir") or "")
    if not rootdir:
        raise MkrefsError("output.outrootdir is empty: give --outrootdir or set it in the config")
    root = Path(os.path.abspath(os.path.expandvars(rootdir)))
    subdir = str(output.get("outsubdir") or "")
    top = root / subdir if subdir else root
    number = run_number(top, output.get("runID"), newrunid)
    digits = int(output.get("runIDNdigits") or 1)
    runlabel = f"run{number:0{digits}d}" if number is not None else ""
    basedir = top / runlabel if runlabel else top
    if output.get("ssbdir"):
        ssbdir = Path(os.path.abspath(os.path.expandvars(str(output["ssbdir"]))))
    else:
        ssbdir = (top if output.get("skip_runID_ssbdir") else basedir) / "ssb"
    return Dirs(root=root, subdir=subdir, runlabel=runlabel,
                addsuffix=str(output.get("addsuffix") or ""), basedir=basedir, ssbdir=ssbdir)


# --------------------------------------------------------------------------- the plan


@dataclass
class Job:
    """One reference file to make: a reflabel over one image set."""

    cmd_id: int
    reflabel: str
    rt: RefType
    imset: ImageSet
    path: Path
    steps: str | None
    refs: dict
    params: dict
    meta: CrdsMeta
    exists: bool = False
    make: bool = True
    stage: int = 0
    status: str = "planned"
    self_refs: dict = field(default_factory=dict)  # prep arg -> reftype made in this run
    #: steps of the inputs of one kind where they differ from ``steps`` (the combined
    #: MASK's flats), e.g. ``{"flat": "saturation,...,rate"}``
    kind_steps: dict = field(default_factory=dict)


@dataclass
class Final:
    """The combination of a reflabel's individual files of one detector."""

    reflabel: str
    detector: str
    method: str
    jobs: list[Job]
    path: Path
    meta: CrdsMeta
    validation: str | None = None
    status: str = "planned"


@dataclass
class Plan:
    """Everything a run will do, decided from the headers and the file system."""

    config: object
    dirs: Dirs
    files: list[InputFile]
    infos: dict
    jobs: list[Job]
    finals: list[Final]
    notes: list[str]
    prep: list[dict]
    options: dict

    def lines(self) -> list[str]:
        """The plan as text (what ``--onlyshow`` prints)."""
        out = [f"run directory: {self.dirs.basedir}", f"ssbdir: {self.dirs.ssbdir}",
               f"inputs: {len(self.files)} ({sum(f.kind == 'dark' for f in self.files)} darks, "
               f"{sum(f.kind == 'flat' for f in self.files)} flats)"]
        out += [f"note: {n}" for n in self.notes]
        for job in self.jobs:
            what = "make" if job.make else ("exists, skipped" if job.exists else "skipped")
            labels = ", ".join(f"{lab}={Path(f.path).name}" for lab, f in job.imset.members)
            out.append(f"cmd{job.cmd_id} {job.reflabel} {job.imset.detector} stage {job.stage} "
                       f"[{what}] steps={job.steps or 'none'} -> {job.path}")
            out.append(f"    {labels}")
            for name, ref in sorted(job.refs.items()):
                out.append(f"    {name}: {ref}")
        for fin in self.finals:
            out.append(f"final {fin.reflabel} {fin.detector} ({fin.method} of "
                       f"{len(fin.jobs)}) -> {fin.path}")
        for row in self.prep:
            out.append(f"prep {Path(row['input']).name}: steps {row['steps']} from "
                       f"{Path(row['source']).name}" + (f", keeps {row['save']}" if row['save']
                                                       else ""))
        return out


def parse_tokens(tokens: Sequence[str], known: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split mkrefs' positional arguments into reflabels (comma lists allowed) and files.

    Raises
    ------
    MkrefsError
        A token that is neither a known reflabel nor an existing file, or no reflabel.
    """
    labels, files = [], []
    for token in tokens:
        parts = [p for p in token.split(",") if p]
        if parts and all(p in known for p in parts):
            labels += [p for p in parts if p not in labels]
        elif os.path.isfile(token):
            files.append(token)
        else:
            raise MkrefsError(f"{token}: neither a reflabel ({', '.join(known)}) nor an "
                              "existing file")
    if not labels:
        raise MkrefsError(f"no reflabel given (known: {', '.join(known)})")
    if not files:
        raise MkrefsError("no input files given")
    return labels, files


def _steps_for(framework: Mapping, detector_attrs: Mapping) -> str | None:
    steps = framework.get("ssbsteps_miri") if is_miri(detector_attrs) else None
    steps = steps or framework.get("ssbsteps")
    if not steps or str(steps).strip().lower() == "none":
        return None
    return ",".join(s.strip() for s in str(steps).split(",") if s.strip())


def _reference_for(key: str, value, detector: str, subarray: str) -> str | None:
    """A reffile4ssb file or glob pattern, matched to the detector."""
    from astropy.io import fits

    candidates = sorted(glob.glob(os.path.expandvars(str(value))))
    if not candidates:
        raise MkrefsError(f"reffile4ssb.{key}: {value!r} matches no file")
    matching = []
    for c in candidates:
        try:
            header = fits.getheader(c)
        except OSError as exc:
            raise MkrefsError(f"reffile4ssb.{key}: {c}: not a FITS file ({exc})") from None
        det = str(header.get("DETECTOR", "")).upper()
        if det in (detector, "", "ANY", "MULTIPLE", "N/A"):
            matching.append(c)
    if not matching:
        raise MkrefsError(f"reffile4ssb.{key}: no file of {value!r} is for detector {detector}")
    if len(matching) > 1:
        raise MkrefsError(f"reffile4ssb.{key}: {len(matching)} files of {value!r} are for "
                          f"detector {detector}: {', '.join(map(os.path.basename, matching))}")
    del subarray
    return matching[0]


def _crds_reference(key: str, header: Mapping) -> str:
    """Best reference of a type from the ``crds`` client (a server or a cache)."""
    try:
        import crds
    except ImportError:
        raise MkrefsError(f"reffile4ssb.{key}: CRDS asked for, but the 'crds' package is not "
                          "installed (pip install crds)") from None
    reftype = REFTYPES[REFFILE_KEYS[key]].lower()
    params = {"META.INSTRUMENT.NAME": header.get("INSTRUME"),
              "META.INSTRUMENT.DETECTOR": header.get("DETECTOR"),
              "META.SUBARRAY.NAME": header.get("SUBARRAY"),
              "META.EXPOSURE.READPATT": header.get("READPATT"),
              "META.EXPOSURE.TYPE": header.get("EXP_TYPE"),
              "META.OBSERVATION.DATE": header.get("DATE-OBS"),
              "META.OBSERVATION.TIME": header.get("TIME-OBS")}
    crds_log = logging.getLogger("CRDS")  # the client prints its own errors: we say one line
    was = crds_log.disabled
    crds_log.disabled = True
    try:
        best = crds.getreferences(params, reftypes=[reftype], observatory="jwst")
    except (Exception, SystemExit) as exc:  # unreachable server or cache (crds may exit)
        raise MkrefsError(f"reffile4ssb.{key}: CRDS could not give a {reftype.upper()} "
                          f"reference ({type(exc).__name__}: {str(exc).splitlines()[0]})"
                          ) from None
    finally:
        crds_log.disabled = was
    return best[reftype]


def plan(config, reflabels: Sequence[str], files: Sequence[str], *, options: Mapping) -> Plan:
    """Decide everything a run will do, from the config, the headers and the disk.

    Parameters
    ----------
    config : LoadedConfig
        From :func:`daskref.orchestrate.config.load_config`.
    reflabels : sequence of str
        What to make, in this order (cmdIDs follow it).
    files : sequence of str
        Input exposures.
    options : mapping
        ``newrunid``, ``force_redo_ref``, ``force_redo_strun``, ``maxNref``,
        ``maxNstrun``, ``chunk_mb``.

    Raises
    ------
    MkrefsError, daskref.io.fits.InputError, daskref.reftypes.ParameterError
        Before anything is read or written.
    """
    data = config.data
    notes = list(config.notes)
    dirs = directories(data["output"], newrunid=bool(options.get("newrunid")))
    inputs, infos, input_notes = read_inputs(files, data["inputfiles"])
    check_data(list(infos.values()))  # a blank input is an error now, not in a later stage
    notes += input_notes
    limits = dict(dd_max_delta_mjd=(data.get("DD") or {}).get("max_Delta_MJD"),
                  ff_max_delta_mjd=(data.get("FF") or {}).get("max_Delta_MJD"),
                  ddff_max_delta_mjd=(data.get("DDFF") or {}).get("max_Delta_MJD"))
    reffile4ssb = {REFFILE_KEYS.get(k.lower(), k.lower()): v
                   for k, v in (data.get("reffile4ssb") or {}).items() if v not in (None, "")}
    unknown = sorted(set(reffile4ssb) - set(REFTYPES))
    if unknown:
        raise MkrefsError(f"reffile4ssb: unknown type(s) {unknown}; known: "
                          f"{', '.join(REFFILE_KEYS)}")
    validation = {REFFILE_KEYS.get(k.lower(), k.lower()): v
                  for k, v in (data.get("validation") or {}).items() if v not in (None, "")}
    jobs: list[Job] = []
    cmd_id = 0
    for label in reflabels:
        rt = REGISTRY[label]
        fw = config.framework(label)
        mixed = len(rt.input_flags) > 1  # darks and flats, each calibrated its own way
        # darks and flats of one detector and subarray form a set whatever their ramps
        grouped = ([dataclasses.replace(f, readout=f.readout[:1]) for f in inputs]
                   if mixed else inputs)
        sets, set_notes = image_sets(grouped, fw["imtypes"], **limits)
        if rt.merge_sets and sets:
            # one product per detector and readout from all its sets (GAIN's levels)
            sets, merge_notes = merge_sets(sets)
            set_notes += merge_notes
        notes += [f"{label}: {n}" for n in set_notes]
        params = config.parameters(label)
        meta = config.metadata(label)
        for imset in sets:
            kinds = {f.kind for _, f in imset.members}
            if rt.inputs in ("darks", "flats") and kinds != {rt.inputs[:-1]}:
                raise MkrefsError(f"{label}: imtypes {fw['imtypes']!r} gives sets with "
                                  f"{' and '.join(sorted(k + 's' for k in kinds))}, but "
                                  f"{label} takes {rt.inputs} only")
            if rt.check_set is not None:
                # a set the type cannot use: one line now, before anything is read
                try:
                    rt.check_set([f.path for f in imset.flats], [f.path for f in imset.darks])
                except InputError as exc:
                    raise MkrefsError(f"{label}: the set of {imset.detector} "
                                      f"({_plural_files(imset)}): {exc}") from None
            members = [infos[f.path] for _, f in imset.members]
            attrs = members[0].header
            if rt.needs_group_time:
                check_group_time(members, group_time_for(rt))
            steps = _steps_for(fw, attrs)
            if steps is not None and "mask" not in reffile4ssb:
                # dq_init runs only with a MASK; reference pixels come from the geometry
                steps = default_steps(steps, None, attrs, have_mask=False) or None
            needed = set()
            chains = [steps] if steps is not None else []
            if mixed:
                flat_steps = params.get("flat_steps") or default_steps(
                    REGISTRY["badpix_from_flats"].ssbsteps, None, attrs,
                    have_mask="mask" in reffile4ssb)
                chains.append(flat_steps)
            for chain in chains:  # a bad ssbsteps: an error now
                to_run = steps_to_run(parse_steps(chain, attrs), attrs)
                if "rate" in to_run:
                    check_group_time(members, "ramp fitting")
                wanted = {r for s in to_run for r in NEEDS.get(s, ())}
                needed |= wanted
                missing = sorted(r for r in wanted if r not in reffile4ssb)
                if missing:
                    step = next(s for s in to_run if set(NEEDS.get(s, ())) & set(missing))
                    raise MkrefsError(
                        f"{label}: step {step!r} of ssbsteps {chain!r} needs a "
                        f"{REFTYPES[missing[0]]} reference: set reffile4ssb.{missing[0]} "
                        "(a file, a glob pattern, SELF or CRDS)")
            if chains:
                needed.add("gain")  # also the e-/s of the calibrated types
            refs, self_refs = {}, {}
            for name, value in sorted(reffile4ssb.items()):
                if name not in needed:
                    continue
                if str(value).upper() == "SELF":
                    self_refs[name] = REFTYPES[name]
                    refs[name] = "SELF"
                elif str(value).upper() == "CRDS":
                    refs[name] = _crds_reference(name, attrs)
                else:
                    refs[name] = _reference_for(name, value, imset.detector,
                                                str(attrs.get("SUBARRAY", "")))
                if refs[name] != "SELF":  # a file: its type and fit to the set, now
                    check_reference_fit(name, open_reference(refs[name], name), attrs,
                                        members[0].shape, members[0].path,
                                        {"dark_current": {k: params.get(k) for k in
                                                          ("dark_nframes", "dark_groupgap")}})
            path = dirs.reffile(label, str(fw["reftype"]).lower(), cmd_id)
            jobs.append(Job(cmd_id=cmd_id, reflabel=label, rt=rt, imset=imset, path=path,
                            steps=steps, refs=refs, params=params,
                            meta=CrdsMeta(**meta), self_refs=self_refs,
                            kind_steps={"flat": chains[-1]} if mixed else {}))
            cmd_id += 1
    if not jobs:
        raise MkrefsError("no image set for any reflabel: " + "; ".join(notes[-3:]))
    _order_stages(jobs)
    finals = _finals(config, jobs, dirs, validation)
    made = 0
    for job in jobs:
        job.exists = job.path.exists()
        job.make = not job.exists or bool(options.get("force_redo_ref"))
        if job.make and options.get("maxNref") is not None and made >= int(options["maxNref"]):
            job.make = False
            job.status = "skipped (maxNref)"
        made += job.make
        if not job.make and job.status == "planned":
            job.status = "exists"
    prep_rows = _prep_rows([j for j in jobs if j.make], dirs, data, options, infos)
    return Plan(config=config, dirs=dirs, files=inputs, infos=infos, jobs=jobs, finals=finals,
                notes=notes, prep=prep_rows, options=dict(options))


def _plural_files(imset: ImageSet) -> str:
    """``"4 flats, 2 darks"`` of a set."""
    parts = [f"{len(files)} {kind}{'s' if len(files) != 1 else ''}"
             for kind, files in (("flat", imset.flats), ("dark", imset.darks)) if files]
    return ", ".join(parts)


def _order_stages(jobs: list[Job]) -> None:
    """Stage numbers: a job using a SELF reference runs after the jobs making it."""
    for _ in range(len(jobs) + 1):
        changed = False
        for job in jobs:
            for name, reftype in job.self_refs.items():
                makers = [j for j in jobs if j.rt.reftype == reftype
                          and j.imset.detector == job.imset.detector]
                if not makers:
                    raise MkrefsError(
                        f"{job.reflabel} cmd{job.cmd_id}: reffile4ssb.{name} is SELF but this "
                        f"run makes no {reftype} for {job.imset.detector}: add its reflabel")
                if job in makers:
                    raise MkrefsError(f"{job.reflabel}: reffile4ssb.{name} SELF is the file "
                                      "it makes itself")
                need = max(j.stage for j in makers) + 1
                if need > job.stage:
                    job.stage, changed = need, True
        if not changed:
            return
    raise MkrefsError("reffile4ssb SELF references form a cycle")


def _finals(config, jobs: list[Job], dirs: Dirs, validation: Mapping) -> list[Final]:
    finals = []
    by_key: dict[tuple[str, str], list[Job]] = {}
    for job in jobs:
        by_key.setdefault((job.reflabel, job.imset.detector), []).append(job)
    for (label, detector), group in by_key.items():
        fw = config.framework(label)
        method = str(fw.get("combine") or "mean")
        key = REFFILE_KEYS.get(group[0].rt.reftype.lower())
        if len(group) < 2 or method == "none":
            if key in validation:  # a single file is its own final
                finals.append(Final(label, detector, "single", group, group[0].path,
                                    group[0].meta, validation.get(key)))
            continue
        path = dirs.final(label, str(fw["reftype"]).lower(), detector)
        finals.append(Final(label, detector, method, group, path, group[0].meta,
                            validation.get(key)))
    return finals


def _prep_rows(jobs, dirs: Dirs, data: Mapping, options: Mapping, infos) -> list[dict]:
    """The calibration each input needs, once per distinct (input, steps).

    With ``maxNstrun``, a job whose inputs would need more new calibrations than the
    cap allows is not made this run (its status says so).
    """
    rows, seen = [], {}
    search = [dirs.ssbdir]
    extra = (data.get("output") or {}).get("pipeline_prod_search_dir") or []
    search += [Path(p) for p in ([extra] if isinstance(extra, str) else extra) if p]
    cap = options.get("maxNstrun")
    for job in jobs:
        if job.steps is None:
            continue
        save = list((data.get(job.reflabel) or {}).get("ssb_save_steps") or [])
        new = []
        for _, f in job.imset.members:
            steps = job.kind_steps.get(f.kind, job.steps)
            key = (f.path, steps)
            if key in seen:
                seen[key]["save"] = sorted(set(seen[key]["save"]) | set(save))
                continue
            source = f.path
            # (a combined MASK calibrates its raw inputs itself)
            if not options.get("force_redo_strun") and not job.kind_steps:
                source = _existing_product(f.path, steps, infos[f.path].header, search) \
                    or f.path
            new.append({"input": f.path, "steps": steps, "source": source,
                        "save": sorted(set(save))})
        if cap is not None and len(rows) + len(new) > int(cap):
            job.make, job.status = False, "skipped (maxNstrun)"
            continue
        for row in new:
            seen[(row["input"], row["steps"])] = row
            rows.append(row)
    return rows


def _existing_product(path: str, steps: str, attrs: Mapping, search: Sequence[Path]):
    """A calibrated ramp of this input in ``search`` (recursively) that needs fewest steps.

    A candidate qualifies when its S_* keywords show only requested steps done; the one
    with the most of them done wins (its name ``<base>_<step>.fits``).
    """
    from ..io.products import base_name

    wanted = parse_steps(steps, attrs)
    base = base_name(path)
    best, best_left = None, None
    for directory in search:
        if not directory.is_dir():
            continue
        for cand in sorted(directory.rglob(f"{base}_*.fits")):
            if os.path.samefile(cand, path):
                continue
            try:
                info = read_info(cand)
            except InputError:
                continue  # not a ramp (a rate file, say)
            left = steps_to_run(wanted, info.header)
            done = [s for s in _done_steps(info.header) if s not in wanted]
            if done:
                continue
            if best_left is None or len(left) < len(best_left):
                best, best_left = str(cand), left
    return best


def _done_steps(attrs: Mapping) -> list[str]:
    from ..algorithms.steps._common import STEP_KEYWORDS, is_done

    return [s for s in STEP_KEYWORDS if is_done(attrs, s)]


# --------------------------------------------------------------------------- running


def _rows_of(jobs: Sequence[Job], infos, chunk_mb) -> dict:
    """Row slabs per (detector, readout), sized for the largest set of the group.

    Every job then opens a file with the same slabs and shares its reads.
    """
    rows = {}
    for job in jobs:
        key = (job.imset.detector, job.imset.readout)
        set_infos = [infos[f.path] for _, f in job.imset.members]
        bpr = _stack_bytes_per_row(set_infos)
        ny = set_infos[0].shape[2]
        factor = PREP_CHUNK_MB if job.steps else None
        mb = chunk_mb if chunk_mb is not None else factor
        r = row_chunks_for(ny, bpr, mb)
        if key not in rows or r[0] < rows[key][0]:
            rows[key] = r
    return rows


def stale_temporaries(p: Plan) -> list[Path]:
    """Remove the temporaries that killed runs left where this run writes.

    A run stopped by SIGKILL (or a node that died) cannot remove its part files;
    every later run of the same directories does (those of running processes are
    left alone). Only the directories of this run's files are looked at, not the
    whole output tree.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    from ..io.exposure_writer import remove_stale_in

    dirs = {p.dirs.basedir, p.dirs.ssbdir, *(j.path.parent for j in p.jobs),
            *(f.path.parent for f in p.finals)}
    removed = [q for d in sorted(dirs) for q in remove_stale_in(d)]
    for q in removed:
        log.info("removed %s, left by a run that was killed", q)
    return removed


def qa_missing(p: Plan) -> list[Path]:
    """Existing reference files of the plan without their QA (a run stopped before it)."""
    if not p.options.get("qa", True):
        return []
    from ..qa import qa_paths

    files = [j.path for j in p.jobs] + [f.path for f in p.finals]
    return [f for f in dict.fromkeys(files) if f.exists() and not qa_paths(f)[0].exists()]


def execute(p: Plan, *, progress: bool = False, spill_dir=None) -> dict:
    """Make every planned file, stage by stage; write the tables and the log.

    Resuming: a file the plan found complete (``exists``) is kept, and gets its QA
    if it lacks it. Files appear complete or not at all (temporary names, renamed),
    so after an interrupt, a kill or a full disk the next run makes exactly what is
    missing; the temporaries a killed run left are removed first
    (:func:`stale_temporaries`).

    On an interrupt or an error nothing partial is left: the files of the stage
    being computed are not written, the part files of the calibrated products being
    kept are removed, the tables record each file's status (``made``, ``exists``,
    ``failed``, ``not made``) and the log the reason.

    Returns
    -------
    dict
        ``made`` (paths written), ``skipped`` (existing), ``finals``, ``seconds``.

    Raises
    ------
    daskref.io.exposure_writer.OutputError
        A file that could not be written (the disk full...); its ``note`` says what
        the run leaves.
    """
    from ..io.products import writers

    t0 = time.perf_counter()
    made, skipped = [], [str(j.path) for j in p.jobs if not j.make]
    qa_files: list[str] = []
    p.dirs.basedir.mkdir(parents=True, exist_ok=True)
    pending: list[Path] = []  # calibrated products being streamed (part files in ssbdir)
    with _run_log(p.dirs.basedir / time.strftime("mkrefs_%Y-%m-%dT%H-%M-%S.log")):
        try:
            for line in p.lines():
                log.info(line)
            stale_temporaries(p)
            rows = _rows_of(p.jobs, p.infos, p.options.get("chunk_mb"))
            stages = sorted({j.stage for j in p.jobs})
            prep_by_input = {(r["input"], r["steps"]): r for r in p.prep}
            for stage in stages:
                todo = [j for j in p.jobs if j.stage == stage and j.make]
                # SELF references of this stage: the finished files of earlier stages
                for job in todo:
                    for name, reftype in job.self_refs.items():
                        job.refs[name] = _finished(p, reftype, job.imset.detector)
                products, jobs_made, cache, save_tasks, save_paths = [], [], {}, [], []
                shared = _shared_calibrations(todo)
                for job in todo:
                    rows_k = rows[(job.imset.detector, job.imset.readout)]
                    params = dict(job.params)
                    if len(job.rt.input_flags) > 1:
                        # darks and flats: each half is calibrated by the build, its own way
                        inputs = {kind: [f.path for _, f in job.imset.members
                                         if f.kind == kind[:-1]] for kind in job.rt.input_flags}
                        extra = dict(dark_steps=params.pop("dark_steps", None) or job.steps,
                                     flat_steps=params.pop("flat_steps", None)
                                     or job.kind_steps.get("flat"),
                                     chunk_mb=p.options.get("chunk_mb"), spill_dir=spill_dir,
                                     **job.refs)
                        products.append(job.rt.build(inputs, **extra, **params))
                        jobs_made.append(job)
                        continue
                    if job.rt.inputs == "darks+flats":
                        # one stack per kind (GAIN: the flat pairs and the dark pairs)
                        inputs = {}
                        for kind in ("darks", "flats"):
                            members = tuple((lab, f) for lab, f in job.imset.members
                                            if f.kind == kind[:-1])
                            if members:
                                part = dataclasses.replace(
                                    job, imset=dataclasses.replace(job.imset, members=members))
                                inputs[kind] = _inputs_of(part, p.infos, rows_k, cache,
                                                          prep_by_input, spill_dir, shared)
                    else:
                        inputs = _inputs_of(job, p.infos, rows_k, cache, prep_by_input,
                                            spill_dir, shared)
                    extra = dict(steps=job.steps, **job.refs) if job.rt.ssbsteps else {}
                    products.append(job.rt.build(inputs, **extra, **params))
                    jobs_made.append(job)
                # prep products to keep (ssb_save_steps), in the same pass
                for (path, steps), result in cache.items():
                    row = prep_by_input.get((path, steps))
                    if not row or not row["save"]:
                        continue
                    ramp_steps = [s for s in row["save"]
                                  if s not in ("rate", "rateints", "fitopt")]
                    tasks, paths = writers([result], p.dirs.ssbdir, save_ramp=bool(ramp_steps))
                    if all(q.exists() for q in paths) and not p.options.get("force_redo_strun"):
                        continue  # kept by an earlier run
                    p.dirs.ssbdir.mkdir(parents=True, exist_ok=True)
                    save_tasks += tasks
                    save_paths += paths
                if not products:
                    continue
                log.info("stage %d: %d reference files in one pass", stage, len(products))
                pending = save_paths
                computed = compute(products + save_tasks, progress=progress)[:len(products)]
                pending = []
                made += [str(q) for q in save_paths]
                for job, ds in zip(jobs_made, computed, strict=True):
                    job.path.parent.mkdir(parents=True, exist_ok=True)
                    job.rt.write(ds, job.path, job.meta)
                    job.status = "made"
                    made.append(str(job.path))
                    log.info("cmd%d %s -> %s", job.cmd_id, job.reflabel, job.path)
                    qa_files += _qa(p, job.path)
                for fin in p.finals:
                    if all(j.stage <= stage for j in fin.jobs) and fin.status == "planned":
                        _make_final(fin, p)
                        if fin.status == "made":
                            made.append(str(fin.path))
                            qa_files += _qa(p, fin.path)
            for fin in p.finals:
                if fin.status == "planned":
                    _make_final(fin, p)
                    if fin.status == "made":
                        made.append(str(fin.path))
                        qa_files += _qa(p, fin.path)
            # files kept from an earlier run that stopped before their QA
            for path in qa_missing(p):
                qa_files += _qa(p, path)
            if qa_files:
                from ..qa import index_page

                files = [j.path for j in p.jobs] + [f.path for f in p.finals]
                index = index_page([f for f in files if f.exists()],
                                   p.dirs.basedir / "qa_index.html")
                qa_files.append(str(index))
                log.info("QA index: %s", index)
            _write_tables(p)
        except BaseException as exc:
            _abandon(p, pending, exc)
            raise
    seconds = time.perf_counter() - t0
    return {"made": made, "skipped": skipped, "seconds": seconds,
            "finals": [str(f.path) for f in p.finals], "qa": qa_files}


@contextlib.contextmanager
def _run_log(path: Path):
    """Record the run's INFO messages in ``path``, the console showing what it did before.

    The console's threshold (WARNING unless ``-v``) is on the ``daskref`` logger, which
    would keep the INFO records from the file too: for the run, the logger passes
    INFO and the root's handlers take the console's old threshold instead.
    """
    logger = logging.getLogger("daskref")
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    level, threshold = logger.level, logger.getEffectiveLevel()
    raised = []
    if threshold > logging.INFO:
        for h in logging.getLogger().handlers:
            if h.level < threshold:
                raised.append((h, h.level))
                h.setLevel(threshold)
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(level)
        for h, old in raised:
            h.setLevel(old)


def _abandon(p: Plan, pending: Sequence[Path], exc: BaseException) -> None:
    """A run that stops: no part file left, each file's status in the tables and log.

    The reference files are written by this process (their temporaries go with the
    exception, :func:`~daskref.io.exposure_writer.atomic_path`); the calibrated
    products being kept are streamed by the scheduler's tasks, and their part files
    are removed here.
    """
    import shutil

    from ..io.exposure_writer import OutputError
    from ..io.products import tmp_path

    for path in pending:
        for part in (tmp_path(path), path.with_name(path.name + ".part")):
            if part.is_dir():
                shutil.rmtree(part, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    part.unlink()
    failed = getattr(exc, "path", None) if isinstance(exc, OutputError) else None
    why = ("interrupted" if isinstance(exc, KeyboardInterrupt)
           else f"{type(exc).__name__}: {exc}")
    for item in [*p.jobs, *p.finals]:
        if str(item.path) == failed:
            item.status = f"failed ({exc.problem})"
        elif item.status == "planned" and getattr(item, "make", True):
            item.status = "not made"
    complete = [f for f in dict.fromkeys([j.path for j in p.jobs] + [f.path for f in p.finals])
                if f.exists()]
    total = len({*(j.path for j in p.jobs), *(f.path for f in p.finals)})
    # (INFO: the console gets its one line from the command)
    log.info("run stopped (%s): %d of %d reference files complete; a rerun makes the rest",
             why, len(complete), total)
    if isinstance(exc, OutputError):
        exc.note = (f"{len(complete)} of {total} reference files complete and kept; "
                    "a rerun makes the rest")
    # the record of what is there; on a full disk it may not fit, which changes nothing
    with contextlib.suppress(Exception):
        _write_tables(p)


def _qa(p: Plan, path) -> list[str]:
    """The QA files of one reference file of the run (unless ``qa`` is off)."""
    if not p.options.get("qa", True):
        return []
    from ..qa import qa

    return [str(q) for q in qa(path)]


def _finished(p: Plan, reftype: str, detector: str) -> str:
    """The file a SELF reference means: the final file, or the single one."""
    for fin in p.finals:
        if fin.jobs[0].rt.reftype == reftype and fin.detector == detector and fin.path.exists():
            return str(fin.path)
    makers = [j for j in p.jobs if j.rt.reftype == reftype and j.imset.detector == detector]
    if len(makers) == 1 and makers[0].path.exists():
        return str(makers[0].path)
    raise MkrefsError(f"SELF {reftype} for {detector}: its file was not made")


def _shared_calibrations(jobs: Sequence[Job]) -> dict:
    """Calibrations one job can take from another's: ``(input, steps)`` -> ``steps,rate``.

    The calibrated ramp of the longer chain, before ramp fitting, is the shorter's.
    """
    wanted = {(f.path, j.steps) for j in jobs if j.steps for _, f in j.imset.members}
    return {(path, steps): (path, f"{steps},rate") for path, steps in wanted
            if (path, f"{steps},rate") in wanted}


def _inputs_of(job: Job, infos, rows, cache: dict, prep_rows: Mapping, spill_dir,
               shared: Mapping = {}):  # noqa: B006 - read only
    """The job's stack: raw, or calibrated per input once per (input, steps)."""
    members = [infos[f.path] for _, f in job.imset.members]
    if job.steps is None:
        return open_infos(members, row_chunks=rows)
    refs = {k: v for k, v in job.refs.items()}
    results = []
    for info in members:
        key = (info.path, job.steps)
        key = shared.get(key, key)
        if key not in cache:
            row = prep_rows.get(key, {})
            source = row.get("source", info.path)
            src_info = info if source == info.path else read_info(source)
            opened = open_infos([src_info], row_chunks=rows)
            opened.attrs["inputs"] = [info.path]
            params = {k: v for k, v in job.params.items() if k in _prep_parameter_names()}
            if "fitopt" in row.get("save", ()):
                params["save_opt"] = True
            cache[key] = prep_many([opened], steps=key[1], spill_dir=spill_dir,
                                   **refs, **params)[0]
        results.append(cache[key])
    for info, ds in zip(members, results, strict=True):
        for step in job.rt.requires:
            from ..algorithms.steps._common import is_done

            if not is_done(ds.attrs, step):
                raise InputError(info.path, f"has not had the {step} step and it is not "
                                 f"requested (ssbsteps {job.steps!r})")
    stack = concat_integrations(results)
    stack.attrs["prep_references"] = {k: describe_reference(v) for k, v in refs.items()}
    return stack


def _prep_parameter_names():
    from ..prep.engine import STEP_PARAMETERS

    return {k for step in STEP_PARAMETERS.values() for k in step}


def _make_final(fin: Final, p: Plan) -> None:
    """Combine a reflabel's individual files of one detector, and validate it."""
    from ..reftypes.combine import combine_files, compare_files

    paths = [j.path for j in fin.jobs if j.path.exists()]
    if fin.method != "single":
        if len(paths) < len(fin.jobs):
            fin.status = "incomplete"
            return
        if not fin.path.exists() or any(j.status == "made" for j in fin.jobs) \
                or p.options.get("force_redo_ref"):
            combine_files(paths, fin.path, fin.method, fin.meta)
            fin.status = "made"
            log.info("final %s %s: %s of %d files -> %s", fin.reflabel, fin.detector,
                     fin.method, len(paths), fin.path)
        else:
            fin.status = "exists"
    else:
        fin.status = "exists"
    if fin.validation:
        report = compare_files(fin.path, fin.validation)
        out = fin.path.with_name(fin.path.name.removesuffix(".fits") + ".validation.json")
        from ..io.exposure_writer import atomic_path

        with atomic_path(out) as tmp:
            tmp.write_text(json.dumps(report, indent=2))
        log.info("validation of %s against %s: %s", fin.path.name, fin.validation,
                 json.dumps(report))


def _write_tables(p: Plan) -> None:
    """The bookkeeping tables of the run (astropy ECSV)."""
    from astropy.table import Table

    from ..io.exposure_writer import atomic_path

    def save(rows, what, names):
        table = Table(rows=rows, names=names) if rows else Table(names=names)
        with atomic_path(p.dirs.table(what)) as tmp:
            table.write(tmp, format="ascii.ecsv")

    save([(f.index, f.path, f.kind, f.mjd, f.detector, "/".join(map(str, f.readout)))
          for f in p.files], "inputs", ["imID", "fitsfile", "imtype", "MJD", "detector",
                                        "readout"])
    save([(j.cmd_id, j.reflabel, j.imset.detector, lab, f.path)
          for j in p.jobs for lab, f in j.imset.members], "sets",
         ["cmdID", "reflabel", "detector", "imlabel", "fitsfile"])
    save([(r["input"], r["steps"], r["source"], ",".join(r["save"])) for r in p.prep], "prep",
         ["fitsfile", "ssbsteps", "source", "saved"])
    save([(j.cmd_id, j.reflabel, j.imset.detector, str(j.path), j.status) for j in p.jobs]
         + [(-1, f.reflabel, f.detector, str(f.path), f.status) for f in p.finals],
         "outputs", ["cmdID", "reflabel", "detector", "reffile", "status"])

