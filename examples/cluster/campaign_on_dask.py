"""Run an active-learning campaign whose walkers and reference labels run on Dask workers: on a
SLURM or PBS cluster through dask-jobqueue, or on a LocalCluster of this machine to try it out.

    # on the cluster's login node, inside the project's environment:
    python examples/cluster/campaign_on_dask.py examples/cu/config.yaml --output runs/cu \\
        --scheduler slurm --jobs 4 --cores 8 --memory 16GB --walltime 02:00:00 \\
        --queue compute --account myproject
    # here, with two local worker processes:
    python examples/cluster/campaign_on_dask.py examples/cu/config.yaml --output runs/cu \\
        --scheduler local --workers 2

The driver (this script) stays where it is started (it trains the models: for large ones start
it in a batch job of its own); each batch job of the cluster starts --cores single-threaded
Dask workers, each of which takes one walker or one label at a time. Walkers and labels write
into the campaign directory, which must be on a file system that the compute nodes share.
docs/cluster.md explains the choices.
"""

from __future__ import annotations

import argparse
import sys

import ubmd


def make_cluster(args):
    """A Dask cluster: ``local`` (this machine), ``slurm`` or ``pbs`` (dask-jobqueue)."""
    if args.scheduler == "local":
        from distributed import LocalCluster

        return LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                            dashboard_address=None)
    import dask_jobqueue  # pip install dask-jobqueue

    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[args.scheduler]
    cluster = cls(cores=args.cores, processes=args.cores,  # one thread per worker process
                  memory=args.memory, walltime=args.walltime, queue=args.queue,
                  account=args.account, python=sys.executable,
                  job_script_prologue=["export OMP_NUM_THREADS=1"],
                  worker_extra_args=["--nthreads", "1"])
    cluster.scale(jobs=args.jobs)
    return cluster


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="campaign YAML (docs/config.md)")
    p.add_argument("--output", help="campaign directory (default: the config's output)")
    p.add_argument("--scheduler", choices=("local", "slurm", "pbs"), default="local")
    p.add_argument("--workers", type=int, default=2, help="local: worker processes")
    p.add_argument("--jobs", type=int, default=2, help="slurm/pbs: batch jobs of workers")
    p.add_argument("--cores", type=int, default=8, help="slurm/pbs: cores (= workers) per job")
    p.add_argument("--memory", default="16GB", help="slurm/pbs: memory per job")
    p.add_argument("--walltime", default="02:00:00", help="slurm/pbs: time limit per job")
    p.add_argument("--queue", default=None, help="slurm/pbs: partition or queue")
    p.add_argument("--account", default=None, help="slurm/pbs: account to charge")
    args = p.parse_args(argv)
    cfg = ubmd.load_al_config(args.config)
    if args.output:
        cfg.output = args.output
    with make_cluster(args) as cluster:
        cfg.executor.kind = "dask"  # walkers and labels as Dask jobs
        cfg.executor.address = cluster.scheduler_address
        result = ubmd.run_campaign(cfg)
    print(f"campaign {'finished' if result['finished'] else 'stopped'}: {result['n_rounds']} "
          f"rounds, {result['labels_used']} labels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
