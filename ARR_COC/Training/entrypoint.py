"""The one entry point the image runs: work out the accelerate topology, then train.

Processes per node come from the visible GPUs (one on a CPU-only node);
machines, this node's rank and the rendezvous address from Vertex AI's
CLUSTER_SPEC: every host of workerpool0 (the chief), then workerpool1, 2, 3
in order, so the chief is machine 0 and its host:port is where all nodes
meet. Before any of it, and before torch is imported, the start-up check
(startup_check.py) asks the driver whether this host can run the image's
torch on the GPUs the job asked for, and exits with its own code if not. One process in total trains in this process; more go through
`accelerate launch` (torch.distributed's launcher on each node; the workers
then use NCCL on GPUs, gloo on CPU). TRAINING_GPU set without a usable GPU
refuses to run (the original silently trained on CPU).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

DEFAULT_PORT = 29500


@dataclass(frozen=True)
class AccelerateArgs:
    num_processes: int          # total over all machines, as `accelerate launch` expects
    num_machines: int
    machine_rank: int
    main_process_ip: str | None
    main_process_port: int | None

    def as_flags(self) -> list[str]:
        flags = ["--num_processes", str(self.num_processes), "--num_machines", str(self.num_machines),
                 "--machine_rank", str(self.machine_rank)]
        if self.num_processes > 1:  # accelerate's torch.distributed launcher; the backend follows the device
            flags.append("--multi_gpu")
        if self.main_process_ip:
            flags += ["--main_process_ip", self.main_process_ip, "--main_process_port", str(self.main_process_port)]
        return flags


def cluster_hosts(spec: dict) -> list[str]:
    """All replicas as host:port, chief first (workerpool0, then pools 1, 2, 3 in order)."""
    cluster = spec.get("cluster", {})
    return [host for pool in sorted(cluster) if pool.startswith("workerpool") for host in cluster[pool]]


def task_rank(spec: dict) -> int:
    """This replica's machine rank: its place in the chief-first host list."""
    task = spec.get("task", {})
    cluster = spec.get("cluster", {})
    pool, index = task.get("type", "workerpool0"), int(task.get("index", 0))
    earlier = sum(len(cluster[p]) for p in sorted(cluster) if p.startswith("workerpool") and p < pool)
    return earlier + index


def accelerate_args(visible_gpus: int, cluster_spec: str | None) -> AccelerateArgs:
    """Pure: accelerate's topology from the GPU count and CLUSTER_SPEC JSON (or None)."""
    per_node = max(visible_gpus, 1)
    spec = json.loads(cluster_spec) if cluster_spec else {}
    hosts = cluster_hosts(spec)
    if len(hosts) <= 1:
        return AccelerateArgs(per_node, 1, 0, None, None)
    host, _, port = hosts[0].partition(":")
    return AccelerateArgs(per_node * len(hosts), len(hosts), task_rank(spec), host,
                          int(port) if port else DEFAULT_PORT)


def check_gpu(environ: dict, cuda_available: bool) -> None:
    """TRAINING_GPU names a GPU the job paid for: never fall back to CPU silently."""
    wanted = environ.get("TRAINING_GPU", "")
    if wanted and not cuda_available:
        raise SystemExit(f"TRAINING_GPU={wanted} is set but no CUDA device is usable here; "
                         "refusing to train on CPU (unset TRAINING_GPU to train on CPU on purpose)")


def startup_check(argv: list[str]) -> int:
    """The start-up check with the loader settings of the config ARGV names (0: the host can run it).

    A config that does not load is the trainer's to report; the check then
    leaves out what it needs from the config (the /dev/shm estimate).
    """
    from ARR_COC.Training import startup_check as check
    from ARR_COC.Training.config import ConfigError, argument_parser, config_from_args

    try:
        args, _ = argument_parser().parse_known_args(argv)
        config = config_from_args(args)
    except (ConfigError, OSError, SystemExit):
        return check.run()
    return check.run(config.image_size, config.batch_size, config.num_workers)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    failed = startup_check(argv)
    if failed:
        return failed
    import torch

    check_gpu(os.environ, torch.cuda.is_available())
    args = accelerate_args(torch.cuda.device_count(), os.environ.get("CLUSTER_SPEC"))
    if args.num_processes == 1:
        from ARR_COC.Training import train

        return train.main(argv)
    from ARR_COC.Training import train

    command = [sys.executable, "-m", "accelerate.commands.launch", *args.as_flags(), train.__file__, *argv]
    print(json.dumps({"event": "launch", "accelerate": args.as_flags()}), flush=True)
    os.execv(sys.executable, command)  # replaces this process: nothing after it runs


if __name__ == "__main__":
    sys.exit(main())
