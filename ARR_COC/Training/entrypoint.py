"""The one entry point the image runs: work out the accelerate topology, then train.

Processes per node come from the visible GPUs (one on a CPU-only node);
machines, this node's rank and the rendezvous address from Vertex AI's
CLUSTER_SPEC: every host of workerpool0 (the chief), then workerpool1, 2, 3
in order, so the chief is machine 0 and its host:port is where all nodes
meet. Before any of it, and before torch is imported, the start-up check
(startup_check.py) asks the driver whether this host can run the image's
torch on the GPUs the job asked for, and exits with its own code if not.
One process in total trains in this process; more go through
`accelerate launch` (torch.distributed's launcher on each node; the workers
then use NCCL on GPUs, gloo on CPU). TRAINING_GPU set without a usable GPU
refuses to run (the original silently trained on CPU).

Under `accelerate launch` this process stays the parent: the launcher runs as a
child in its own process group, SIGTERM and SIGINT are passed on to it, and
its exit code passes through, except after a preemption save, which the
launcher reports as a failure of its own: then every trainer process has left
a line in a marker file, and this process exits with the trainer's
`preempted` code. The launcher's static rendezvous and the process group wait
rendezvous_timeout_minutes for late nodes (Vertex may start the workers long
before the chief).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass

DEFAULT_PORT = 29500


@dataclass(frozen=True)
class AccelerateArgs:
    num_processes: int          # total over all machines, as `accelerate launch` expects
    num_machines: int
    machine_rank: int
    main_process_ip: str | None
    main_process_port: int | None

    def as_flags(self, rendezvous_timeout_minutes: int = 30) -> list[str]:
        flags = ["--num_processes", str(self.num_processes), "--num_machines", str(self.num_machines),
                 "--machine_rank", str(self.machine_rank)]
        if self.num_processes > 1:  # accelerate's torch.distributed launcher; the backend follows the device
            flags.append("--multi_gpu")
            flags += ["--rdzv_conf", rendezvous_conf(rendezvous_timeout_minutes)]
        if self.main_process_ip:
            flags += ["--main_process_ip", self.main_process_ip, "--main_process_port", str(self.main_process_port)]
        return flags


def rendezvous_conf(minutes: int) -> str:
    """torchrun's --rdzv_conf: `timeout` is how long the static rendezvous (accelerate's default, the
    one used across machines) waits for every node (600 s unless set); `join_timeout` is the same
    for the c10d rendezvous accelerate falls back to on one machine whose port is taken."""
    seconds = 60 * minutes
    return f"timeout={seconds},join_timeout={seconds}"


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
    from ARR_COC.Training.config import ConfigError, argument_parser, config_from_args, loader_workers

    try:
        args, _ = argument_parser().parse_known_args(argv)
        config = config_from_args(args)
    except (ConfigError, OSError, SystemExit):
        return check.run()
    processes = max(1, check.wanted_gpus(os.environ))
    workers = loader_workers(config.num_workers, len(os.sched_getaffinity(0)), processes)
    return check.run(config.image_size, config.batch_size, workers, processes)


def container_exit_code(launcher_code: int, preempted: bool, preempted_code: int) -> int:
    """What this container exits with: the trainer's preemption code after a preemption save,
    otherwise the launcher's own (128 + N when a signal N ended it, as a shell reports it)."""
    if preempted:
        return preempted_code
    return 128 - launcher_code if launcher_code < 0 else launcher_code


def supervise(command: list[str], marker_variable: str, preempted_code: int) -> int:
    """Run the launcher as a child in its own process group (a terminal's Ctrl-C reaches it once,
    through here), pass SIGTERM and SIGINT on to it, and exit as container_exit_code says."""
    with tempfile.TemporaryDirectory(prefix="arr_coc_launch_") as folder:
        marker = os.path.join(folder, "preempted")
        child = subprocess.Popen(command, env={**os.environ, marker_variable: marker}, start_new_session=True)

        def forward(signum, _frame):
            child.send_signal(signum)  # the launcher passes it on to each trainer's process group

        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            code = child.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return container_exit_code(code, os.path.exists(marker), preempted_code)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    failed = startup_check(argv)
    if failed:
        return failed
    import torch

    check_gpu(os.environ, torch.cuda.is_available())
    args = accelerate_args(torch.cuda.device_count(), os.environ.get("CLUSTER_SPEC"))
    from ARR_COC.Training import train

    if args.num_processes == 1:
        return train.main(argv)
    config = train.config_from(train.argument_parser().parse_args(argv))
    if config is None:
        return 2
    flags = args.as_flags(config.rendezvous_timeout_minutes)
    print(json.dumps({"event": "launch", "accelerate": flags}), flush=True)
    return supervise([sys.executable, "-m", "accelerate.commands.launch", *flags, train.__file__, *argv],
                     train.PREEMPTED_MARKER_ENV, train.exit_code("preempted"))


if __name__ == "__main__":
    sys.exit(main())
