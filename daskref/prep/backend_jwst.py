"""Optional backend: run the same prep with the official ``jwst`` Detector1Pipeline.

The pipeline runs one exposure per ``dask.delayed`` task (it reads whole files into
memory, so the task, not the chunk, is the unit). Steps are selected with the
pipeline's own ``skip`` flags, reference files with its ``override_<reftype>``
arguments; references not given come from CRDS as usual. The products have the same
names as daskref's (``<base>_<step>.fits``, ``<base>_rate.fits``...), because
daskref follows the pipeline's naming.

``jwst`` is heavy and is not a dependency of daskref: install it
(``pip install jwst``) to use this backend.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from .steps import PrepError, parse_steps, steps_to_run

#: Every step of calwebb_detector1 (current jwst), in its step_defs order.
DETECTOR1_STEPS: tuple[str, ...] = (
    "group_scale", "dq_init", "emicorr", "saturation", "ipc", "superbias", "refpix", "rscd",
    "firstframe", "lastframe", "linearity", "dark_current", "reset", "persistence",
    "charge_migration", "jump", "clean_flicker_noise", "ramp_fit", "gain_scale",
)

#: Reference arguments of ``prep`` -> the ``override_*`` argument of each jwst step.
OVERRIDES: dict[str, dict[str, str]] = {
    "dq_init": {"mask": "override_mask"},
    "saturation": {"saturation": "override_saturation"},
    "superbias": {"superbias": "override_superbias"},
    "linearity": {"linearity": "override_linearity"},
    "dark_current": {"dark": "override_dark"},
    "jump": {"readnoise": "override_readnoise", "gain": "override_gain"},
    "ramp_fit": {"readnoise": "override_readnoise", "gain": "override_gain"},
}

#: daskref step parameters the jwst steps take under the same name.
PARAMETERS: dict[str, tuple[str, ...]] = {
    "saturation": ("n_pix_grow_sat",),
    "refpix": ("odd_even_columns", "use_side_ref_pixels", "side_smoothing_length",
               "side_gain", "odd_even_rows"),
    "jump": ("rejection_threshold", "three_group_rejection_threshold",
             "four_group_rejection_threshold", "flag_4_neighbors",
             "max_jump_to_flag_neighbors", "min_jump_to_flag_neighbors"),
    "ramp_fit": ("weighting", "save_opt"),
}

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
    """The ``Detector1Pipeline.call`` keyword arguments that run exactly ``to_run``.

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
        Step parameters by daskref name; those jwst knows are passed to their step.
    output_dir : path-like
        Where the pipeline writes.
    last_step : str, optional
        The step whose result names the product (default: the last of ``to_run``).

    Returns
    -------
    dict
        ``{"steps": {name: {"skip": bool, ...}}, "save_results": bool, "output_dir": str}``.
        Every calwebb_detector1 step not in ``to_run`` (including those jwst_reffiles
        does not know, such as emicorr or clean_flicker_noise) is skipped; the last
        step saves its result, or, for ramp fitting, the pipeline saves ``_rate`` and
        ``_rateints`` itself.

    Raises
    ------
    daskref.prep.PrepError
        A reference given as a number or an array: the pipeline needs files.
    """
    refs = {k: v for k, v in (refs or {}).items() if v is not None}
    params = dict(params or {})
    for name, value in refs.items():
        if not isinstance(value, (str, os.PathLike)):
            raise PrepError(f"the jwst backend needs a reference file for {name}, "
                            f"not {type(value).__name__}; give --{name} FILE")
    run = [jwst_name(s) for s in to_run]
    steps: dict[str, dict] = {}
    for name in DETECTOR1_STEPS:
        cfg: dict = {"skip": name not in run}
        if name in run:
            for arg, override in OVERRIDES.get(name, {}).items():
                if arg in refs:
                    cfg[override] = os.fspath(refs[arg])
            for p in PARAMETERS.get(name, ()):
                if p in params and params[p] is not None:
                    cfg[p] = params[p]
        steps[name] = cfg
    last = jwst_name(last_step) if last_step else (run[-1] if run else None)
    save_pipeline = last == "ramp_fit" and "ramp_fit" in run
    if last is not None and last in run and not save_pipeline:
        steps[last]["save_results"] = True
    return {"steps": steps, "save_results": save_pipeline, "output_dir": os.fspath(output_dir)}


def _require_jwst():
    try:
        from jwst.pipeline import Detector1Pipeline
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return Detector1Pipeline


def _run_one(path: str, config: dict) -> str:
    Detector1Pipeline = _require_jwst()
    Detector1Pipeline.call(path, **config)
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
        Reference files (see :func:`pipeline_config`).
    **params
        Step parameters (see :func:`pipeline_config`).

    Returns
    -------
    list of dask.delayed.Delayed
        Each computes to its input path once the pipeline has written the products.

    Raises
    ------
    ImportError
        When jwst is not installed (raised here, before anything runs).
    """
    import dask

    from daskref.io.fits import scan

    _require_jwst()
    Path(outdir).mkdir(parents=True, exist_ok=True)
    tasks = []
    for info in scan(paths):
        attrs = dict(info.header) | {"inputs": [info.path]}
        requested = parse_steps(steps, attrs)
        to_run = steps_to_run(requested, attrs)
        config = pipeline_config(to_run, refs=refs, params=params, output_dir=outdir,
                                 last_step=requested[-1] if to_run else None)
        tasks.append(dask.delayed(_run_one, pure=False)(info.path, config))
    return tasks
