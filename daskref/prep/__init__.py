"""Calibration prep: the calwebb_detector1 steps reference files need, dask-native.

:func:`prep` runs the requested steps (``ssbsteps`` syntax, see
:func:`~daskref.prep.steps.parse_steps`) that an input has not had yet, lazily;
:func:`daskref.io.products.write_products` writes the results in the pipeline's
FITS layout in one pass over the inputs.
"""

from .engine import MissingReferenceError, prep, prep_many
from .steps import (
    PrepError,
    StepNotImplementedError,
    UnknownStepError,
    parse_steps,
    pipeline_steps,
    steps_to_run,
)

__all__ = [
    "MissingReferenceError",
    "PrepError",
    "StepNotImplementedError",
    "UnknownStepError",
    "parse_steps",
    "pipeline_steps",
    "prep",
    "prep_many",
    "steps_to_run",
]
