"""Run a campaign on an HPC cluster with dask-jobqueue (SLURM shown; PBS/SGE/LSF alike).

``pip install dask-jobqueue`` first. The same code runs on a laptop without the cluster
lines. The input files must be on a file system the workers can read.
"""

import sys
from pathlib import Path

from dask.distributed import Client
from dask_jobqueue import SLURMCluster

import daskref

paths = sorted(Path(sys.argv[1]).glob("*_uncal.fits"))
cluster = SLURMCluster(cores=8, memory="32GB", walltime="02:00:00")
cluster.scale(jobs=4)
with Client(cluster) as client:
    print("dashboard:", client.dashboard_link)
    stack = daskref.open_stack(paths, chunk_mb=256)
    daskref.write([daskref.readnoise(stack), daskref.superbias(stack)],
                  ["readnoise.fits", "superbias.fits"], progress=True)
