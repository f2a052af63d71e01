"""Optional backend: run the same prep with the official ``jwst`` Detector1Pipeline.

The pipeline runs one exposure per ``dask.delayed`` task (it reads whole files into
memory, so the task, not the chunk, is the unit). Steps are selected with the
pipeline's own ``skip`` flags, reference files with its ``override_<reftype>``
arguments, step parameters with daskref's values (and defaults); references not
given come from CRDS when CRDS is configured. The products have the same names as
daskref's (``<base>_<step>.fits``, ``<base>_rate.fits``...), because daskref follows
the pipeline's naming.

Running without CRDS
--------------------
The pipeline is instantiated with explicit parameters and run on an opened
``RampModel``, not started with ``Detector1Pipeline.call(path)``: ``call`` asks CRDS
for step-parameter references (``pars-*``, unless ``STPIPE_DISABLE_CRDS_STEPPARS``
is set) and reads the input's metadata from an ``ASDF`` extension that files written
without stdatamodels (daskref's simulations, for one) do not have. Reference types
daskref's steps never use are overridden with ``N/A``: ``refpix`` (NIRSpec IRS2
only), ``sirskernel`` (daskref's refpix is the running-median algorithm) and, when
no SUPERBIAS is given, the saturation step's optional ``superbias``.

When every reference the steps need is given and CRDS is not configured (neither
``CRDS_PATH`` nor ``CRDS_SERVER_URL`` set), nothing is looked up, but stpipe still
records the CRDS context in the products, and the CRDS client ends the process
(``sys.exit``) when it can reach neither a server nor a cache configuration. Each
task then runs with ``CRDS_PATH`` pointing at a minimal cache holding only a
configuration (``config/jwst/server_config``) and ``CRDS_CONTEXT`` set to
:data:`OFFLINE_CONTEXT` (the name recorded as ``CRDS_CTX``); the environment is
restored afterwards. A reference missing in that situation is an error raised by
:func:`prep_jwst` before anything runs.

``jwst`` is heavy and is not a dependency of daskref: install it
(``pip install jwst``) to use this backend.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path

from .steps import PrepError, parse_steps, steps_to_run

#: Every step of calwebb_detector1 (jwst 3.0), in its step_defs order. Steps of the
#: installed jwst that are not listed here are skipped as well.
DETECTOR1_STEPS: tuple[str, ...] = (
    "group_scale", "dq_init", "emicorr", "saturation", "ipc", "superbias", "refpix", "rscd",
    "firstframe", "lastframe", "linearity", "dark_current", "reset", "persistence",
    "charge_migration", "jump", "picture_frame", "clean_flicker_noise", "ramp_fit",
    "gain_scale",
)

#: Reference arguments of ``prep`` -> the ``override_*`` argument of each jwst step.
OVERRIDES: dict[str, dict[str, str]] = {
    "dq_init": {"mask": "override_mask"},
    "saturation": {"saturation": "override_saturation", "superbias": "override_superbias"},
    "superbias": {"superbias": "override_superbias"},
    "linearity": {"linearity": "override_linearity"},
    "dark_current": {"dark": "override_dark"},
    "jump": {"readnoise": "override_readnoise", "gain": "override_gain"},
    "ramp_fit": {"readnoise": "override_readnoise", "gain": "override_gain"},
}

#: Step settings that make a jwst step do what daskref's does, whatever the references:
#: reference types daskref does not use are ``N/A`` (the saturation step's superbias
#: only when none is given), refpix uses the running-median side correction.
FIXED: dict[str, dict[str, str]] = {
    "saturation": {"override_superbias": "N/A"},
    "refpix": {"override_refpix": "N/A", "override_sirskernel": "N/A",
               "refpix_algorithm": "median"},
}

#: daskref step parameters the jwst steps take under the same name (``maximum_cores``
#: is jwst's only: processes for jump detection and ramp fitting).
PARAMETERS: dict[str, tuple[str, ...]] = {
    "saturation": ("n_pix_grow_sat",),
    "refpix": ("odd_even_columns", "use_side_ref_pixels", "side_smoothing_length",
               "side_gain", "odd_even_rows"),
    "jump": ("rejection_threshold", "three_group_rejection_threshold",
             "four_group_rejection_threshold", "flag_4_neighbors",
             "max_jump_to_flag_neighbors", "min_jump_to_flag_neighbors", "maximum_cores"),
    "ramp_fit": ("save_opt", "maximum_cores"),
}

#: daskref parameters jwst has no equivalent for; only their defaults are accepted.
DASKREF_ONLY: dict[str, object] = {"weighting": "optimal", "dark_nframes": None,
                                   "dark_groupgap": None, "max_segments": None}

#: The CRDS context recorded in products made without CRDS.
OFFLINE_CONTEXT = "jwst_daskref-offline.pmap"

INSTALL_HINT = ("the jwst backend needs the 'jwst' package (pip install jwst, or "
                "pip install 'daskref[jwst]'); use --backend daskref otherwise")


def jwst_name(step: str) -> str:
    """Map a daskref step name to calwebb_detector1's (``rate`` -> ``ramp_fit``)."""
    return "ramp_fit" if step == "rate" else step


def pipeline_config(
    to_run: Sequence[str],
    *,
    refs: Mapping[str, object] | None = None,
    params: Mapping[str, object] | None = None,
    output_dir: str | os.PathLike = ".",
    last_step: str | None = None,
) -> dict:
    """The ``Detector1Pipeline`` keyword arguments that run exactly ``to_run``.

    A pure function (no jwst import), so it can be checked without the pipeline.

    Parameters
    ----------
    to_run : sequence of str
        daskref step names to run (``rate`` for ramp fitting), e.g. from
        :func:`daskref.prep.steps.steps_to_run`.
    refs : mapping, optional
        Reference files by ``prep`` argument name (``mask``, ``saturation``,
        ``superbias``, ``linearity``, ``dark``, ``readnoise``, ``gain``); None values
        are left to CRDS.
    params : mapping, optional
        Step parameters by daskref name; those jwst knows are passed to their step
        (``maximum_cores`` as a string). ``weighting`` may only be ``optimal`` (the
        only weighting of jwst's ramp fitting) and the daskref-only
        ``dark_nframes``, ``dark_groupgap``, ``max_segments`` only None.
    output_dir : path-like
        Where the pipeline writes.
    last_step : str, optional
        The step whose result names the product (default: the last of ``to_run``).

    Returns
    -------
    dict
        ``{"steps": {name: {"skip": bool, ...}}, "save_results": bool, "output_dir": str}``.
        Every calwebb_detector1 step not in ``to_run`` (including those jwst_reffiles
        does not know, such as emicorr or clean_flicker_noise) is skipped; the steps
        that run get the overrides of :data:`FIXED`; the last step saves its result,
        or, for ramp fitting, the pipeline saves ``_rate`` and ``_rateints`` itself.

    Raises
    ------
    daskref.prep.PrepError
        A reference given as a number or an array (the pipeline needs files), or a
        parameter value jwst cannot reproduce.
    """
    refs = {k: v for k, v in (refs or {}).items() if v is not None}
    params = dict(params or {})
    for name, value in refs.items():
        if not isinstance(value, (str, os.PathLike)):
            raise PrepError(f"the jwst backend needs a reference file for {name}, "
                            f"not {type(value).__name__}; give --{name} FILE")
    for name, allowed in DASKREF_ONLY.items():
        if params.get(name) not in (None, allowed):
            raise PrepError(f"{name}={params[name]!r} has no equivalent in the jwst pipeline"
                            + (f" (only {allowed!r})" if allowed is not None else "")
                            + "; use --backend daskref")
    run = [jwst_name(s) for s in to_run]
    steps: dict[str, dict] = {}
    for name in DETECTOR1_STEPS:
        cfg: dict = {"skip": name not in run}
        if name in run:
            cfg.update(FIXED.get(name, {}))
            for arg, override in OVERRIDES.get(name, {}).items():
                if arg in refs:
                    cfg[override] = os.fspath(refs[arg])
            for p in PARAMETERS.get(name, ()):
                if p in params and params[p] is not None:
                    cfg[p] = str(params[p]) if p == "maximum_cores" else params[p]
        steps[name] = cfg
    last = jwst_name(last_step) if last_step else (run[-1] if run else None)
    save_pipeline = last == "ramp_fit" and "ramp_fit" in run
    if last is not None and last in run and not save_pipeline:
        steps[last]["save_results"] = True
    return {"steps": steps, "save_results": save_pipeline, "output_dir": os.fspath(output_dir)}


def crds_configured() -> bool:
    """Whether CRDS may be asked for references (``CRDS_PATH`` or ``CRDS_SERVER_URL`` set)."""
    return bool(os.environ.get("CRDS_PATH") or os.environ.get("CRDS_SERVER_URL"))


# --------------------------------------------------------------------------- offline CRDS

_OFFLINE_LOCK = threading.Lock()
_offline_users = 0
_offline_saved: dict[str, str | None] = {}
_offline_dir: str | None = None


def _offline_cache() -> str:
    """A per-process CRDS cache holding only a configuration (removed at exit)."""
    global _offline_dir
    if _offline_dir is None:
        root = tempfile.mkdtemp(prefix="daskref-crds-offline-")
        atexit.register(shutil.rmtree, root, True)
        config = Path(root, "config", "jwst")
        config.mkdir(parents=True)
        info = {"observatory": "jwst", "operational_context": OFFLINE_CONTEXT,
                "edit_context": OFFLINE_CONTEXT, "last_synced": "never (daskref offline)",
                "bad_files_list": [], "bad_files": "", "force_remote_mode": False}
        (config / "server_config").write_text(repr(info))
        _offline_dir = root
    return _offline_dir


@contextmanager
def offline_crds() -> Iterator[None]:
    """Run the pipeline without CRDS: ``CRDS_PATH``/``CRDS_CONTEXT`` set for the block.

    Thread-safe: the environment is set by the first task and restored when the last
    one ends. Only for runs in which every reference is overridden (the CRDS client
    then reads nothing but the configuration). The CRDS client caches its
    configuration per process, so a process that ran offline should not later ask
    CRDS for references.
    """
    global _offline_users, _offline_saved
    env = {"CRDS_PATH": None, "CRDS_CONTEXT": OFFLINE_CONTEXT, "CRDS_MODE": "local"}
    with _OFFLINE_LOCK:
        if _offline_users == 0:
            env["CRDS_PATH"] = _offline_cache()
            _offline_saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
        _offline_users += 1
    try:
        yield
    finally:
        with _OFFLINE_LOCK:
            _offline_users -= 1
            if _offline_users == 0:
                for k, v in _offline_saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v


# --------------------------------------------------------------------------- running


def _require_jwst():
    try:
        from jwst.pipeline import Detector1Pipeline
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return Detector1Pipeline


def _run_one(path: str, config: dict, offline: bool) -> str:
    """Run Detector1Pipeline on one exposure (the body of a ``prep_jwst`` task)."""
    Detector1Pipeline = _require_jwst()
    from stdatamodels.jwst import datamodels

    known = list(Detector1Pipeline.step_defs)
    wanted = [n for n, c in config["steps"].items() if not c.get("skip", False)]
    absent = [n for n in wanted if n not in known]
    if absent:
        raise PrepError(f"{path}: this jwst has no step(s) {absent}")
    steps = {n: config["steps"].get(n, {"skip": True}) for n in known}
    with (offline_crds() if offline else nullcontext()), datamodels.RampModel(path) as model:
        model.meta.filename = Path(path).name  # names the products
        pipeline = Detector1Pipeline(**{**config, "steps": steps})
        result = pipeline.run(model)
        if result is not None and result is not model:
            result.close()
    return path


def prep_jwst(
    paths: Sequence[str | os.PathLike],
    *,
    steps: str | Sequence[str],
    outdir: str | os.PathLike,
    refs: Mapping[str, object] | None = None,
    **params,
):
    """Lazy Detector1Pipeline runs, one ``dask.delayed`` task per exposure.

    Parameters
    ----------
    paths : sequence of path-like
        Input exposures.
    steps : str or sequence of str
        ``ssbsteps`` request; for each input only the steps its ``S_*`` keywords do
        not mark COMPLETE run.
    outdir : path-like
        Output directory of the pipeline products.
    refs : mapping, optional
        Reference files (see :func:`pipeline_config`). Without CRDS configured
        (``CRDS_PATH`` or ``CRDS_SERVER_URL``), every reference the steps need must
        be given.
    **params
        Step parameters by daskref name (see :func:`pipeline_config`), with daskref's
        defaults for those not given (so ``n_pix_grow_sat`` is 0, not jwst's 1), and
        ``maximum_cores`` (jwst only: ``"1"`` (default), a number, ``"half"``,
        ``"quarter"`` or ``"all"``; processes of jump detection and ramp fitting).

    Returns
    -------
    list of dask.delayed.Delayed
        Each computes to its input path once the pipeline has written the products.

    Raises
    ------
    ImportError
        When jwst is not installed (raised here, before anything runs).
    TypeError
        An unknown step parameter.
    daskref.prep.MissingReferenceError
        CRDS is not configured and a step that has to run lacks its reference.
    daskref.prep.PrepError
        See :func:`pipeline_config`.
    """
    import dask

    from daskref.io.fits import scan

    from .engine import REFTYPES, STEP_PARAMETERS, MissingReferenceError, check_references

    _require_jwst()
    defaults = {k: v for p in STEP_PARAMETERS.values() for k, v in p.items()}
    unknown = set(params) - set(defaults) - {"maximum_cores"}
    if unknown:
        raise TypeError(f"prep_jwst() got unknown step parameter(s) {sorted(unknown)}")
    params = {k: v for k, v in defaults.items() if k not in DASKREF_ONLY} | {
        k: v for k, v in params.items() if v is not None}
    refs = {k: v for k, v in (refs or {}).items() if v is not None}
    unknown = set(refs) - set(REFTYPES)
    if unknown:
        raise TypeError(f"unknown reference argument(s): {sorted(unknown)}")
    use_crds = crds_configured()
    Path(outdir).mkdir(parents=True, exist_ok=True)
    tasks = []
    for info in scan(paths):
        attrs = dict(info.header) | {"inputs": [info.path]}
        requested = parse_steps(steps, attrs)
        to_run = steps_to_run(requested, attrs)
        config = pipeline_config(to_run, refs=refs, params=params, output_dir=outdir,
                                 last_step=requested[-1] if to_run else None)
        try:
            check_references(to_run, refs, str(info.path))
            offline = not use_crds
        except MissingReferenceError as exc:
            if not use_crds:
                raise MissingReferenceError(
                    f"{exc}; or configure CRDS (CRDS_PATH, CRDS_SERVER_URL) so that the "
                    f"pipeline can fetch it") from None
            offline = False
        tasks.append(dask.delayed(_run_one, pure=False)(info.path, config, offline))
    return tasks
