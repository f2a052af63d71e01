"""Clusters from the command line, the mkrefs config and the API (dask-jobqueue's classes).

The ``local`` kind runs dask-jobqueue's own machinery (job script, job objects,
scaling) with local processes as jobs; the real SLURM is in ``test_slurm.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from daskref.cli import main
from daskref.execution import (
    ClusterError,
    check_options,
    option_names,
    parse_adapt,
    parse_options,
)
from daskref.orchestrate.config import ConfigError, load_config
from daskref.testing import assert_same_fits, run_daskref

pytest.importorskip("dask_jobqueue")

ROOT = Path(__file__).resolve().parents[2]


def test_parse_options__yaml_values_and_lists_add_up():
    opts = parse_options(["cores=4", "memory=8GB", "walltime=01:00:00", "queue=debug",
                          "job-extra-directives=--exclusive",
                          "job_extra_directives=[-C, gpu]", "memory_spill=0.7",
                          "memory_target=false"])
    assert opts == {"cores": 4, "memory": "8GB", "walltime": "01:00:00", "queue": "debug",
                    "job_extra_directives": ["--exclusive", "-C", "gpu"],
                    "memory_spill": 0.7, "memory_target": False}
    with pytest.raises(ClusterError, match="KEY=VALUE"):
        parse_options(["cores"])


def test_option_names__are_the_classes_own_keywords():
    slurm = option_names("slurm")
    for key in ("queue", "account", "cores", "memory", "walltime", "processes",
                "job_extra_directives", "log_directory", "job_cpu", "memory_spill"):
        assert key in slurm
    assert "resource_spec" in option_names("pbs")
    assert "job_cpu" not in option_names("pbs")
    with pytest.raises(ClusterError, match="did you mean 'walltime'"):
        check_options("slurm", {"walltme": "01:00:00"})
    with pytest.raises(ClusterError, match="fraction"):
        check_options("slurm", {"memory_spill": 1.5})
    with pytest.raises(ClusterError, match="positive integer"):
        check_options("slurm", {"cores": 0})
    with pytest.raises(ClusterError, match="unknown cluster kind"):
        option_names("kubernetes")


def test_parse_adapt():
    assert parse_adapt("0:10") == (0, 10)
    assert parse_adapt([1, 3]) == (1, 3)
    assert parse_adapt("") is None
    for bad in ("3", "a:b", "5:2", "0:0"):
        with pytest.raises(ClusterError, match="adapt"):
            parse_adapt(bad)


@pytest.mark.parametrize("extra, message", [
    (["--jobs", "2"], "need --cluster KIND"),
    (["--cluster-option", "cores=2"], "need --cluster KIND"),
    (["--cluster", "slurm", "--scheduler", "tcp://127.0.0.1:1"], "not both"),
    (["--cluster", "slurm", "--cluster-option", "qeue=debug"], "did you mean 'queue'"),
    (["--cluster", "pbs", "--cluster-option", "memory_pause=2"], "fraction"),
    (["--cluster", "local", "--adapt", "4:1"], "MIN <= MAX"),
    (["--cluster", "local", "--cluster-option", "cores"], "KEY=VALUE"),
])
def test_cli__bad_execution_options_are_one_line(tiny_darks, tmp_path, capsys, extra, message):
    out = tmp_path / "rn.fits"
    code = main(["readnoise", *map(str, tiny_darks), "-o", str(out), "--no-qa", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_cli__jobs_and_adapt_exclude_each_other(tiny_darks, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["readnoise", *map(str, tiny_darks), "-o", str(tmp_path / "rn.fits"),
              "--cluster", "local", "--jobs", "1", "--adapt", "0:2"])
    assert exc.value.code == 2


def _cfg(tmp_path, text):
    cfg = tmp_path / "mkrefs.cfg"
    cfg.write_text(textwrap.dedent(text))
    return cfg


def test_config__cluster_section_typed_and_checked(tmp_path):
    cfg = _cfg(tmp_path, """\
        cluster:
          kind: SLURM
          queue: debug
          cores: 2
          memory: 4GB
          adapt: 0:4
          memory_spill: 0.8
          options: {log_directory: logs, job_cpu: 2}
        """)
    sec = load_config(cfg).data["cluster"]
    assert sec["kind"] == "slurm" and sec["adapt"] == (0, 4) and sec["jobs"] is None
    assert sec["queue"] == "debug" and sec["options"] == {"log_directory": "logs", "job_cpu": 2}
    assert load_config().data["cluster"]["kind"] is None  # default: no cluster
    # --pp sets its keys as any section's
    assert load_config(cfg, pp=[("cluster", "walltime", "00:20:00")]
                       ).data["cluster"]["walltime"] == "00:20:00"
    for text, message in [
        ("cluster:\n  queu: debug\n", "has no key 'queu' (did you mean 'queue'?)"),
        ("cluster:\n  kind: kubernetes\n", "not a cluster kind"),
        ("cluster:\n  kind: pbs\n  options: {job_cpu: 2}\n", "no option 'job_cpu'"),
        ("cluster:\n  kind: slurm\n  jobs: 2\n  adapt: 0:3\n", "not both"),
        ("cluster:\n  cores: 2\n", "need a cluster kind"),
        ("cluster:\n  kind: slurm\n  jobs: 0\n", "at least 1"),
        ("cluster:\n  kind: local\n  memory_terminate: 7\n", "fraction"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config(_cfg(tmp_path, text))


API_SCRIPT = """
import json, sys
import numpy as np
from distributed import Client
import daskref

tiny_darks = sys.argv[1:]
with daskref.cluster("local", jobs=2, cores=1, memory="1GB", memory_spill=0.75,
                     memory_target=False,
                     scheduler_options={"dashboard_address": ":0"}) as cl, Client(cl) as client:
    client.wait_for_workers(2, timeout=120)
    info = client.run(lambda dask_worker: (
        dask_worker.memory_manager.memory_limit,
        dask_worker.memory_manager.memory_spill_fraction,
        dask_worker.memory_manager.memory_target_fraction))
    on_cluster = daskref.compute([daskref.readnoise(tiny_darks)])[0]["readnoise"].values
local = daskref.compute([daskref.readnoise(tiny_darks)])[0]["readnoise"].values
print(json.dumps({"module": type(cl).__module__, "workers": list(info.values()),
                  "equal": bool(np.array_equal(on_cluster, local, equal_nan=True))}))
"""


def test_api__cluster_is_started_with_dask_memory_settings(tiny_darks, tmp_path):
    """``daskref.cluster`` gives a running dask-jobqueue cluster; the worker memory limit
    and Dask's spill fractions reach the workers (in a child: dask-jobqueue's local jobs
    are killed, not waited for, which pytest's warnings-as-errors would report)."""
    import json

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    run = subprocess.run([sys.executable, "-c", API_SCRIPT, *map(str, tiny_darks)], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["module"] == "dask_jobqueue.local"
    assert len(result["workers"]) == 2
    for limit, spill, target in result["workers"]:
        assert abs(limit - 1e9) < 1e7 and spill == 0.75 and target is False
    assert result["equal"]


def test_cli__readnoise_through_a_local_jobqueue_cluster(tiny_darks, tmp_path):
    assert main(["readnoise", *map(str, tiny_darks), "-o", str(tmp_path / "rn_threads.fits"),
                 "--no-qa", "-q"]) == 0
    jq = run_daskref("readnoise", *tiny_darks, "-o", tmp_path / "rn_jq.fits", "--no-qa",
                     "--cluster", "local", "--jobs", "2", "--cluster-option", "cores=1",
                     "--cluster-option", "memory=1GB", cwd=tmp_path)
    assert jq.returncode == 0, jq.stderr
    assert "dask dashboard: http" in jq.stderr and "local cluster, 2 job(s)" in jq.stderr
    assert_same_fits(tmp_path / "rn_threads.fits", tmp_path / "rn_jq.fits")
