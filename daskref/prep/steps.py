"""Step orders of calwebb_detector1 and the ``ssbsteps`` request syntax.

jwst_reffiles asks for calibrated inputs with an ``ssbsteps`` string per input set.
daskref reads the same syntax:

``"dq_init,saturation,superbias"``
    An explicit comma list. Order does not matter; the steps come back in pipeline
    order.
``"refpix-"``
    Every step from the start of the instrument's list through ``refpix``.
``"refpix+"``
    ``refpix`` and every step after it (jwst_reffiles documents this form but calls a
    function that does not exist; daskref implements it).

Names are case-insensitive; ``ramp_fit`` is accepted for ``rate`` (the step's
name in the pipeline) and ``dark`` for ``dark_current`` (the name jwst_reffiles'
documentation uses). Which of the requested steps still have to run is read from
the input's ``S_*`` status keywords (:func:`steps_to_run`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from daskref.algorithms.steps._common import STEP_KEYWORDS, is_done

log = logging.getLogger("daskref.prep")

#: Step order of calwebb_detector1 for the near-IR imagers (jwst_reffiles' list).
NIR_STEPS: tuple[str, ...] = (
    "group_scale", "dq_init", "saturation", "ipc", "superbias", "refpix", "linearity",
    "persistence", "dark_current", "jump", "rate",
)
#: NIRSpec: the near-IR order without persistence.
NIRSPEC_STEPS: tuple[str, ...] = tuple(s for s in NIR_STEPS if s != "persistence")
#: MIRI order: no superbias, firstframe/lastframe/rscd, refpix after dark_current.
MIRI_STEPS: tuple[str, ...] = (
    "group_scale", "dq_init", "saturation", "ipc", "firstframe", "lastframe", "linearity",
    "rscd", "dark_current", "refpix", "jump", "rate",
)

#: Other names accepted for a step.
ALIASES: dict[str, str] = {"ramp_fit": "rate", "dark": "dark_current"}

#: Output-name suffix of each step's product, as calwebb_detector1 names the saved
#: result of a step (the step's alias); ramp fitting writes ``rate``/``rateints``
#: (and ``fitopt``). The standalone steps would use ``<class>step`` (``dqinitstep``).
SUFFIXES: dict[str, str] = {s: s for s in STEP_KEYWORDS} | {"rate": "rate"}

#: Steps daskref cannot run itself (group_scale only runs when a rescale is due).
NOT_IMPLEMENTED = frozenset({"ipc", "persistence", "rscd"})


class PrepError(ValueError):
    """A calibration-prep request that cannot be honoured (checked before any IO)."""


class UnknownStepError(PrepError):
    """A step name not in the instrument's calwebb_detector1 list."""


class StepNotImplementedError(PrepError):
    """A step daskref does not implement would have to run."""


def pipeline_steps(instrument: str | Mapping | None) -> tuple[str, ...]:
    """The calwebb_detector1 step order for an instrument.

    Parameters
    ----------
    instrument : str, mapping or None
        ``INSTRUME`` value (NIRCAM, NIRISS, FGS, NIRSPEC, MIRI), or header
        attributes holding it. None or unknown: the near-IR order.

    Returns
    -------
    tuple of str
    """
    if isinstance(instrument, Mapping):
        instrument = instrument.get("INSTRUME")
    name = str(instrument or "").strip().upper()
    if name == "MIRI":
        return MIRI_STEPS
    if name == "NIRSPEC":
        return NIRSPEC_STEPS
    return NIR_STEPS


def _canonical(name: str, order: tuple[str, ...], instrument) -> str:
    step = name.strip().lower()
    step = ALIASES.get(step, step)
    if step not in order:
        label = str(instrument or "NIR").upper() if not isinstance(instrument, Mapping) else (
            str(instrument.get("INSTRUME", "NIR")).upper())
        raise UnknownStepError(
            f"unknown calibration step {name.strip()!r} for {label}; valid steps, in "
            f"pipeline order: {', '.join(order)} (ramp_fit = rate)"
        )
    return step


def parse_steps(spec: str | Iterable[str], instrument: str | Mapping | None = None
                ) -> tuple[str, ...]:
    """Parse an ``ssbsteps`` request into steps in pipeline order.

    Parameters
    ----------
    spec : str or iterable of str
        ``"a,b,c"`` (any order), ``"step-"`` (start through ``step``), ``"step+"``
        (``step`` to the end), or an iterable of step names.
    instrument : str or mapping, optional
        ``INSTRUME`` (or header attributes), selecting the step list.

    Returns
    -------
    tuple of str
        Canonical step names (``rate`` for ramp fitting), pipeline order, no
        duplicates.

    Raises
    ------
    UnknownStepError
        For an empty request or a name not in the instrument's list; the message lists
        the valid steps.

    Examples
    --------
    >>> parse_steps("superbias, dq_init")
    ('dq_init', 'superbias')
    >>> parse_steps("saturation-")
    ('group_scale', 'dq_init', 'saturation')
    >>> parse_steps("jump+")
    ('jump', 'rate')
    """
    order = pipeline_steps(instrument)
    if isinstance(spec, str):
        text = spec.strip()
        if text.endswith(("-", "+")) and "," not in text:
            at = order.index(_canonical(text[:-1], order, instrument))
            span = order[: at + 1] if text.endswith("-") else order[at:]
            return _without_unimplemented(span, text)
        names = [n for n in text.split(",") if n.strip()]
    else:
        names = [str(n) for n in spec if str(n).strip()]
    if not names:
        raise UnknownStepError(
            f"no calibration step requested; valid steps: {', '.join(order)}"
        )
    wanted = {_canonical(n, order, instrument) for n in names}
    return tuple(s for s in order if s in wanted)


def _without_unimplemented(span: tuple[str, ...], text: str) -> tuple[str, ...]:
    """A range request leaves out the steps daskref does not implement, with a warning.

    ``refpix-`` on NIRCam spans ``ipc``, which the pipeline skips by default, and
    ``jump-`` spans ``persistence``; neither matters for dark and flat reference
    data. Asked for by name, they are an error (:func:`check_implemented`).
    """
    left_out = [s for s in span if s in NOT_IMPLEMENTED]
    if left_out:
        log.warning("%s: leaving out %s, which daskref does not implement "
                    "(name them explicitly with --backend jwst to run them)",
                    text, ", ".join(left_out))
    return tuple(s for s in span if s not in NOT_IMPLEMENTED)


def completed_steps(attrs: Mapping) -> tuple[str, ...]:
    """Steps whose ``S_*`` keyword in ``attrs`` is ``COMPLETE``, in pipeline order."""
    return tuple(s for s in pipeline_steps(attrs) if is_done(attrs, s))


def steps_to_run(requested: str | Iterable[str], attrs: Mapping) -> tuple[str, ...]:
    """The requested steps the input has not had yet.

    Parameters
    ----------
    requested : str or iterable of str
        An ``ssbsteps`` request (:func:`parse_steps`).
    attrs : mapping
        The input's header attributes: ``INSTRUME`` and the ``S_*`` status keywords
        (a step counts as done when its keyword is ``COMPLETE``).

    Returns
    -------
    tuple of str
        Requested steps not yet done, in pipeline order (possibly empty).

    Notes
    -----
    A step that is done but was not requested is only logged as a warning, as
    jwst_reffiles does: the input is used as it is.
    """
    wanted = parse_steps(requested, attrs)
    done = completed_steps(attrs)
    extra = [s for s in done if s not in wanted]
    if extra:
        log.warning(
            "%s: already calibrated with %s, which %s not requested; using it as it is",
            _label(attrs), ", ".join(extra), "was" if len(extra) == 1 else "were",
        )
    return tuple(s for s in wanted if s not in done)


def _label(attrs: Mapping) -> str:
    inputs = attrs.get("inputs")
    if isinstance(inputs, (list, tuple)) and inputs:
        return str(inputs[0])
    return "input"


def frame_divisor(attrs: Mapping) -> int | None:
    """``FRMDIVSR`` of the on-board group averaging, or None when unknown.

    Without the keyword the divisor is known only when ``NFRAMES`` is a power of 2
    (then it equals ``NFRAMES``).
    """
    if attrs.get("FRMDIVSR") not in (None, ""):
        return int(attrs["FRMDIVSR"])
    nframes = int(attrs.get("NFRAMES", 1) or 1)
    return nframes if nframes & (nframes - 1) == 0 else None


def group_scale_factor(attrs: Mapping) -> float:
    """``FRMDIVSR / NFRAMES``, the group_scale correction factor (1: nothing to do).

    Raises
    ------
    StepNotImplementedError
        When ``NFRAMES`` is not a power of 2 and ``FRMDIVSR`` is not known.
    """
    nframes = int(attrs.get("NFRAMES", 1) or 1)
    divisor = frame_divisor(attrs)
    if divisor is None:
        raise StepNotImplementedError(
            f"{_label(attrs)}: step 'group_scale' needs the FRMDIVSR keyword when NFRAMES "
            f"({nframes}) is not a power of 2; add it to the header, or run the step with "
            "--backend jwst"
        )
    return divisor / nframes


def check_implemented(steps: Iterable[str], attrs: Mapping) -> None:
    """Raise when a step daskref does not implement would have to run.

    Parameters
    ----------
    steps : iterable of str
        The steps that have to run (:func:`steps_to_run`).
    attrs : mapping
        The input's header attributes.

    Raises
    ------
    StepNotImplementedError
        Naming the step and the ways out: the jwst backend, an input on which the
        step is already COMPLETE, or a request without it.
    """
    steps = list(steps)
    for step in steps:
        if step in NOT_IMPLEMENTED:
            rest = [s for s in steps if s not in NOT_IMPLEMENTED]
            hint = f", or leave it out (--steps {','.join(rest)})" if rest else ""
            raise StepNotImplementedError(
                f"{_label(attrs)}: step {step!r} is not implemented by daskref; run it with "
                f"--backend jwst or give an input on which it is already COMPLETE "
                f"({STEP_KEYWORDS[step]} = 'COMPLETE'){hint}"
            )
        if step == "group_scale":
            group_scale_factor(attrs)
