"""The mkrefs configuration: the default config, loading, overrides and typing.

A campaign config is a YAML file with jwst_reffiles' layout: top-level keys
(``reflabels``, ``plugin_dirs``), framework sections (``inputfiles``, ``DD``,
``FF``, ``DDFF``, ``output``, ``reffile4ssb``, ``validation``) and one section per
reflabel (``readnoise``, ``dark``, ...). :func:`default_config_text` writes the
complete default, every key with a comment; the reflabel sections are made from
:data:`daskref.reftypes.REGISTRY`, so a plug-in's reference type gets its section
without any change here.

:func:`load_config` builds the config in this order (jwst_reffiles'
``yamlcfgclass``, with the differences noted):

1. **The default** (:func:`default_config`).
2. **The main file** (``cfgfile``; default ``$JWST_MKREFS_CONFIGFILE`` if set,
   else none). Top-level values (scalars, lists) replace the default; sections merge
   one level deep, so a nested mapping inside a section (``reffile4ssb`` in a
   reflabel section) replaces as a whole. In a known reflabel's section a key the
   reflabel does not have (not one of its parameters or their aliases, not a
   framework key, not a CRDS metadata key) is a :class:`ConfigError` naming the
   key, the section and the file. jwst_reffiles' configs run unchanged: the options
   its own sections had that daskref does not need (:data:`JWST_REFFILES_OPTIONS`,
   e.g. the dark's ``max_equivalent_groups``) are set aside with a note, and so
   are top-level keys and whole sections daskref does not know (``instrument``,
   ``batch``, the dummy ``test1``, sections of plug-ins that are not installed);
   a reflabel listed in ``reflabels`` that no registered type has is dropped with
   a note. Notes are in :attr:`LoadedConfig.notes`; nothing set aside is used.
3. **Overlay files** (``extracfgfiles``, ``-e``, in order) merge the same way, but
   a key or section that exists nowhere in the config so far is an error
   (jwst_reffiles' ``requireParamExists``).
4. **Command-line values**, in jwst_reffiles' order: ``params`` (``-p P V``: the
   top-level key ``P``), ``pall`` (``--pall P V``: ``P`` at top level if present and
   in every section that has it) and ``pp`` (``--pp S P V``: ``P`` in section
   ``S``). ``V`` strings are parsed as YAML (``3`` is an int, ``true`` a bool,
   ``[a, b]`` a list; text YAML cannot parse stays a string). A ``P`` that exists
   nowhere is an error naming it.
5. **Environment variables**: ``$NAME`` and ``${NAME}`` in every string value,
   recursively (lists too), are replaced from ``environ``; ``$$`` is a literal
   ``$``. An unset variable is an error naming the key (``output.outrootdir``)
   and the variable. Unlike jwst_reffiles this runs after the overrides, so a
   value replaced on the command line needs no variable.
6. **Types**: every reflabel section's parameters are converted by the registry
   (:meth:`~daskref.reftypes.RefType.resolve`; aliases are mapped to the
   parameter's name), and the framework and metadata keys are checked (see
   :func:`load_config`), so every value in :attr:`LoadedConfig.data` has its
   declared type. Errors name the file (or option) that gave the value.

YAML quirk kept from jwst_reffiles: ``ssbsteps: None`` and ``ssb_save_steps: None``
are the *string* ``'None'``; both mean "nothing" here, as there.
"""

from __future__ import annotations

import copy
import datetime as _dt
import difflib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..execution import CLUSTER_KINDS, COMMON_OPTIONS, ClusterError, check_options, parse_adapt
from ..io.crds import MetadataError, validate_description, validate_pedigree, validate_useafter
from ..prep.engine import NEEDS as PREP_NEEDS
from ..prep.engine import REFTYPES as PREP_REFTYPES
from ..prep.steps import ALIASES as STEP_ALIASES
from ..prep.steps import MIRI_STEPS, NIR_STEPS
from ..reftypes import REGISTRY, ParameterError, RefType

__all__ = [
    "COMBINE_METHODS",
    "ConfigError",
    "ENV_CONFIGFILE",
    "FRAMEWORK_KEYS",
    "JWST_REFFILES_OPTIONS",
    "LoadedConfig",
    "METADATA_KEYS",
    "REFERENCES",
    "default_config",
    "default_config_text",
    "load_config",
]

#: Environment variable naming the main config file when none is given.
ENV_CONFIGFILE = "JWST_MKREFS_CONFIGFILE"

#: How several files of one detector make the final reference file.
COMBINE_METHODS = ("mean", "median", "clipped_mean", "none")

#: Keys of ``reffile4ssb`` and ``validation``: the lower-case CRDS types the prep uses.
REFERENCES = ("mask", "saturation", "superbias", "linearity", "readnoise", "gain", "dark")

#: jwst_reffiles' names of those types (``bpm``, and ``<type>reffile`` in ``validation``).
REFERENCE_ALIASES = {"bpm": "mask", "rdnoise": "readnoise", "rdn": "readnoise"}

#: Keys the framework reads in every reflabel section.
FRAMEWORK_KEYS = ("reftype", "imtypes", "ssbsteps", "ssbsteps_miri", "ssb_save_steps", "combine")

#: Per-reflabel overrides of the top-level sections of the same name (optional).
OVERRIDE_KEYS = ("reffile4ssb", "validation")

#: CRDS metadata keys of every reflabel section (passed to the writer) and defaults.
METADATA_DEFAULTS: dict[str, Any] = {
    "author": "daskref", "pedigree": "GROUND", "useafter": "2000-01-01T00:00:00",
    "description": None, "history": [], "readpatt": None, "subarray": None,
}
METADATA_KEYS = tuple(METADATA_DEFAULTS)
#: jwst_reffiles' other names of metadata keys (the dark plug-in's).
METADATA_ALIASES = {"use_after": "useafter", "descrip": "description"}

#: jwst_reffiles' abbreviations of REFTYPEs (``reftype: bpm``).
REFTYPE_ABBREVIATIONS = {"bpm": "MASK", "rdnoise": "READNOISE", "rdn": "READNOISE"}

_NOT_NEEDED_NAME = "mkrefs names the outputs (output section)"
_NO_PLOTS = "daskref writes no plots; the diagnostics are in <file>_diagnostics.fits"
_NO_QC = "the written file is checked against its datamodel instead"

#: Options of jwst_reffiles' sections that daskref does not need: accepted with a
#: note and ignored. Keys: reflabel (``"*"``: every reflabel section); values: why.
JWST_REFFILES_OPTIONS: dict[str, dict[str, str]] = {
    "*": {
        "test4datamodel": "post-creation checks, not implemented in jwst_reffiles either",
        "test4ssb": "post-creation checks, not implemented in jwst_reffiles either",
    },
    "dark": {
        "max_equivalent_groups": "daskref sizes its own slabs: chunk_mb",
        "contribution_file": "daskref names it <file>_contribution.fits",
        "output_file": _NOT_NEEDED_NAME,
    },
    "badpix_from_darks": {
        "plot": _NO_PLOTS, "output_file": _NOT_NEEDED_NAME, "outfile": _NOT_NEEDED_NAME,
        "quality_check": _NO_QC,
    },
    "bad_pixel_mask": {
        "plot": _NO_PLOTS, "output_file": _NOT_NEEDED_NAME, "quality_check": _NO_QC,
    },
    "readnoise": {
        "nproc": "Dask schedules the work: the CLI's scheduler options",
        "slice_width": "daskref sizes its own slabs: chunk_mb",
        "outfile": _NOT_NEEDED_NAME,
        "save_tmp": "daskref writes no temporary map",
    },
    "superbias": {
        "plot": "daskref writes no plots",
        "save_reffile": "mkrefs always writes the reference file",
        "outfile": _NOT_NEEDED_NAME,
    },
}

#: The same for the framework sections.
JWST_REFFILES_SECTION_OPTIONS: dict[str, dict[str, str]] = {
    "output": {
        "ssblogFlag": "daskref logs every step to the run log",
        "ssberrorlogFlag": "daskref logs every step to the run log",
        "reflogFlag": "daskref logs every step to the run log",
        "referrorlogFlag": "daskref logs every step to the run log",
    },
}

#: Top-level keys of jwst_reffiles' configs that daskref does not use, and why.
JWST_REFFILES_TOP: dict[str, str] = {
    "instrument": "daskref reads INSTRUME from each input's header",
    "reftypes": "unused in jwst_reffiles too",
    "default_reflabels": "not implemented in jwst_reffiles",
    "batch": "daskref runs on a Dask cluster: the CLI's scheduler options",
    "test1": "a dummy key of jwst_reffiles' example config",
    "test2": "a dummy key of jwst_reffiles' example config",
    "test4datamodel": "post-creation checks, not implemented in jwst_reffiles either",
    "test4ssb": "post-creation checks, not implemented in jwst_reffiles either",
}

_TOP_VALUES = ("reflabels", "plugin_dirs")
_SECTIONS = ("inputfiles", "DD", "FF", "DDFF", "output", "reffile4ssb", "validation",
             "cluster")
_DEFAULT_ORIGIN = "the default config"


class ConfigError(ValueError):
    """An mkrefs config that cannot be used: unknown key, wrong type, unset variable."""


# --------------------------------------------------------------------------- default


_FRAMEWORK_HELP = {
    "reftype": "CRDS REFTYPE of the product (jwst_reffiles' bpm, rdnoise, rdn accepted)",
    "imtypes": "input sets per detector: D (each dark), DD (pairs within DD.max_Delta_MJD),"
               " D+ (all darks), FF, F+, DDFF, D+F+",
    "ssbsteps": "calibration of the inputs: a comma list, 'step-' (start through step),"
                " 'step+' (step to the end); empty or None: the ramps as they are",
    "ssbsteps_miri": "the same for MIRI inputs",
    "ssb_save_steps": "intermediate calibrated products to keep (comma list, e.g."
                      " 'jump, rate'); empty or None: none",
    "combine": "how several files of one detector make the final one: mean, median,"
               " clipped_mean, or none (keep each)",
}

_METADATA_HELP = {
    "author": "AUTHOR keyword",
    "pedigree": "PEDIGREE: GROUND, DUMMY, SIMULATION, MODEL, or INFLIGHT start end",
    "useafter": "USEAFTER, YYYY-MM-DDTHH:MM:SS (alias use_after)",
    "description": "DESCRIP, at most 65 characters; null: the type's default (alias descrip)",
    "history": "extra HISTORY entries: a string or a list of strings",
    "readpatt": "READPATT of the file; null: ANY",
    "subarray": "SUBARRAY of the file; null: the inputs'",
}

_TOP_HELP: dict[str, Any] = {
    "reflabels": "the reference types of the campaign (the reflabels of the command line)",
    "inputfiles": ("which input files are darks and flats, and their header keys", {
        "dark_pattern": "regex searched in each input's basename: a dark (checked first)",
        "flat_pattern": "regex searched in each input's basename: a flat",
        "basenamepattern": "regex searched in each input's path; others are dropped "
                           "(empty: keep all)",
        "dateobs_fitskey": "header key of the observation date (part of the MJD)",
        "timeobs_fitskey": "header key of the observation time (part of the MJD)",
        "mjdobs_fitskey": "header key holding the MJD itself (empty: from date and time)",
        "requiredfitskeys": "primary-header keys every input must have",
        "optionalfitskeys": "primary-header keys copied when present",
    }),
    "DD": ("pairs of darks (imtypes DD)", {
        "max_Delta_MJD": "most days between the two darks of a pair (null: no limit)",
    }),
    "FF": ("pairs of flats (imtypes FF)", {
        "max_Delta_MJD": "most days between the two flats of a pair (null: no limit)",
    }),
    "DDFF": ("a dark pair with a flat pair (imtypes DDFF)", {
        "max_Delta_MJD": "most days between a dark pair and a flat pair (null: no limit)",
    }),
    "output": ("where the outputs go: outrootdir[/outsubdir][/runID]/reflabel/...", {
        "outrootdir": "root output directory",
        "outsubdir": "subdirectory, also part of the file names (empty: none)",
        "runID": "run number, AUTO (the latest run, or a new one with -n), or empty (no run "
                 "directory)",
        "runIDNdigits": "digits of the run label (zero padded)",
        "addsuffix": "suffix added to the output names (empty: none)",
        "ssbdir": "where calibrated inputs are written (empty: <run dir>/ssb)",
        "skip_runID_ssbdir": "leave the run directory out of the default ssbdir (shared "
                             "between runs)",
        "pipeline_prod_search_dir": "directories searched for existing calibrated inputs "
                                    "(a directory or a list)",
    }),
    "reffile4ssb": ("references of the calibration steps: a file, a glob pattern, SELF "
                    "(made in this run), CRDS, or empty (not given)",
                    {k: f"{PREP_REFTYPES[k]}, for "
                        f"{', '.join(s for s, n in PREP_NEEDS.items() if k in n) or 'the prep'}"
                     for k in REFERENCES}),
    "validation": ("a previous reference file of each type to compare with (a file or "
                   "CRDS; empty: none)",
                   {k: f"previous {PREP_REFTYPES[k]} file" for k in REFERENCES}),
    "plugin_dirs": "directories of plug-ins (more reference types) to load",
    "cluster": ("where the graph runs (the command line's --scheduler, --cluster, "
                "--cluster-option, --jobs, --adapt win over these)", {
        "kind": "a dask-jobqueue cluster to start: " + ", ".join(CLUSTER_KINDS)
                + " (empty: none)",
        "scheduler": "without kind: threads, processes, synchronous or the address of a "
                     "running dask scheduler (empty: threads)",
        "jobs": "jobs the cluster submits (null: 1 unless adapt)",
        "adapt": "MIN:MAX: the cluster grows and shrinks between MIN and MAX jobs",
        "queue": "queue (partition) of the jobs (null: dask-jobqueue's config)",
        "account": "account charged for the jobs",
        "cores": "cores per job",
        "memory": "memory per job, e.g. 16GB: the workers' memory limit",
        "walltime": "time limit of a job, e.g. 01:00:00",
        "processes": "worker processes per job (cores split between them)",
        "job_extra_directives": "extra scheduler directives, e.g. [--exclusive]",
        "memory_target": "Dask's distributed.worker.memory.target (fraction of the limit)",
        "memory_spill": "Dask's distributed.worker.memory.spill",
        "memory_pause": "Dask's distributed.worker.memory.pause",
        "memory_terminate": "Dask's distributed.worker.memory.terminate",
        "options": "any other keyword of the dask-jobqueue class, e.g. {log_directory: logs}",
    }),
}


def _builtin_defaults() -> dict[str, Any]:
    return {
        "reflabels": [],
        "inputfiles": {
            "dark_pattern": "Bias|Dark|BIAS|DARK|ZERO",
            "flat_pattern": "GAIN|LIN|FLAT|Flat|flat",
            "basenamepattern": "",
            "dateobs_fitskey": "DATE-OBS",
            "timeobs_fitskey": "TIME-OBS",
            "mjdobs_fitskey": "",
            "requiredfitskeys": ["INSTRUME", "DETECTOR", "NGROUPS", "NINTS", "SUBARRAY"],
            "optionalfitskeys": ["FILTER", "PUPIL"],
        },
        "DD": {"max_Delta_MJD": 2.0},
        "FF": {"max_Delta_MJD": 2.0},
        "DDFF": {"max_Delta_MJD": 10.0},
        "output": {
            "outrootdir": ".", "outsubdir": "", "runID": "AUTO", "runIDNdigits": 3,
            "addsuffix": "", "ssbdir": "", "skip_runID_ssbdir": True,
            "pipeline_prod_search_dir": "",
        },
        "reffile4ssb": dict.fromkeys(REFERENCES, ""),
        "validation": dict.fromkeys(REFERENCES, ""),
        "plugin_dirs": [],
        "cluster": {"kind": "", "scheduler": "", "jobs": None, "adapt": "",
                    **dict.fromkeys(COMMON_OPTIONS), "options": {}},
    }


def _yaml_value(value: Any) -> str:
    """One value in YAML flow style, on one line."""
    if isinstance(value, tuple):
        value = list(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False)
    text = text.strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    elif text.endswith("..."):
        text = text[:-3].strip()
    return text


def _lines(items: Sequence[tuple[str, Any, str]], indent: str) -> list[str]:
    """``key: value  # comment`` lines with the comments aligned."""
    body = [f"{indent}{key}: {_yaml_value(value)}" for key, value, _ in items]
    width = min(max(len(b) for b in body), 40)
    return [f"{b.ljust(width)}  # {' '.join(str(c).split())}" if c else b
            for b, (_, _, c) in zip(body, items, strict=True)]


def _check_names(rt: RefType) -> None:
    taken = set(FRAMEWORK_KEYS) | set(OVERRIDE_KEYS) | set(METADATA_KEYS) | set(METADATA_ALIASES)
    for p in rt.parameters.values():
        clash = {p.name, *p.aliases} & taken
        if clash:
            raise ConfigError(f"reflabel {rt.reflabel!r}: parameter name(s) {sorted(clash)} "
                              "are config keys of every reflabel section")


def _reflabel_items(rt: RefType) -> list[tuple[str, Any, str]]:
    _check_names(rt)
    fhelp = _FRAMEWORK_HELP
    items: list[tuple[str, Any, str]] = [
        ("reftype", rt.reftype, fhelp["reftype"]),
        ("imtypes", rt.imtypes, fhelp["imtypes"]),
        ("ssbsteps", rt.ssbsteps or "", fhelp["ssbsteps"]),
    ]
    if rt.ssbsteps_miri:
        items.append(("ssbsteps_miri", rt.ssbsteps_miri, fhelp["ssbsteps_miri"]))
    items += [("ssb_save_steps", "", fhelp["ssb_save_steps"]),
              ("combine", "mean", fhelp["combine"])]
    for p in rt.parameters.values():
        help_ = p.help
        if p.aliases:
            help_ += f" (alias {', '.join(p.aliases)})"
        items.append((p.name, p.default, help_))
    items += [(k, v, _METADATA_HELP[k]) for k, v in METADATA_DEFAULTS.items()]
    return items


def default_config_text(registry: Mapping[str, RefType] = REGISTRY) -> str:
    """The complete default mkrefs config as commented YAML.

    Parameters
    ----------
    registry : mapping of str to RefType, optional
        The reference types (default: every registered one); one section each.

    Returns
    -------
    str
        YAML text; every key has a comment saying what it does.
        ``yaml.safe_load`` of it is :func:`default_config`.
    """
    defaults = _builtin_defaults()
    defaults["reflabels"] = list(registry)
    out = ["# daskref mkrefs config (jwst_reffiles' layout). Every key is listed with its",
           "# default; a config file needs only the keys it changes. $NAME and ${NAME} are",
           "# replaced from the environment.", ""]
    for key, value in defaults.items():
        spec = _TOP_HELP[key]
        if not isinstance(value, dict):
            out += _lines([(key, value, spec)], "")
            out.append("")
            continue
        comment, helps = spec
        out += [f"# {comment}", f"{key}:"]
        out += _lines([(k, v, (helps or {}).get(k, "")) for k, v in value.items()], "  ")
        out.append("")
    for label, rt in registry.items():
        out += [f"# {label}: {rt.summary}", f"{label}:"]
        out += _lines(_reflabel_items(rt), "  ")
        out.append("")
    return "\n".join(out)


def default_config(registry: Mapping[str, RefType] = REGISTRY) -> dict[str, Any]:
    """The complete default mkrefs config (``yaml.safe_load`` of :func:`default_config_text`).

    Parameters
    ----------
    registry : mapping of str to RefType, optional
        The reference types (default: every registered one).

    Returns
    -------
    dict
        Untyped as in the YAML (empty strings where nothing is set).
    """
    return yaml.safe_load(default_config_text(registry))


# --------------------------------------------------------------------------- result


@dataclass
class LoadedConfig:
    """A merged, typed mkrefs config.

    Attributes
    ----------
    data : dict
        The config: every top-level key and section, each value of its declared
        type (see :func:`load_config`).
    sources : list of str
        The files read, in order (main file, then overlays); empty for the default.
    notes : list of str
        One line per key or section set aside (known to jwst_reffiles but not needed,
        or unknown outside the reflabel sections) and per reflabel dropped.
    ignored : dict
        What was set aside: whole sections and top-level keys, and per known
        section the jwst_reffiles options it had.
    registry : mapping of str to RefType
        The reference types the config was checked against.
    """

    data: dict[str, Any]
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ignored: dict[str, Any] = field(default_factory=dict)
    registry: Mapping[str, RefType] = field(default_factory=lambda: REGISTRY, repr=False)

    @property
    def reflabels(self) -> list[str]:
        """The campaign's reflabels (``reflabels``)."""
        return list(self.data["reflabels"])

    def section(self, reflabel: str) -> dict[str, Any]:
        """The typed section of a reflabel (the config's own dict).

        Raises
        ------
        KeyError
            For a reflabel without a section (not registered).
        """
        if reflabel not in self.registry or reflabel not in self.data:
            raise KeyError(f"no reflabel {reflabel!r}; reflabels: {', '.join(self.registry)}")
        return self.data[reflabel]

    def parameters(self, reflabel: str) -> dict[str, Any]:
        """The algorithm parameters of a reflabel (names resolved, typed)."""
        sec = self.section(reflabel)
        return {name: sec[name] for name in self.registry[reflabel].parameters}

    def metadata(self, reflabel: str) -> dict[str, Any]:
        """CRDS metadata for the writer (the keys of :class:`daskref.io.crds.CrdsMeta`).

        ``author``, ``pedigree``, ``useafter``, ``description``, ``history`` (a list),
        ``readpatt``, ``subarray``; jwst_reffiles' ``use_after`` and ``descrip`` are
        mapped.
        """
        sec = self.section(reflabel)
        return {k: copy.deepcopy(sec[k]) for k in METADATA_KEYS}

    def framework(self, reflabel: str) -> dict[str, Any]:
        """The framework keys of a reflabel (:data:`FRAMEWORK_KEYS`).

        ``reftype``, ``imtypes``, ``ssbsteps``, ``ssbsteps_miri``, ``ssb_save_steps``,
        ``combine``. ``ssbsteps`` is None for "no calibration"; ``ssbsteps_miri`` None where MIRI
        uses ``ssbsteps``.
        """
        sec = self.section(reflabel)
        return {k: copy.deepcopy(sec.get(k)) for k in FRAMEWORK_KEYS}

    def references(self, reflabel: str) -> dict[str, str | None]:
        """``reffile4ssb`` for a reflabel: the top-level one, updated by its section's."""
        refs = dict(self.data["reffile4ssb"])
        refs.update({k: v for k, v in self.section(reflabel).get("reffile4ssb", {}).items()
                     if v is not None})
        return refs

    def validation(self, reflabel: str) -> dict[str, str | None]:
        """``validation`` for a reflabel: the top-level one, updated by its section's."""
        refs = dict(self.data["validation"])
        refs.update({k: v for k, v in self.section(reflabel).get("validation", {}).items()
                     if v is not None})
        return refs

    def to_yaml(self) -> str:
        """The typed config as YAML (to keep beside the run's outputs)."""
        return yaml.safe_dump(self.data, sort_keys=False, default_flow_style=None)


# --------------------------------------------------------------------------- merging


class _Builder:
    """The state of a load: merged data, what was set aside, where each value came from."""

    def __init__(self, registry: Mapping[str, RefType]):
        self.registry = registry
        self.data = default_config(registry)
        self.ignored: dict[str, Any] = {}
        self.notes: list[str] = []
        self.origin: dict[tuple[str, ...], str] = {}
        self._names = {label: self._reflabel_names(rt) for label, rt in registry.items()}

    # names ---------------------------------------------------------------

    @staticmethod
    def _reflabel_names(rt: RefType) -> dict[str, str]:
        _check_names(rt)
        names = {k: k for k in (*FRAMEWORK_KEYS, *OVERRIDE_KEYS, *METADATA_KEYS)}
        names.update(METADATA_ALIASES)
        for p in rt.parameters.values():
            names.update({a: p.name for a in (p.name, *p.aliases)})
        return names

    def is_section(self, key: str) -> bool:
        return key in _SECTIONS or key in self.registry

    def canonical(self, section: str, key: str) -> str | None:
        """The name ``key`` stands for in a known section; None: not a key of it."""
        if section in self.registry:
            return self._names[section].get(key)
        if section in ("reffile4ssb", "validation"):
            return _reference_name(key)
        return key if key in self.data[section] else None

    def skipped_option(self, section: str, key: str) -> str | None:
        """Why jwst_reffiles' option ``key`` of ``section`` is not needed; None: not one."""
        if section in self.registry:
            table = {**JWST_REFFILES_OPTIONS["*"], **JWST_REFFILES_OPTIONS.get(section, {})}
        else:
            table = JWST_REFFILES_SECTION_OPTIONS.get(section, {})
        return table.get(key)

    def unknown_key(self, source: str, section: str, key: str) -> ConfigError:
        if section in self.registry:
            names = self._names[section]
            params = ", ".join(self.registry[section].parameters) or "none"
            have = (f"its parameters: {params}; framework keys: {', '.join(FRAMEWORK_KEYS)}, "
                    f"{', '.join(OVERRIDE_KEYS)}; metadata: {', '.join(METADATA_KEYS)}")
        elif section in ("reffile4ssb", "validation"):
            names = {k: k for k in REFERENCES}
            have = f"its keys: {', '.join(REFERENCES)}"
        else:
            names = {k: k for k in self.data[section]}
            have = f"its keys: {', '.join(self.data[section])}"
        close = difflib.get_close_matches(str(key), list(names), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return ConfigError(f"{source}: section {section!r} has no key {key!r}{hint}; {have}")

    # merging -------------------------------------------------------------

    def merge(self, new: Mapping, source: str, *, strict: bool) -> None:
        """Merge one file's mapping; ``strict``: every key must exist already."""
        for key, value in new.items():
            key = str(key)
            if self.is_section(key):
                self._merge_section(key, value, source, strict=strict)
            elif key in _TOP_VALUES:
                if isinstance(value, Mapping):
                    raise ConfigError(f"{source}: {key!r} is a value, not a section")
                self.data[key] = copy.deepcopy(value)
                self.origin[(key,)] = source
            elif key in self.ignored:
                self._merge_ignored(key, value, source, strict=strict)
            elif strict:
                raise ConfigError(f"{source}: {key!r} exists nowhere in the config so far "
                                  "(an overlay file can only change existing keys)")
            else:
                self._set_aside(key, value, source)

    def _merge_section(self, section: str, value: Any, source: str, *, strict: bool) -> None:
        if value is None:
            return
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: {section!r} is a section, not a value "
                              f"(got {value!r})")
        seen: dict[str, str] = {}
        for key, item in value.items():
            key = str(key)
            name = self.canonical(section, key)
            if name is None:
                why = self.skipped_option(section, key)
                if why is None:
                    raise self.unknown_key(source, section, key)
                self.ignored.setdefault(section, {})[key] = copy.deepcopy(item)
                self.notes.append(f"{source}: section {section!r}: {key!r} is a jwst_reffiles "
                                  f"option daskref does not need ({why}); ignored")
                continue
            if name in seen:
                raise ConfigError(f"{source}: section {section!r} gives {name!r} twice "
                                  f"({seen[name]!r} and {key!r})")
            seen[name] = key
            if strict and name not in self.data[section]:
                raise ConfigError(f"{source}: section {section!r}: {key!r} exists nowhere in "
                                  "the config so far (an overlay file can only change "
                                  "existing keys)")
            if name != key and section in self.registry and key in METADATA_ALIASES:
                self.notes.append(f"{source}: section {section!r}: {key!r} read as {name!r}")
            self.data[section][name] = copy.deepcopy(item)
            self.origin[(section, name)] = source

    def _set_aside(self, key: str, value: Any, source: str) -> None:
        self.ignored[key] = copy.deepcopy(value)
        if key in JWST_REFFILES_TOP:
            what = "section" if isinstance(value, Mapping) else "key"
            self.notes.append(f"{source}: {what} {key!r} is not used by daskref "
                              f"({JWST_REFFILES_TOP[key]}); ignored")
        elif isinstance(value, Mapping) and ({"reftype", "imtypes", "ssbsteps"} & set(value)):
            self.notes.append(f"{source}: section {key!r} is not a reflabel daskref has "
                              "(no plug-in); ignored")
        elif isinstance(value, Mapping):
            # a jwst_reffiles section daskref lacks is ignored, but one spelled almost
            # like a daskref section is a typo whose settings would silently not apply
            known = [k for k in self.data if self.is_section(k)]
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
            if close:
                raise ConfigError(f"{source}: no section {key!r} (did you mean {close[0]!r}?)"
                                  f"; its keys would be ignored")
            self.notes.append(f"{source}: section {key!r} is not a daskref config section; "
                              "ignored")
        else:
            self.notes.append(f"{source}: key {key!r} is not a daskref config key; ignored")

    def _merge_ignored(self, key: str, value: Any, source: str, *, strict: bool) -> None:
        old = self.ignored[key]
        if isinstance(old, Mapping) != isinstance(value, Mapping):
            kind = "section" if isinstance(old, Mapping) else "value"
            raise ConfigError(f"{source}: {key!r} is a {kind} in the config so far")
        if isinstance(value, Mapping):
            for k, v in value.items():
                if strict and k not in old:
                    raise ConfigError(f"{source}: section {key!r}: {k!r} exists nowhere in "
                                      "the config so far")
                old[k] = copy.deepcopy(v)
        else:
            self.ignored[key] = copy.deepcopy(value)
        self.notes.append(f"{source}: {key!r} is set aside (not used by daskref); ignored")

    # command-line values -------------------------------------------------

    def set_top(self, param: str, value: Any, source: str) -> None:
        """``-p P V``."""
        if self.is_section(param) or isinstance(self.ignored.get(param), Mapping):
            raise ConfigError(f"{source} {param}: {param!r} is a section; set its keys with "
                              "--pp SECTION KEY VALUE")
        if param in self.data:
            self.merge({param: value}, source, strict=True)
        elif param in self.ignored:
            self.ignored[param] = value
            self.notes.append(f"{source}: {param!r} is set aside (not used by daskref); "
                              "ignored")
        else:
            raise ConfigError(f"{source} {param}: no top-level key {param!r} in the config "
                              f"(top-level keys: {', '.join(_TOP_VALUES)})")

    def set_section(self, section: str, param: str, value: Any, source: str) -> None:
        """``--pp S P V``."""
        where = f"{source} {section} {param}"
        if self.is_section(section):
            name = self.canonical(section, param)
            if name is None and self.skipped_option(section, param) is None:
                raise self.unknown_key(where, section, param)
            self._merge_section(section, {param: value}, source, strict=False)
        elif isinstance(self.ignored.get(section), Mapping):
            if param not in self.ignored[section]:
                raise ConfigError(f"{where}: section {section!r} has no key {param!r}")
            self.ignored[section][param] = value
            self.notes.append(f"{source}: section {section!r} is set aside (not used by "
                              "daskref); ignored")
        elif section in self.data or section in self.ignored:
            raise ConfigError(f"{where}: {section!r} is a value, not a section; use -p")
        else:
            raise ConfigError(f"{where}: no section {section!r} in the config (sections: "
                              f"{', '.join([*_SECTIONS, *self.registry])})")

    def set_all(self, param: str, value: Any, source: str) -> None:
        """``--pall P V``: top level if present, and every section that has ``P``."""
        found = False
        if param in _TOP_VALUES:
            self.merge({param: copy.deepcopy(value)}, source, strict=True)
            found = True
        elif param in self.ignored and not isinstance(self.ignored[param], Mapping):
            self.ignored[param] = copy.deepcopy(value)
            found = True
        for section in (*_SECTIONS, *self.registry):
            name = self.canonical(section, param)
            if name is not None and name in self.data[section]:
                self._merge_section(section, {param: copy.deepcopy(value)}, source,
                                    strict=False)
                found = True
        for sec in self.ignored.values():
            if isinstance(sec, Mapping) and param in sec:
                sec[param] = copy.deepcopy(value)
                found = True
        if not found:
            raise ConfigError(f"{source} {param}: {param!r} is not a key of the config, at "
                              "top level or in any section")


def _reference_name(key: str) -> str | None:
    """The reference type a ``reffile4ssb``/``validation`` key names (jwst_reffiles' too)."""
    name = str(key).strip().lower()
    if name.endswith("reffile") and name != "reffile":
        name = name[: -len("reffile")]
    name = REFERENCE_ALIASES.get(name, name)
    return name if name in REFERENCES else None


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # one line: the problem and where (PyYAML's own text spans several lines)
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: a config file must be a mapping of keys, "
                          f"not a {type(data).__name__}")
    return dict(data)


def _parse_value(value: Any) -> Any:
    """A command-line value: YAML-parsed when a string (text YAML refuses stays text)."""
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


# --------------------------------------------------------------------------- environment

_ENV = re.compile(r"\$\$|\$\{([^}]*)\}|\$([A-Za-z_]\w*)")


def _expand(value: Any, path: str, environ: Mapping[str, str], origin: str) -> Any:
    if isinstance(value, str):
        def repl(m: re.Match) -> str:
            if m.group(0) == "$$":
                return "$"
            name = m.group(1) if m.group(1) is not None else m.group(2)
            if name not in environ:
                raise ConfigError(f"{origin}: {path}: environment variable {name!r} is not set"
                                  f" (in {value!r})")
            return environ[name]
        return _ENV.sub(repl, value)
    if isinstance(value, Mapping):
        return {k: _expand(v, f"{path}.{k}" if path else str(k), environ, origin)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{path}[{i}]", environ, origin) for i, v in enumerate(value)]
    return value


# --------------------------------------------------------------------------- types


def _none_text(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "none"))


def _text(value: Any, where: str, *, empty_none: bool = False) -> str | None:
    """A string value (dates from YAML back to ISO text); None -> '' (or None)."""
    if value is None or (empty_none and _none_text(value)):
        return None if empty_none else ""
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    if isinstance(value, (Mapping, list, tuple)) or isinstance(value, bool):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return str(value).strip() if isinstance(value, str) else str(value)


def _text_list(value: Any, where: str) -> list[str]:
    """A list of strings: a list, or a comma string; None, '' and 'None' -> []."""
    if _none_text(value):
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        out = []
        for i, v in enumerate(value):
            if isinstance(v, (Mapping, list, tuple)) or v is None:
                raise ConfigError(f"{where}[{i}]: expected a string, got {v!r}")
            out.append(_text(v, where))
        return out
    raise ConfigError(f"{where}: expected a list or a comma-separated string, got {value!r}")


def _regex(value: Any, where: str) -> str:
    text = _text(value, where)
    try:
        re.compile(text)
    except re.error as exc:
        raise ConfigError(f"{where}: {text!r} is not a valid regular expression ({exc})") from None
    return text


def _number(value: Any, where: str, *, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number{' or null' if optional else ''}, "
                          f"got {value!r}") from None
    if out < 0:
        raise ConfigError(f"{where}: must not be negative, got {value!r}")
    return out


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        return int(value)
    raise ConfigError(f"{where}: expected an integer, got {value!r}")


def _boolean(value: Any, where: str) -> bool:
    from ..reftypes.registry import _convert  # the registry's one reading of a boolean

    try:
        return _convert(bool, value)
    except ValueError:
        raise ConfigError(f"{where}: expected true or false, got {value!r}") from None


_STEP_NAMES = frozenset(NIR_STEPS) | frozenset(MIRI_STEPS) | frozenset(STEP_ALIASES)


def _steps(value: Any, where: str) -> str | None:
    """An ``ssbsteps`` request; None for no calibration. Step names are checked."""
    if _none_text(value):
        return None
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    text = _text(value, where)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if len(names) == 1 and names[0].endswith(("-", "+")):
        names = [names[0][:-1]]
    bad = [n for n in names if n.lower() not in _STEP_NAMES]
    if bad:
        raise ConfigError(f"{where}: unknown calibration step(s) {', '.join(map(repr, bad))}; "
                          f"steps: {', '.join(dict.fromkeys(NIR_STEPS + MIRI_STEPS))} "
                          "(a comma list, 'step-' or 'step+')")
    return text


class _Typer:
    """Checks and converts the merged config, naming the source of each bad value."""

    def __init__(self, builder: _Builder):
        self.b = builder
        self.registry = builder.registry
        self.notes = builder.notes

    def where(self, *path: str) -> str:
        source = self.b.origin.get(tuple(path), _DEFAULT_ORIGIN)
        return f"{source}: {'.'.join(path)}"

    def run(self, data: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        out["reflabels"] = self.reflabels(data["reflabels"])
        inp = data["inputfiles"]
        out["inputfiles"] = {
            **{k: _regex(inp[k], self.where("inputfiles", k))
               for k in ("dark_pattern", "flat_pattern", "basenamepattern")},
            **{k: _text(inp[k], self.where("inputfiles", k))
               for k in ("dateobs_fitskey", "timeobs_fitskey", "mjdobs_fitskey")},
            **{k: _text_list(inp[k], self.where("inputfiles", k))
               for k in ("requiredfitskeys", "optionalfitskeys")},
        }
        for sec in ("DD", "FF", "DDFF"):
            out[sec] = {"max_Delta_MJD": _number(data[sec]["max_Delta_MJD"],
                                                 self.where(sec, "max_Delta_MJD"),
                                                 optional=True)}
        out["output"] = self.output(data["output"])
        for sec in OVERRIDE_KEYS:
            out[sec] = self.references(data[sec], sec)
        out["plugin_dirs"] = _text_list(data["plugin_dirs"], self.where("plugin_dirs"))
        for label, rt in self.registry.items():
            out[label] = self.reflabel(label, rt, data[label])
        out["cluster"] = self.cluster(data["cluster"])
        return out

    def cluster(self, sec: Mapping) -> dict[str, Any]:
        w = lambda k: self.where("cluster", k)  # noqa: E731
        kind = _text(sec["kind"], w("kind"), empty_none=True)
        if kind is not None:
            kind = kind.lower()
            if kind not in CLUSTER_KINDS:
                raise ConfigError(f"{w('kind')}: {sec['kind']!r} is not a cluster kind "
                                  f"({', '.join(CLUSTER_KINDS)}, or empty)")
        out: dict[str, Any] = {
            "kind": kind,
            "scheduler": _text(sec["scheduler"], w("scheduler"), empty_none=True),
            "jobs": None if sec["jobs"] is None else _integer(sec["jobs"], w("jobs")),
        }
        if out["jobs"] is not None and out["jobs"] < 1:
            raise ConfigError(f"{w('jobs')}: must be at least 1, got {out['jobs']}")
        try:
            out["adapt"] = parse_adapt(sec["adapt"])
        except ClusterError as exc:
            raise ConfigError(f"{w('adapt')}: {exc}") from None
        if out["jobs"] is not None and out["adapt"] is not None:
            raise ConfigError(f"{w('jobs')}: give jobs or adapt, not both")
        options = sec["options"] if sec["options"] is not None else {}
        if not isinstance(options, Mapping):
            raise ConfigError(f"{w('options')}: expected a mapping of dask-jobqueue "
                              f"keywords, got {options!r}")
        options = {**{k: sec[k] for k in COMMON_OPTIONS if sec[k] is not None},
                   **{str(k): v for k, v in options.items()}}
        if kind is None and options:
            raise ConfigError(f"{w('kind')}: cluster options ({', '.join(options)}) need a "
                              "cluster kind")
        if kind is not None and kind != "":
            try:
                check_options(kind, options)
            except ClusterError as exc:
                raise ConfigError(f"{w('options')}: {exc}") from None
        if kind is not None and out["scheduler"] not in (None, "threads"):
            raise ConfigError(f"{w('scheduler')}: give kind or scheduler, not both")
        out.update({k: sec[k] for k in COMMON_OPTIONS})
        out["options"] = dict(sec["options"] or {})
        return out

    def reflabels(self, value: Any) -> list[str]:
        where = self.where("reflabels")
        out = []
        for label in _text_list(value, where):
            if label in self.registry:
                if label not in out:
                    out.append(label)
            else:
                self.notes.append(f"{where}: {label!r} is not a reflabel daskref has "
                                  f"(no plug-in; reflabels: {', '.join(self.registry)}); "
                                  "ignored")
        return out

    def output(self, sec: Mapping) -> dict[str, Any]:
        w = lambda k: self.where("output", k)  # noqa: E731
        run_id = sec["runID"]
        if _none_text(run_id):
            run_id = ""
        elif isinstance(run_id, str) and run_id.strip().upper() == "AUTO":
            run_id = "AUTO"
        else:
            try:
                run_id = _integer(run_id, w("runID"))
            except ConfigError:
                raise ConfigError(f"{w('runID')}: expected an integer, AUTO or empty, "
                                  f"got {sec['runID']!r}") from None
        ndigits = 1 if sec["runIDNdigits"] is None else _integer(sec["runIDNdigits"],
                                                                 w("runIDNdigits"))
        if ndigits < 1:
            raise ConfigError(f"{w('runIDNdigits')}: must be at least 1, got {ndigits}")
        return {
            "outrootdir": _text(sec["outrootdir"], w("outrootdir")),
            "outsubdir": _text(sec["outsubdir"], w("outsubdir")),
            "runID": run_id,
            "runIDNdigits": ndigits,
            "addsuffix": _text(sec["addsuffix"], w("addsuffix")),
            "ssbdir": _text(sec["ssbdir"], w("ssbdir")),
            "skip_runID_ssbdir": _boolean(sec["skip_runID_ssbdir"], w("skip_runID_ssbdir")),
            "pipeline_prod_search_dir": _text_list(sec["pipeline_prod_search_dir"],
                                                   w("pipeline_prod_search_dir")),
        }

    @staticmethod
    def reference(value: Any, where: str) -> str | None:
        text = _text(value, where, empty_none=True)
        if text is not None and text.upper() in ("CRDS", "SELF"):
            text = text.upper()
        return text

    def references(self, sec: Mapping, name: str) -> dict[str, str | None]:
        return {k: self.reference(v, self.where(name, k)) for k, v in sec.items()}

    def reflabel(self, label: str, rt: RefType, sec: Mapping) -> dict[str, Any]:
        w = lambda k: self.where(label, k)  # noqa: E731
        out: dict[str, Any] = {}
        out["reftype"] = self.reftype(label, rt, sec["reftype"], w("reftype"))
        imtypes = _text(sec["imtypes"], w("imtypes")).replace(" ", "")
        if not re.fullmatch(r"[DF+]+", imtypes):
            raise ConfigError(f"{w('imtypes')}: {sec['imtypes']!r} is not an input grouping "
                              "(D, DD, D+, FF, F+, DDFF, D+F+, ...)")
        out["imtypes"] = imtypes
        out["ssbsteps"] = _steps(sec["ssbsteps"], w("ssbsteps"))
        out["ssbsteps_miri"] = _steps(sec.get("ssbsteps_miri"), w("ssbsteps_miri"))
        out["ssb_save_steps"] = _text_list(sec["ssb_save_steps"], w("ssb_save_steps"))
        combine = sec["combine"]
        combine = "none" if combine is None else _text(combine, w("combine")).lower()
        if combine not in COMBINE_METHODS:
            raise ConfigError(f"{w('combine')}: {sec['combine']!r} must be one of "
                              f"{', '.join(COMBINE_METHODS)}")
        out["combine"] = combine
        for key in OVERRIDE_KEYS:
            if key in sec and sec[key] is not None:
                if not isinstance(sec[key], Mapping):
                    raise ConfigError(f"{w(key)}: expected a mapping of reference types, got "
                                      f"{sec[key]!r}")
                refs = {}
                for k, v in sec[key].items():
                    name = _reference_name(k)
                    if name is None:
                        raise ConfigError(f"{w(key)}: no reference type {k!r}; types: "
                                          f"{', '.join(REFERENCES)}")
                    refs[name] = self.reference(v, f"{w(key)}.{k}")
                out[key] = refs
        for name, param in rt.parameters.items():
            value = sec[name]
            if param.optional and isinstance(value, str) and _none_text(value):
                value = None
            source = self.b.origin.get((label, name), _DEFAULT_ORIGIN)
            try:
                out.update(rt.resolve({name: value}, where=f"{source}: section {label!r}"))
            except ParameterError as exc:
                raise ConfigError(str(exc)) from None
        out.update(self.metadata(label, sec))
        return out

    def reftype(self, label: str, rt: RefType, value: Any, where: str) -> str:
        text = _text(value, where)
        canonical = REFTYPE_ABBREVIATIONS.get(text.lower(), text.upper())
        if canonical != rt.reftype.upper():
            raise ConfigError(f"{where}: {label} makes {rt.reftype} files; reftype {value!r} "
                              "does not match")
        if text.lower() in REFTYPE_ABBREVIATIONS:
            self.notes.append(f"{where}: {text!r} is jwst_reffiles' name of {rt.reftype}")
        return rt.reftype

    def metadata(self, label: str, sec: Mapping) -> dict[str, Any]:
        w = lambda k: self.where(label, k)  # noqa: E731
        out: dict[str, Any] = {}
        try:
            author = sec["author"]
            out["author"] = (METADATA_DEFAULTS["author"] if _none_text(author)
                             else _text(author, w("author")))
            ped = sec["pedigree"]
            out["pedigree"] = validate_pedigree(METADATA_DEFAULTS["pedigree"] if _none_text(ped)
                                                else _text(ped, w("pedigree")))
        except MetadataError as exc:
            raise ConfigError(f"{w('pedigree')}: {exc}") from None
        use = sec["useafter"]
        try:
            if isinstance(use, _dt.datetime):
                use = use.strftime("%Y-%m-%dT%H:%M:%S")
            out["useafter"] = validate_useafter(METADATA_DEFAULTS["useafter"]
                                                if _none_text(use) else _text(use, w("useafter")))
        except MetadataError as exc:
            raise ConfigError(f"{w('useafter')}: {exc}") from None
        desc = _text(sec["description"], w("description"), empty_none=True)
        try:
            out["description"] = None if desc is None else validate_description(desc)
        except MetadataError as exc:
            raise ConfigError(f"{w('description')}: {exc}") from None
        hist = sec["history"]
        if hist is None or (isinstance(hist, str) and not hist.strip()):
            out["history"] = []
        elif isinstance(hist, (list, tuple)):
            out["history"] = [_text(h, f"{w('history')}[{i}]") for i, h in enumerate(hist)]
        else:
            out["history"] = [_text(hist, w("history"))]
        for key in ("readpatt", "subarray"):
            out[key] = _text(sec[key], w(key), empty_none=True)
        return out


# --------------------------------------------------------------------------- loading


def load_config(
    cfgfile: str | os.PathLike | None = None,
    extracfgfiles: Iterable[str | os.PathLike] = (),
    params: Iterable[Sequence[Any]] = (),
    pp: Iterable[Sequence[Any]] = (),
    pall: Iterable[Sequence[Any]] = (),
    *,
    registry: Mapping[str, RefType] = REGISTRY,
    environ: Mapping[str, str] = os.environ,
) -> LoadedConfig:
    """Load an mkrefs config: default, main file, overlays, overrides, variables, types.

    See the module docstring for the merge rules.

    Parameters
    ----------
    cfgfile : path-like, optional
        The main config (``-c``). Default: ``$JWST_MKREFS_CONFIGFILE`` if set in
        ``environ``, else the default config only.
    extracfgfiles : iterable of path-like
        Overlay files (``-e``), merged in order; they may only change existing keys.
    params : iterable of (P, V)
        ``-p P V``: top-level values.
    pp : iterable of (S, P, V)
        ``--pp S P V``: ``P`` in section ``S``.
    pall : iterable of (P, V)
        ``--pall P V``: ``P`` at top level if present and in every section with it.
    registry : mapping of str to RefType, optional
        The reference types (one section each). Default: every registered one.
    environ : mapping, optional
        Where ``$NAME`` values come from (default ``os.environ``).

    Returns
    -------
    LoadedConfig

    Raises
    ------
    ConfigError
        An unreadable file, an unknown key in a known section, a key an overlay or
        an option sets that exists nowhere, an unset environment variable, or a
        value of the wrong type.

    Notes
    -----
    Types after loading: reflabel parameters as the registry declares them;
    ``imtypes`` a string; ``ssbsteps``/``ssbsteps_miri`` a string, or None for
    "no calibration" (empty or ``None``); ``ssb_save_steps`` a list of strings (a
    comma string is split; ``None`` is empty); ``combine`` one of
    :data:`COMBINE_METHODS`; ``reftype`` the registered REFTYPE (its jwst_reffiles
    abbreviation accepted); the metadata as :class:`daskref.io.crds.CrdsMeta` takes
    them (``useafter`` normalised, ``history`` a list); ``max_Delta_MJD`` a float
    or None; ``runID`` an int, ``'AUTO'`` or ``''``; ``runIDNdigits`` an int;
    ``pipeline_prod_search_dir``, ``requiredfitskeys``, ``optionalfitskeys``,
    ``plugin_dirs`` lists of strings; ``reffile4ssb``/``validation`` values a
    string (``CRDS`` and ``SELF`` upper-cased) or None.
    """
    builder = _Builder(registry)
    sources: list[str] = []
    if cfgfile is None and environ.get(ENV_CONFIGFILE):
        cfgfile = environ[ENV_CONFIGFILE]
    if cfgfile is not None:
        path = Path(cfgfile).expanduser()
        builder.merge(_read_yaml(path), str(path), strict=False)
        sources.append(str(path))
    if isinstance(extracfgfiles, (str, os.PathLike)):
        extracfgfiles = [extracfgfiles]
    for extra in extracfgfiles:
        path = Path(extra).expanduser()
        builder.merge(_read_yaml(path), str(path), strict=True)
        sources.append(str(path))
    for item in params:
        param, value = _unpack(item, 2, "-p")
        builder.set_top(param, _parse_value(value), "-p")
    for item in pall:
        param, value = _unpack(item, 2, "--pall")
        builder.set_all(param, _parse_value(value), "--pall")
    for item in pp:
        section, param, value = _unpack(item, 3, "--pp")
        builder.set_section(section, param, _parse_value(value), "--pp")

    expanded: dict[str, Any] = {}
    for key, value in builder.data.items():
        if isinstance(value, Mapping):
            expanded[key] = {k: _expand(v, f"{key}.{k}", environ,
                                        builder.origin.get((key, k), _DEFAULT_ORIGIN))
                             for k, v in value.items()}
        else:
            expanded[key] = _expand(value, key, environ,
                                    builder.origin.get((key,), _DEFAULT_ORIGIN))
    data = _Typer(builder).run(expanded)
    return LoadedConfig(data=data, sources=sources, notes=builder.notes,
                        ignored=builder.ignored, registry=registry)


def _unpack(item: Sequence[Any], n: int, option: str) -> tuple:
    items = tuple(item)
    if len(items) != n:
        raise ConfigError(f"{option} takes {n} values, got {list(items)!r}")
    return tuple(str(x) for x in items[:-1]) + (items[-1],)
