"""glibc is asked to give freed memory back (see daskref._compute.return_freed_memory)."""

from __future__ import annotations

import sys

import pytest

from daskref import _compute


@pytest.fixture
def fresh():
    _compute.return_freed_memory.cache_clear()
    yield _compute.return_freed_memory
    _compute.return_freed_memory.cache_clear()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_trim_threshold_is_set_on_linux(fresh):
    assert fresh() is True


def test_opt_out(fresh, monkeypatch):
    monkeypatch.setenv("DASKREF_MALLOC_TRIM", "0")
    assert fresh() is False
