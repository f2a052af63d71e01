#!/usr/bin/env bash
# A campaign on SLURM from the command line: every command takes --cluster,
# --cluster-option KEY=VALUE (dask-jobqueue's keywords), --jobs N or --adapt MIN:MAX.
# The workers are SLURM jobs submitted with sbatch; their logs go to logs/.
#
#   [CORES=4 MEMORY=16GB] examples/slurm_campaign.sh darks/ [partition]
set -euo pipefail
darks=${1:?usage: $0 DARK_DIR [PARTITION]}
queue=${2:-debug}
cores=${CORES:-4} memory=${MEMORY:-16GB}   # per job
slurm=(--cluster slurm --jobs 2
       --cluster-option queue="$queue" --cluster-option cores="$cores" --cluster-option memory="$memory"
       --cluster-option walltime=01:00:00 --cluster-option log_directory=logs
       --cluster-option memory_spill=0.7)

# one reference file
daskref readnoise "$darks"/*_uncal.fits -o readnoise.fits "${slurm[@]}"

# a campaign: the cluster from the config (the command line's options would win)
cat > mkrefs.cfg <<CFG
output: {outrootdir: out, runID: AUTO}
cluster:
  kind: slurm
  adapt: "1:8"
  queue: $queue
  cores: $cores
  memory: $memory
  walltime: "01:00:00"
  memory_spill: 0.7
  options: {log_directory: logs}
CFG
daskref mkrefs -c mkrefs.cfg readnoise,superbias "$darks"/*_uncal.fits
