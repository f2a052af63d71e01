"""The same badpix_from_flats on every scheduler, worker count and chunking
(the runs and the check: ``same_everywhere`` in conftest.py)."""

import pytest


@pytest.mark.parametrize("label", ["badpix_from_flats"])
def test_same_file_on_every_scheduler_worker_count_and_chunking(label, same_everywhere,
                                                                tmp_path):
    same_everywhere(label, tmp_path)
