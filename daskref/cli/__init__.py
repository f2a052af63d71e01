"""The ``daskref`` command line.

Every command checks its inputs from the headers, and that its output directory can
be written, before any heavy work; a bad input or an unwritable output ends with one
line naming the file and the problem, exit status 2, and no output. A failure to
write during the run (the disk full, a quota) is one line naming the output, exit
status 1, with no partial file; an interrupt (SIGINT, SIGTERM) one line, exit status
128 + the signal number, with no partial or temporary file.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from .. import __version__
from ..execution import (
    CLUSTER_KINDS,
    COMMON_OPTIONS,
    ClusterError,
    Execution,
    parse_adapt,
    parse_options,
    running,
)
from ..io.crds import MetadataError
from ..io.exposure_writer import OutputError, check_writable
from ..io.fits import InputError
from ..prep.engine import STEP_PARAMETERS

log = logging.getLogger("daskref")


class UsageError(Exception):
    """A command-line mistake (exit status 2)."""


# --------------------------------------------------------------------------- options


def _opt(parser, name: str, **kwargs):
    """Add ``--a-b`` with the jwst_reffiles-style alias ``--a_b``."""
    flags = [f"--{name.replace('_', '-')}"]
    if "_" in name:
        flags.append(f"--{name}")
    parser.add_argument(*flags, dest=name, **kwargs)


def _add_common(p: argparse.ArgumentParser, outputs: bool = True):
    g = p.add_argument_group("execution")
    g.add_argument("--workers", type=int, default=None,
                   help="threads of the local scheduler (default: all cores)")
    g.add_argument("--scheduler", default=None,
                   help="'threads', 'processes', 'synchronous', or the ADDRESS of a running "
                        "dask.distributed scheduler (e.g. tcp://host:8786)")
    g.add_argument("--cluster", default=None, choices=list(CLUSTER_KINDS),
                   help="start a dask-jobqueue cluster and run there (local: processes on "
                        "this machine started like jobs)")
    g.add_argument("--cluster-option", "--cluster_option", dest="cluster_option",
                   action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the dask-jobqueue cluster (repeatable): queue, account, "
                        "cores, memory (per job: the workers' memory limit), walltime, "
                        "processes, job_extra_directives, log_directory, local_directory, "
                        "...; and Dask's worker memory fractions memory_target, "
                        "memory_spill, memory_pause, memory_terminate")
    size = g.add_mutually_exclusive_group()
    size.add_argument("--jobs", type=int, default=None,
                      help="jobs the cluster submits (default 1)")
    size.add_argument("--adapt", default=None, metavar="MIN:MAX",
                      help="let the cluster grow and shrink between MIN and MAX jobs")
    _opt(g, "chunk_mb", type=float, default=None,
         help="target size of one pixel slab of the input stack, MB (default 64; 16 for prep)")
    g.add_argument("-v", "--verbose", action="count", default=0, help="more messages")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    if outputs:
        m = p.add_argument_group("CRDS metadata")
        m.add_argument("--author", default="daskref", help="AUTHOR (default daskref)")
        m.add_argument("--description", default=None, help="DESCRIP, at most 65 characters")
        m.add_argument("--pedigree", default="GROUND",
                       help="GROUND, DUMMY, SIMULATION, MODEL or 'INFLIGHT start end'")
        m.add_argument("--useafter", default="2000-01-01T00:00:00",
                       help="USEAFTER, YYYY-MM-DDTHH:MM:SS")
        m.add_argument("--history", action="append", default=[], help="extra HISTORY entry")
        m.add_argument("--readpatt", default=None, help="READPATT keyword (default ANY)")
        m.add_argument("--subarray", default=None, help="SUBARRAY keyword (default: inputs')")


def _meta(args) -> dict:
    return dict(author=args.author, description=args.description, pedigree=args.pedigree,
                useafter=args.useafter, history=args.history, readpatt=args.readpatt,
                subarray=args.subarray)


# --------------------------------------------------------------------------- execution


def _execution(args, config: dict | None = None) -> Execution:
    """The execution settings: the command line over the config's ``cluster`` section."""
    config = config or {}
    if args.scheduler is not None and args.cluster is None:
        config = {}  # the command line's scheduler wins over the config's cluster
    try:
        named = {k: config[k] for k in COMMON_OPTIONS if config.get(k) is not None}
        options = {**named, **(config.get("options") or {}),
                   **parse_options(args.cluster_option)}
        jobs, adapt = args.jobs, parse_adapt(args.adapt)
        if jobs is None and adapt is None:
            jobs, adapt = config.get("jobs"), config.get("adapt")
        return Execution(scheduler=args.scheduler or config.get("scheduler"),
                         workers=args.workers, kind=args.cluster or config.get("kind"),
                         options=options, jobs=jobs, adapt=adapt).check()
    except ClusterError as exc:
        raise UsageError(str(exc)) from None


@contextlib.contextmanager
def _scheduler(args, config: dict | None = None):
    """Configure where the graph runs for the duration of the command."""
    execution = _execution(args, config)
    announce = None if args.quiet else (lambda line: print(line, file=sys.stderr))
    if not args.verbose:  # the in-process scheduler's comings and goings of workers
        logging.getLogger("distributed").setLevel(logging.ERROR)
    try:
        with running(execution, announce=announce):
            yield
    except ClusterError as exc:
        raise UsageError(str(exc)) from None


def _check_output(path: str) -> Path:
    out = Path(path)
    if out.is_dir():
        raise UsageError(f"{out}: output is a directory; give a file name like {out}/ref.fits")
    if out.suffix.lower() != ".fits":
        raise UsageError(f"{out}: output must end in .fits")
    _check_writable(out.parent, out)
    return out


def _check_writable(directory, name=None) -> None:
    """Refuse, before any work, an output directory that nothing can be written to."""
    try:
        check_writable(directory)
    except OutputError as exc:
        raise UsageError(f"{name}: {exc.problem}" if name is not None else str(exc)) from None


def _add_reftype_options(p, rt):
    """The flags of a reference type's parameters, generated from the registry."""
    g = p.add_argument_group(f"{rt.reflabel} parameters")
    for param in rt.parameters.values():
        flags = []
        for name in (param.name, *param.aliases):
            flags += [f"--{name.replace('_', '-')}"] + ([f"--{name}"] if "_" in name else [])
        kw = {}
        if param.kind is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif param.choices is not None:
            kw["choices"] = param.choices
        default = param.default
        if isinstance(default, tuple | list):
            default = ",".join(default)
        g.add_argument(*dict.fromkeys(flags), dest=param.name, default=argparse.SUPPRESS,
                       help=f"{param.help} (default {default})", **kw)


def cmd_reftype(args) -> int:
    """``daskref <reftype>``: one reference file from its inputs, one pass."""
    from .. import api
    from ..reftypes import ParameterError
    from ..reftypes._base import ancillary_path

    rt = args.reftype
    out = _check_output(args.output)
    if args.compare and not Path(args.compare).is_file():
        raise UsageError(f"--compare {args.compare}: no such file")
    params = {name: getattr(args, name) for name in rt.parameters if hasattr(args, name)}
    kwargs = dict(chunk_mb=args.chunk_mb)
    if rt.ssbsteps is not None:
        kwargs.update(steps=args.steps, spill_dir=args.spill_dir)
        kwargs.update({name: _reference_value(name, getattr(args, name))
                       for name in PREP_REFERENCES})
        kwargs.update({name: getattr(args, name) for name in PREP_PARAMS if hasattr(args, name)})
    try:
        product = rt.build(args.files, **kwargs, **params)
    except ParameterError as exc:
        raise UsageError(str(exc)) from None
    except _prep_errors() as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise UsageError(str(exc)) from None
    with _scheduler(args):
        paths = api.write(product, out, progress=not args.quiet, **_meta(args))
    beside = [ancillary_path(out, s) for s in ANCILLARY.get(rt.reflabel, ())]
    paths += [q for p in beside for q in (p, p.with_suffix(".png")) if q.exists()]
    if args.qa:
        paths += _run_qa(out, args.compare)
    _report(args, paths)
    return 0


def _add_qa_options(p):
    g = p.add_argument_group("quality assessment")
    g.add_argument("--qa", action=argparse.BooleanOptionalAction, default=True,
                   help="write <name>_qa.json and _qa.png beside the file (default; "
                        "--no-qa to skip; the PNG needs matplotlib)")
    g.add_argument("--compare", metavar="PREVIOUS.fits", default=None,
                   help="QA against a previous file of the same type (the one in use)")


def _run_qa(path, compare=None) -> list:
    from ..qa import qa

    try:
        return qa(path, compare=compare)
    except ValueError as exc:
        raise UsageError(f"--compare: {exc}") from None


def cmd_qa(args) -> int:
    """``daskref qa``: the QA files of existing reference files."""
    from ..qa import index_page

    if args.compare and not Path(args.compare).is_file():
        raise UsageError(f"--compare {args.compare}: no such file")
    paths = []
    for f in args.files:
        if not Path(f).is_file():
            raise UsageError(f"{f}: no such file")
        paths += _run_qa(f, args.compare)
    if args.index:
        paths.append(index_page(args.files, args.index))
    _report(args, paths)
    return 0


def _prep_errors():
    from ..prep import PrepError

    return (PrepError,)


#: Files that may be written beside each type's reference file (name suffixes).
ANCILLARY = {"superbias": ("filled",), "dark": ("contribution", "darkrate"),
             "badpix_from_darks": ("diagnostics",),
             "badpix_from_flats": ("flat_diagnostics",),
             "bad_pixel_mask": ("diagnostics", "flat_diagnostics"),
             "saturation": ("saturation_diagnostics",),
             "linearity": ("linearity_diagnostics",), "gain": ("ptc",)}


def cmd_inventory(args) -> int:
    """``daskref inventory``: print the inputs' header table."""
    from ..io.fits import inventory

    table = inventory(args.files)
    if args.format == "csv":
        table.write(sys.stdout, format="ascii.csv")
    else:
        for line in table.pformat(max_lines=-1, max_width=-1):
            print(line)
    return 0


def cmd_simulate(args) -> int:
    """``daskref simulate``: write simulated exposures and their truth maps."""
    from ..simulate import (
        BAD_PIXEL_DEFAULTS,
        FLAT_DEFECT_DEFAULTS,
        make_truth,
        simulate_campaign,
        simulate_flats,
        write_truth,
    )

    _check_writable(args.outdir)
    t0 = time.perf_counter()
    subsize = tuple(args.subsize) if args.subsize else None
    extra = dict(BAD_PIXEL_DEFAULTS, **FLAT_DEFECT_DEFAULTS) if args.bad_pixels else {}
    if args.hot_fraction is not None:
        extra["hot_fraction"] = args.hot_fraction
    truth_kwargs = dict(
        instrument=args.instrument, detector=args.detector,
        subarray=args.subarray, substrt=tuple(args.substrt), subsize=subsize,
        readpatt=args.readpatt, readnoise=args.readnoise, bias=args.bias,
        dark_current=args.dark_current, cosmic_ray_rate=args.cosmic_ray_rate,
        amp_offset_sigma=args.amp_offset, odd_even_offset=args.odd_even_offset,
        row_noise=args.row_noise, **extra,
    )
    prefix = args.prefix or args.kind
    if args.kind == "flat":
        # the same truth (seed) as darks simulated with the same options
        campaign = simulate_flats(
            args.outdir, make_truth(seed=args.seed, **truth_kwargs), args.n_files,
            nints=args.nints, ngroups=args.ngroups, fill_fraction=args.fill_fraction,
            seed=1000 + args.seed, prefix=prefix, exp_type=args.exp_type)
    else:
        campaign = simulate_campaign(
            args.outdir, args.n_files, nints=args.nints, ngroups=args.ngroups,
            seed=args.seed, prefix=prefix, flux=args.flux, **truth_kwargs)
    truth_path = write_truth(campaign.truth, Path(args.outdir) / f"{prefix}_truth.fits")
    if not args.quiet:
        for p in campaign.paths:
            print(p)
        print(f"truth: {truth_path}  ({time.perf_counter() - t0:.1f} s)")
    return 0


def cmd_demo(args) -> int:
    """``daskref demo``: a simulated multi-epoch campaign through mkrefs, against the truth."""
    import yaml

    from ..orchestrate.config import load_config
    from ..orchestrate.run import execute, plan
    from ..simulate import (
        BAD_PIXEL_DEFAULTS,
        FLAT_DEFECT_DEFAULTS,
        flat_level,
        flat_rate,
        make_truth,
        simulate_exposure,
        write_references,
    )

    labels = ["readnoise", "superbias", "dark", "bad_pixel_mask"]

    outdir = Path(args.outdir)
    _check_writable(outdir)
    t0 = time.perf_counter()
    geometry = dict(subarray="FULL") if args.full_frame else dict(
        subarray="SUB320", substrt=(1, 1), subsize=(320, 320), tframe=10.7)
    truth = make_truth(seed=args.seed, cosmic_ray_rate=5e-5, **geometry, **BAD_PIXEL_DEFAULTS,
                       **FLAT_DEFECT_DEFAULTS)
    lamp = flat_rate(truth, flat_level(truth, 20, 0.5))
    per_epoch = max(1, args.n_files // 2)
    if not args.quiet:
        print(f"simulating 2 epochs of {per_epoch} NIRCam darks (2 x 20 groups, every "
              f"bad-pixel class) and 2 lamp flats each (dead, low-QE, open pixels) in "
              f"{outdir / 'inputs'} ...")
    paths, darks = [], []
    for e, day in enumerate(("2026-01-05", "2026-02-05")):
        for k in range(per_epoch):
            p = outdir / "inputs" / f"dark_e{e}_{k}_uncal.fits"
            p.parent.mkdir(parents=True, exist_ok=True)
            darks.append(simulate_exposure(p, truth, nints=2, ngroups=20, seed=10 * e + k,
                                           start=f"{day}T{k:02d}:00:00").path)
        flats = [simulate_exposure(outdir / "inputs" / f"flat_e{e}_{k}_uncal.fits", truth,
                                   nints=1, ngroups=20, seed=90 + 2 * e + k, flux=lamp,
                                   start=f"{day}T1{k}:00:00").path for k in range(2)]
        paths += darks[-per_epoch:] + flats
    # what darks cannot measure comes from existing references (the flats' calibration
    # also subtracts a DARK)
    refs = write_references(truth, outdir / "references", 20,
                            kinds=["saturation", "linearity", "gain", "dark"])
    config = {
        "output": {"outrootdir": str(outdir / "out"), "runID": "AUTO"},
        "reffile4ssb": {"superbias": "SELF", "readnoise": "SELF",
                        **{k: str(v) for k, v in refs.items()}},
        **{label: {"imtypes": "D+F+" if label == "bad_pixel_mask" else "D+",
                   "author": "daskref demo", "pedigree": "SIMULATION"} for label in labels},
    }
    cfgfile = outdir / "mkrefs.cfg"
    cfgfile.write_text(yaml.safe_dump(config, sort_keys=False))
    t1 = time.perf_counter()
    the_plan = plan(load_config(str(cfgfile)), labels, [str(p) for p in paths],
                    options={"chunk_mb": args.chunk_mb})
    if not args.quiet:
        print(f"daskref mkrefs -c {cfgfile} {','.join(labels)} "
              f"{outdir / 'inputs'}/*.fits")
        for line in the_plan.lines():
            print(f"  {line}")
    with _scheduler(args):
        result = execute(the_plan, progress=not args.quiet)
    t2 = time.perf_counter()
    if not args.quiet:
        print(f"simulated in {t1 - t0:.1f} s, reference files built in {t2 - t1:.1f} s "
              f"(two passes: the DARK and MASK calibrations use this run's SUPERBIAS and "
              f"READNOISE)")
        made = {j.reflabel: j.path for j in the_plan.jobs}
        for line in _demo_report(truth, [made[k] for k in labels]):
            print(line)
        if result["qa"]:
            print(f"QA of every file (image, histogram, per-amplifier statistics, flags): "
                  f"{result['qa'][-1]}")
    _report(args, [Path(p) for p in result["made"] if p.endswith(".fits")])
    return 0


def _demo_report(truth, paths) -> list[str]:
    """How well the demo's files recovered the simulated truth."""
    import numpy as np
    from astropy.io import fits

    from ..algorithms.badpix_dark import CLASSES
    from ..reftypes._base import ancillary_path
    from ..simulate import group_times

    science = ~truth.reference
    normal = (truth.pixel_class == 0) & science
    rn = fits.getdata(paths[0], "SCI")
    sb = fits.getdata(paths[1], "SCI")
    lines = [
        f"READNOISE: median recovered/true CDS noise = "
        f"{np.nanmedian(rn[normal] / truth.readnoise_cds[normal]):.4f}",
        f"SUPERBIAS: rms(recovered - true bias) = "
        f"{np.nanstd((sb - truth.expected_group0())[normal]):.2f} DN",
    ]
    with fits.open(paths[2]) as dark:
        sci, err = dark["SCI"].data, dark["ERR"].data
    counts = fits.getdata(ancillary_path(paths[2], "contribution"))
    rate = fits.getdata(ancillary_path(paths[2], "darkrate"))
    # the SUPERBIAS (group 0) was subtracted: the dark grows from there
    t = group_times(truth.attrs, sci.shape[0])
    expected = truth.dark_current[None] * (t - t[0])[:, None, None]
    full = (counts == counts.max()) & normal[None]
    rms = np.sqrt(np.mean((sci[full] - expected[full]) ** 2))
    hot = truth.class_mask("hot")
    error = 100 * np.median(np.abs(rate[hot] / truth.dark_current[hot] - 1))
    # ERR is the uncertainty against an independent SUPERBIAS; this one was made from
    # the same integrations, so their reset (kTC) noise cancels and the error is smaller
    lines.append(f"DARK: rms(recovered - true) = {rms:.2f} DN per group (ERR, for an "
                 f"independent SUPERBIAS: {np.median(err[full]):.2f} DN); hot-pixel rates "
                 f"median |error| {error:.2f} %")
    cls = fits.getdata(ancillary_path(paths[3], "diagnostics"), "CLASS")
    expect = {"hot": "hot", "warm": "warm", "noisy": "noisy", "rc": "rc", "inverse_rc": "rc",
              "telegraph": "high_cr", "low_pedestal": "low_pedestal", "saturated": "saturated"}
    found = []
    # a SUPERBIAS made from the same darks absorbs a constant low reset level
    expect.pop("low_pedestal")
    for name, klass in expect.items():
        sel = truth.class_mask(name) & science
        if sel.any():
            found.append(f"{name} {np.mean(cls[sel] == CLASSES.index(klass)):.0%}")
    false = np.mean(cls[normal & (truth.dark_current * truth.gain < 0.05)] >= 0)
    lines.append("MASK from the darks: recall " + ", ".join(found) + f"; normal pixels "
                 f"flagged {false:.3%} (LOW_PEDESTAL needs a SUPERBIAS from other data)")
    from ..kernels.badpix_flat import FLAT_CLASSES

    flat_cls = fits.getdata(ancillary_path(paths[3], "flat_diagnostics"), "CLASS")
    found = [f"{name} {np.mean(flat_cls[truth.class_mask(name) & science] == k):.0%}"
             for k, name in enumerate(FLAT_CLASSES)]
    false = np.mean(flat_cls[normal] >= 0)
    lines.append("MASK from the flats: recall " + ", ".join(found)
                 + f"; normal pixels flagged {false:.3%}")
    return lines


PREP_REFERENCES = ("mask", "saturation", "superbias", "linearity", "dark", "readnoise", "gain")
#: Step-parameter defaults, taken from the prep engine (one place for them).
_PREP_DEFAULTS = {k: v for step in STEP_PARAMETERS.values() for k, v in step.items()}
#: prep parameters with a command-line flag (the dark's NFRAMES/GROUPGAP come from files).
PREP_PARAMS = tuple(k for k in _PREP_DEFAULTS if k not in ("dark_nframes", "dark_groupgap"))


def _reference_value(flag: str, value: str | None):
    """A reference flag's value: None, a number, or an existing file."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    if Path(value).is_dir():
        raise UsageError(f"--{flag} {value}: is a directory, not a reference file")
    if not Path(value).is_file():
        raise UsageError(f"--{flag} {value}: no such file")
    return value


def cmd_prep(args) -> int:
    """``daskref prep``: calibrate every input, write all products in one pass."""
    from ..io import products
    from ..prep import PrepError, prep_many

    outdir = Path(args.output)
    if outdir.exists() and not outdir.is_dir():
        raise UsageError(f"{outdir}: -o must be a directory")
    _check_writable(outdir)
    if not args.fits and not args.zarr:
        raise UsageError("--no-fits without --zarr would write nothing")
    refs = {name: _reference_value(name, getattr(args, name)) for name in PREP_REFERENCES}
    params = {name: getattr(args, name) for name in PREP_PARAMS}
    try:
        if args.backend == "jwst":
            from .. import api
            from ..prep.backend_jwst import prep_jwst

            params = {k: v for k, v in params.items() if k != "max_segments"}
            tasks = prep_jwst(args.files, steps=args.steps, outdir=outdir, refs=refs, **params)
            with _scheduler(args):
                api.compute(tasks, progress=not args.quiet)
            if not args.quiet:
                print(f"jwst Detector1Pipeline products in {outdir}")
            return 0
        results = prep_many(args.files, steps=args.steps, chunk_mb=args.chunk_mb,
                            spill_dir=args.spill_dir, **refs, **params)
    except (PrepError, ImportError) as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:  # a problem found while the graph is built: still exit 2
        if isinstance(exc, InputError):
            raise
        raise UsageError(str(exc)) from None
    with _scheduler(args):
        paths = products.write_products(results, outdir, fits_products=args.fits,
                                        zarr=args.zarr, save_ramp=args.save_calibrated_ramp,
                                        progress=not args.quiet)
    _report(args, paths)
    return 0


def _add_reference_options(p):
    r = p.add_argument_group("reference files of the calibration (FILE, or a number where noted)")
    r.add_argument("--mask", metavar="FILE", help="MASK reference (dq_init)")
    r.add_argument("--saturation", metavar="FILE|DN",
                   help="SATURATION reference, or one threshold in DN (saturation)")
    r.add_argument("--superbias", metavar="FILE", help="SUPERBIAS reference (superbias)")
    r.add_argument("--linearity", metavar="FILE", help="LINEARITY reference (linearity)")
    r.add_argument("--dark", metavar="FILE", help="DARK reference (dark_current)")
    r.add_argument("--readnoise", metavar="FILE|DN",
                   help="READNOISE reference or one CDS noise in DN (jump, rate)")
    r.add_argument("--gain", metavar="FILE|E/DN", help="GAIN reference or one gain (jump, rate)")


def _add_step_options(p):
    g = p.add_argument_group("step parameters")
    flag = argparse.BooleanOptionalAction

    def step(name, help, **kw):  # the default is the prep engine's
        _opt(g, name, default=_PREP_DEFAULTS[name], help=f"{help} (default %(default)s)", **kw)

    step("n_pix_grow_sat", "saturation: also flag pixels within this distance", type=int)
    step("odd_even_columns", "refpix: separate offsets for odd and even columns (near-IR)",
         action=flag)
    step("use_side_ref_pixels", "refpix: subtract the smoothed side reference signal "
         "(near-IR)", action=flag)
    step("side_smoothing_length", "refpix: rows in the side running median", type=int)
    step("side_gain", "refpix: side signal factor", type=float)
    step("odd_even_rows", "refpix: separate offsets for odd and even rows (MIRI)", action=flag)
    step("rejection_threshold", "jump: threshold in sigma (jwst_reffiles forced 100)",
         type=float)
    step("three_group_rejection_threshold", "jump: threshold with 3 usable groups",
         type=float)
    step("four_group_rejection_threshold", "jump: threshold with 4 usable groups", type=float)
    step("flag_4_neighbors", "jump: also flag the 4 neighbours of a jump", action=flag)
    step("max_jump_to_flag_neighbors", "jump: largest jump (sigma) whose neighbours are "
         "flagged", type=float)
    step("min_jump_to_flag_neighbors", "jump: smallest jump (sigma) whose neighbours are "
         "flagged", type=float)
    step("weighting", "ramp fitting weights", choices=["optimal", "unweighted"])
    step("max_segments", "ramp fitting: segments kept in the _fitopt product", type=int)


def _add_spill_option(g):
    _opt(g, "spill_dir", metavar="DIR", default=None,
         help="temporary storage for refpix on MIRI, NIRSpec/NIRISS and single-output "
              "subarrays, whose slabs wait there for the reference statistics "
              "(default: dask's temporary-directory or the system one; on a multi-node "
              "cluster give a directory all workers share)")


def _add_prep_options(p):
    _add_reference_options(p)
    _add_step_options(p)
    o = p.add_argument_group("outputs")
    _opt(o, "save_opt", action="store_true", help="also write <base>_fitopt.fits")
    _opt(o, "save_calibrated_ramp", action="store_true",
         help="with ramp fitting, also write the calibrated ramp <base>_ramp.fits")
    o.add_argument("--fits", action=argparse.BooleanOptionalAction, default=True,
                   help="write the FITS products (default; --no-fits with --zarr)")
    o.add_argument("--zarr", action="store_true",
                   help="also persist each result as a zarr store <base>_<step>.zarr")
    o.add_argument("--backend", choices=["daskref", "jwst"], default="daskref",
                   help="daskref (default) or the official jwst Detector1Pipeline")
    _add_spill_option(o)


def cmd_mkrefs(args) -> int:
    """``daskref mkrefs``: every reference file of a campaign, grouped, calibrated, named."""
    import os

    from ..orchestrate.config import default_config_text, load_config
    from ..orchestrate.run import (
        MkrefsError,
        execute,
        parse_tokens,
        plan,
        qa_missing,
        stale_temporaries,
    )
    from ..reftypes import REGISTRY, ParameterError
    from ..reftypes.plugins import PluginError, load_plugins

    if args.write_config:
        out = Path(args.write_config)
        out.write_text(default_config_text())
        print(f"wrote {out}")
        return 0
    cfgfile = args.cfgfile or os.environ.get("JWST_MKREFS_CONFIGFILE")
    try:
        # the plug-ins first (their sections and keys are then known to the config)
        load_plugins(load_config(cfgfile).data.get("plugin_dirs") or ())
        config = load_config(cfgfile, args.extracfgfile or (), args.params or (),
                             args.pp or (), args.pall or ())
        reflabels, files = parse_tokens(args.tokens, list(REGISTRY))
        output = dict(config.data["output"])
        for key in ("outrootdir", "outsubdir", "runID", "runIDNdigits", "ssbdir"):
            if getattr(args, key) is not None:
                output[key] = getattr(args, key)
        if args.skip_runID_ssbdir is not None:
            output["skip_runID_ssbdir"] = args.skip_runID_ssbdir
        config.data["output"] = output
        options = dict(newrunid=args.newrunID, force_redo_ref=args.force_redo_ref,
                       force_redo_strun=args.force_redo_strun, maxNref=args.maxNref,
                       maxNstrun=args.maxNstrun, chunk_mb=args.chunk_mb, qa=args.qa)
        the_plan = plan(config, reflabels, files, options=options)
    except (MkrefsError, ParameterError, PluginError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise UsageError(str(exc)) from None
    if args.onlyshow or args.verbose:
        for line in the_plan.lines():
            print(line)
    if args.onlyshow:
        return 0
    # before any work: where the files go must take them (a full disk shows up later)
    _check_writable(the_plan.dirs.basedir)
    if any(row["save"] for row in the_plan.prep):
        _check_writable(the_plan.dirs.ssbdir)
    todo = [j for j in the_plan.jobs if j.make]
    if not todo and all(f.path.exists() for f in the_plan.finals) and not qa_missing(the_plan):
        stale_temporaries(the_plan)  # (execute does it, in the run's log, when it runs)
        if not args.quiet:
            print(f"nothing to do: all {len(the_plan.jobs)} reference files exist "
                  f"in {the_plan.dirs.basedir} (--force_redo_ref remakes them)")
        return 0
    with _scheduler(args, config.data["cluster"]):
        result = execute(the_plan, progress=not args.quiet, spill_dir=args.spill_dir)
    if not args.quiet:
        for path in result["made"]:
            print(f"wrote {path}")
        for path in result["skipped"]:
            print(f"exists {path}")
        print(f"mkrefs: {len(result['made'])} files in {result['seconds']:.1f} s; "
              f"tables and log in {the_plan.dirs.basedir}")
        if result["qa"]:
            print(f"QA: {result['qa'][-1]}")
    return 0


def _add_mkrefs_options(p):
    p.add_argument("tokens", nargs="*", metavar="REFLABELS... FILES...",
                   help="reflabels (comma lists allowed) and the input files")
    c = p.add_argument_group("config (jwst_reffiles mkrefs names)")
    c.add_argument("-c", "--cfgfile", default=None,
                   help="config file (default $JWST_MKREFS_CONFIGFILE, else the built-in one)")
    c.add_argument("-e", "--extracfgfile", action="append", default=[],
                   help="config overlay (repeatable; keys must exist)")
    c.add_argument("-p", "--params", nargs=2, action="append", metavar=("P", "V"),
                   help="set top-level parameter P to V (YAML-typed)")
    c.add_argument("--pp", nargs=3, action="append", metavar=("SECTION", "P", "V"),
                   help="set parameter P of SECTION")
    c.add_argument("--pall", nargs=2, action="append", metavar=("P", "V"),
                   help="set P at top level and in every section that has it")
    c.add_argument("--write-config", metavar="FILE", default=None,
                   help="write the complete default config, commented, and exit")
    r = p.add_argument_group("run")
    r.add_argument("--onlyshow", action="store_true",
                   help="print the whole plan and create nothing")
    for name, helptext in (("outrootdir", "root output directory"),
                           ("outsubdir", "sub-directory and name component"),
                           ("runID", "run number, AUTO (the latest) or empty"),
                           ("ssbdir", "where calibrated products are kept")):
        r.add_argument(f"--{name}", default=None, help=helptext)
    r.add_argument("--runIDNdigits", type=int, default=None, help="digits of the run number")
    r.add_argument("-n", "--newrunID", action="store_true", help="with AUTO: a new run")
    r.add_argument("--skip_runID_ssbdir", action=argparse.BooleanOptionalAction, default=None,
                   help="share ssbdir across runs")
    r.add_argument("--force_redo_strun", "--force-redo-prep", dest="force_redo_strun",
                   action="store_true", help="recalibrate even where products exist")
    r.add_argument("--force_redo_ref", action="store_true",
                   help="remake reference files that exist")
    r.add_argument("--maxNstrun", type=int, default=None, help="at most this many calibrations")
    r.add_argument("--maxNref", type=int, default=None, help="at most this many reference files")
    r.add_argument("-d", "--debug", action="count", default=0, help="debug messages")
    r.add_argument("--qa", action=argparse.BooleanOptionalAction, default=True,
                   help="QA (_qa.json, _qa.png) of every file and qa_index.html (default)")
    _add_spill_option(r)


def _report(args, paths):
    if not args.quiet:
        for p in paths:
            print(f"wrote {p}")


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``daskref`` command."""
    parser = argparse.ArgumentParser(
        prog="daskref",
        description="JWST detector calibration reference files from ramp campaigns, with Dask.",
    )
    parser.add_argument("--version", action="version", version=f"daskref {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from ..reftypes import REGISTRY

    for rt in REGISTRY.values():
        p = sub.add_parser(rt.command, help=rt.summary, description=rt.summary)
        if len(rt.input_flags) > 1:  # several kinds of input (the combined MASK)
            for flag in rt.input_flags:
                p.add_argument(f"--{flag}", nargs="+", dest=f"files_{flag}", default=[],
                               metavar="FILE", help=f"the {flag} (uncal or calibrated ramps, "
                               "or _rate/_rateints files for flats)")
        elif rt.input_flags:
            p.add_argument(f"--{rt.input_flag}", nargs="+", dest="files", default=[],
                           metavar="FILE", help=f"the {rt.inputs} (uncal or calibrated ramps)")
        else:
            p.add_argument("files", nargs="*", metavar="FILES",
                           help=f"the {rt.inputs} (uncal or calibrated ramps)")
        p.add_argument("-o", "--output", required=True, help="output .fits")
        if rt.ssbsteps is not None:
            steps = rt.ssbsteps + (f"; MIRI {rt.ssbsteps_miri}" if rt.ssbsteps_miri else "")
            p.add_argument("--steps", default=None,
                           help=f"calibration of the inputs, ssbsteps syntax (default {steps}; "
                                "dq_init only with --mask); steps an input had are not rerun")
            _add_reference_options(p)
            _add_step_options(p)
            _add_spill_option(p.add_argument_group("calibration"))
        _add_reftype_options(p, rt)
        _add_qa_options(p)
        _add_common(p)
        p.set_defaults(func=cmd_reftype, reftype=rt)

    p = sub.add_parser("qa", help="QA of reference files: <name>_qa.json and _qa.png beside "
                                  "each (image, histogram, per-amplifier statistics, flags)")
    p.add_argument("files", nargs="*", metavar="FILES", help="reference files")
    p.add_argument("--compare", metavar="PREVIOUS.fits", default=None,
                   help="a previous file of the same type: differences, changed pixels")
    p.add_argument("--index", metavar="INDEX.html", default=None,
                   help="also write one self-contained HTML page of them all")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.set_defaults(func=cmd_qa)

    p = sub.add_parser("inventory", help="table of the inputs' headers")
    p.add_argument("files", nargs="*", metavar="FILES")
    p.add_argument("--format", choices=["table", "csv"], default="table")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.set_defaults(func=cmd_inventory, quiet=False)

    p = sub.add_parser("simulate", help="write simulated uncal exposures with known truth")
    p.add_argument("outdir", help="output directory")
    _opt(p, "n_files", type=int, default=5, help="number of exposures (default 5)")
    p.add_argument("--nints", type=int, default=2)
    p.add_argument("--ngroups", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kind", choices=["dark", "flat"], default="dark",
                   help="darks, or lamp flats of the same detector truth (default dark)")
    p.add_argument("--prefix", default=None, help="file name prefix (default: the kind)")
    _opt(p, "fill_fraction", type=float, default=0.5,
         help="flats: fraction of the well a typical pixel reaches (default 0.5)")
    _opt(p, "exp_type", default=None, help="EXP_TYPE (default by instrument and kind, "
         "e.g. NRC_DARK, NRC_FLAT; NRC_LED, MIR_FLATIMAGE...)")
    p.add_argument("--instrument", default="NIRCAM", help="NIRCAM (2048x2048) or MIRI (1024x1032)")
    p.add_argument("--detector", default=None)
    p.add_argument("--subarray", default="FULL")
    p.add_argument("--substrt", type=int, nargs=2, default=(1, 1), metavar=("X", "Y"))
    p.add_argument("--subsize", type=int, nargs=2, default=None, metavar=("NX", "NY"))
    p.add_argument("--readpatt", default=None)
    p.add_argument("--readnoise", type=float, default=14.0, help="mean CDS noise, DN")
    p.add_argument("--bias", type=float, default=12000.0, help="mean bias, DN")
    _opt(p, "dark_current", type=float, default=0.005, help="DN/s")
    p.add_argument("--flux", type=float, default=0.0, help="illumination DN/s (flats)")
    _opt(p, "cosmic_ray_rate", type=float, default=0.0, help="hits per pixel per second")
    _opt(p, "amp_offset", type=float, default=0.0, help="per-group amplifier offsets, DN")
    _opt(p, "odd_even_offset", type=float, default=0.0, help="odd/even column offsets, DN")
    _opt(p, "row_noise", type=float, default=0.0, help="row-correlated noise, DN")
    _opt(p, "hot_fraction", type=float, default=None,
         help="fraction of hot pixels (default: make_truth's, 0.001)")
    _opt(p, "bad_pixels", action="store_true",
         help="inject every bad-pixel class (warm, noisy, RC, inverse RC, telegraph, "
              "low pedestal, saturated; dead, low QE, open) at daskref.simulate's "
              "BAD_PIXEL_DEFAULTS and FLAT_DEFECT_DEFAULTS fractions; the truth file's "
              "PIXEL_CLASS has the classes")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("demo", help="simulate a small campaign of darks and flats and build "
                                    "READNOISE, SUPERBIAS, DARK and the MASK with mkrefs")
    p.add_argument("outdir", nargs="?", default="daskref-demo", help="directory (default "
                   "./daskref-demo)")
    _opt(p, "n_files", type=int, default=8, help="number of darks (default 8)")
    _opt(p, "full_frame", action="store_true", help="2048x2048 darks instead of 320x320")
    p.add_argument("--seed", type=int, default=0)
    _add_common(p, outputs=False)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("mkrefs", help="every reference file of a campaign from a config: "
                                      "grouped, calibrated, named, resumable")
    _add_mkrefs_options(p)
    _add_common(p, outputs=False)
    p.set_defaults(func=cmd_mkrefs)

    p = sub.add_parser("prep", help="run calwebb_detector1 steps (ssbsteps) on ramps, "
                                    "writing <base>_<step>.fits or _rate/_rateints")
    p.add_argument("files", nargs="*", metavar="FILES", help="ramp files (uncal or partly "
                   "calibrated, e.g. _refpix.fits)")
    p.add_argument("--steps", required=True,
                   help="steps: 'dq_init,saturation' (any order), 'refpix-' (start through "
                        "refpix), 'jump+' (jump to the end); ramp_fit = rate")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    _add_prep_options(p)
    _add_common(p, outputs=False)
    p.set_defaults(func=cmd_prep)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``daskref`` command; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "mkrefs":  # reflabels and files may stand between the options
        args.tokens += [e for e in extra if not e.startswith("-")]
        extra = [e for e in extra if e.startswith("-")]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    level = logging.WARNING - 10 * getattr(args, "verbose", 0)
    if getattr(args, "debug", 0):
        level = logging.DEBUG
    logging.basicConfig(level=level, format="daskref: %(message)s")
    rt = getattr(args, "reftype", None)
    if rt is not None and len(rt.input_flags) > 1:
        args.files = {f: getattr(args, f"files_{f}") for f in rt.input_flags}
        if not any(args.files.values()):
            print(f"daskref {args.command}: error: no input files given (--"
                  f"{' / --'.join(rt.input_flags)})", file=sys.stderr)
            return 2
    if hasattr(args, "files") and not args.files and args.command != "mkrefs":
        print(f"daskref {args.command}: error: no input files given", file=sys.stderr)
        return 2
    # SIGTERM (a batch system's, kill) ends the run as Ctrl-C does: temporaries removed,
    # the cluster's jobs cancelled, one line, no partial file
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except (InputError, MetadataError, UsageError) as exc:
        print(f"daskref {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OutputError as exc:  # the disk full, a quota: during the run, not a usage error
        note = f"; {exc.note}" if exc.note else ""
        print(f"daskref {args.command}: error: {exc}; no partial file left{note}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        signum = exc.args[0] if exc.args and isinstance(exc.args[0], int) else signal.SIGINT
        rerun = "; a rerun makes the rest" if args.command == "mkrefs" else ""
        print(f"daskref {args.command}: interrupted ({signal.Signals(signum).name}); "
              f"no partial file left{rerun}", file=sys.stderr)
        return 128 + signum
    except Exception as exc:  # one readable line; -vv for the traceback
        if getattr(args, "verbose", 0) >= 2:
            raise
        print(f"daskref {args.command}: error: {type(exc).__name__}: {exc} "
              "(run with -vv for details)", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _terminate(signum, frame):
    raise KeyboardInterrupt(signum)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
