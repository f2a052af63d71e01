"""Helpers for tests: a guard that fails when something computes a dask graph."""

from __future__ import annotations

from contextlib import contextmanager

import dask


class ComputeError(AssertionError):
    """Raised when a dask graph is computed inside :func:`assert_lazy`."""


def _refuse(*args, **kwargs):
    raise ComputeError("a dask graph was computed inside assert_lazy()")


@contextmanager
def assert_lazy():
    """Fail if any dask computation runs inside the block.

    Examples
    --------
    >>> with assert_lazy():
    ...     result = daskref.readnoise(stack)  # builds a graph only
    """
    with dask.config.set(scheduler=_refuse):
        yield
