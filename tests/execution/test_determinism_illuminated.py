"""The same saturation, linearity and gain on every scheduler, worker count and chunking
(the runs and the check: ``same_everywhere`` in conftest.py)."""

import pytest


@pytest.mark.parametrize("label", ["saturation", "linearity", "gain"])
def test_same_file_on_every_scheduler_worker_count_and_chunking(
        label, same_everywhere_illuminated, tmp_path):
    same_everywhere_illuminated(label, tmp_path)
