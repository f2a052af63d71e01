"""Run a campaign on an HPC cluster from Python with dask-jobqueue (SLURM shown).

``pip install "daskref[jobqueue]"`` first. ``daskref.cluster`` starts dask-jobqueue's
own ``SLURMCluster`` (``"pbs"``, ``"sge"``, ``"lsf"``, ``"htcondor"`` alike; ``"local"``
runs the same machinery with local processes) and submits the jobs; the keywords are
dask-jobqueue's, plus Dask's worker memory fractions. The input files must be on a file
system the workers can read.

    python examples/hpc_jobqueue.py darks/ [queue]
"""

import sys
from pathlib import Path

from distributed import Client

import daskref

paths = sorted(Path(sys.argv[1]).glob("*_uncal.fits"))
queue = sys.argv[2] if len(sys.argv) > 2 else None
with daskref.cluster("slurm", jobs=4, queue=queue, cores=8, memory="32GB",
                     walltime="02:00:00", memory_spill=0.7,
                     job_extra_directives=["--exclusive"]) as cluster, \
        Client(cluster) as client:
    print("dashboard:", client.dashboard_link)
    stack = daskref.open_stack(paths, chunk_mb=256)
    daskref.write([daskref.readnoise(stack), daskref.superbias(stack)],
                  ["readnoise.fits", "superbias.fits"], progress=True)
