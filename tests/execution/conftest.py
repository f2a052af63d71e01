import pytest

from daskref.simulate import simulate_campaign


@pytest.fixture(scope="session")
def tiny_darks(tmp_path_factory):
    """3 NIRCam SUB64P darks, 1 integration x 4 groups."""
    d = tmp_path_factory.mktemp("tiny")
    return simulate_campaign(d, 3, nints=1, ngroups=4, seed=5, subarray="SUB64P",
                             substrt=(1, 1), subsize=(64, 64)).paths
