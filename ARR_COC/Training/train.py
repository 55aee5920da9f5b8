"""Train the ARR-COC selector in front of a frozen Qwen3-VL.

    train.py                          # embedded smoke config: tiny backbone, synthetic data, CPU
    train.py --config configs/vertex.toml --max-steps 1000
    train.py --set learning_rate=1e-4 --set num_visual_tokens=64

Config order: defaults < TOML (--config, else the embedded smoke config) <
environment (BASE_MODEL, NUM_VISUAL_TOKENS, ...) < flags. Runs through
accelerate (real gradient accumulation, bf16 or fp16 by GPU, clipping, linear warmup
then linear decay); checkpoints go to AIP_CHECKPOINT_DIR or
OUTPUT_DIR/checkpoints and are resumed automatically; the selector is
exported to AIP_MODEL_DIR or OUTPUT_DIR/model. Checkpoints are written every
save_every_n_steps and every save_every_minutes; SIGTERM (a Spot VM's notice)
ends the current optimizer step, writes a checkpoint and exits with
gpu_support.toml's `preempted` code. The learning-rate schedule
spans num_epochs; --max-steps only stops early, so a stopped and resumed run
follows the same schedule as an uninterrupted one. Under `accelerate launch`
(several GPUs or nodes, see entrypoint.py) the data is split across
processes, each saves and restores its own RNG and sampling state, and
rank 0 alone writes metrics, checkpoints and the export.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import os
import signal
import sys
import time

if __package__ in (None, ""):  # run as a script (accelerate launch train.py): make ARR_COC importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import torch

from ARR_COC.backbone import load_backbone
from ARR_COC.model import build_model
from ARR_COC.preprocess import collate, collate_uint8, model_inputs
from ARR_COC.Training import checkpoint, data, smoke_report, startup_check
from ARR_COC.Training.config import ConfigError, TrainConfig, argument_parser, config_from_args, loader_workers
from ARR_COC.Training.metrics import MetricsLogger, recall_at_k, vqa_accuracy
from ARR_COC.Training.secret_store import SecretError, load_secrets


# Where the entry point wants each process to leave a line after a preemption save (a local file):
# under `accelerate launch` the launcher turns the trainer's exit code into its own failure code.
PREEMPTED_MARKER_ENV = "ARR_COC_PREEMPTED_MARKER"


def exit_code(name: str) -> int:
    """A code of gpu_support.toml's [exit_codes], the one home of the codes the launcher's supervision reads."""
    return startup_check.load_support().exit_codes[name].code


# What `auto` runs where bf16 is not native, and the frozen backbone's dtype per precision: fp16 autocast with
# loss scaling over fp32 weights, so the residual stream stays fp32 (docs/training.md, "Precision").
AUTO_WITHOUT_BF16 = "fp16"
BACKBONE_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float32, "no": torch.float32}


def mixed_precision(value: str, capability: tuple[int, int] | None) -> str:
    """accelerate's mixed_precision for the config value on a GPU of this CUDA capability (None: CPU, where
    it is always off: slow and not needed for the tiny model). bf16 only where the GPU has it natively
    (startup_check.NATIVE_BF16, Ampere's 8.0): below (T4 is 7.5) torch emulates it and accelerate's check passes."""
    if capability is None:
        return "no"
    native = startup_check.NATIVE_BF16
    native_bf16 = tuple(capability) >= native
    if value == "auto":
        return "bf16" if native_bf16 else AUTO_WITHOUT_BF16
    if value == "bf16" and not native_bf16:
        raise ConfigError(
            f"mixed_precision = 'bf16' needs native bf16 (CUDA capability >= {native[0]}.{native[1]}, "
            f"Ampere or newer); this GPU is {capability[0]}.{capability[1]}, where bf16 is emulated and slow: "
            f"set mixed_precision to auto ({AUTO_WITHOUT_BF16} here), fp16 or no")
    return value


def warmup_then_linear(total_steps: int, warmup_ratio: float):
    warmup = max(1, int(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def schedule_length(config: TrainConfig, train_size: int, processes: int) -> int:
    per_step = config.batch_size * config.gradient_accumulation_steps * processes
    return max(1, config.num_epochs * math.ceil(train_size / per_step))


def loader_generator(seed: int, epoch: int) -> torch.Generator:
    """The loader's own generator (worker seeds): starting an epoch's loader, or resuming one, leaves the
    global torch RNG alone, so a resumed run's saved RNG states equal an uninterrupted run's."""
    return torch.Generator().manual_seed(seed * 1000 + epoch)


def ignore_sigterm(_worker_id: int) -> None:
    """DataLoader workers leave SIGTERM to their process: torch's launcher sends it to the trainer's
    whole process group, and a worker killed mid-batch would fail the step the trainer is finishing."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def process_group_kwargs(config: TrainConfig):
    """How long process-group set-up and every collective wait for the slowest process."""
    from accelerate.utils import InitProcessGroupKwargs

    return InitProcessGroupKwargs(timeout=datetime.timedelta(minutes=config.rendezvous_timeout_minutes))


class StopSignal:
    """SIGTERM asks the loop to stop after the current optimizer step; the handler only notes the time."""

    def __init__(self):
        self.received_at = None
        self.previous = None

    def __enter__(self) -> "StopSignal":
        self.previous = signal.signal(signal.SIGTERM, self.handle)
        return self

    def __exit__(self, *_) -> None:
        signal.signal(signal.SIGTERM, self.previous)

    def handle(self, _signum, _frame) -> None:
        if self.received_at is None:
            self.received_at = time.monotonic()


def agreed(accelerator, flags: list[bool]) -> list[bool]:
    """Each flag's maximum over all processes (one small all-reduce per optimizer step), so every
    process stops or saves at the same step even when SIGTERM or a clock reaches them apart:
    the save's gather needs all of them."""
    if accelerator.num_processes == 1:
        return flags
    import torch.distributed as dist

    values = torch.tensor([float(flag) for flag in flags], device=accelerator.device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return [bool(value) for value in values.tolist()]


def leave_preempted_marker(step: int) -> None:
    path = os.environ.get(PREEMPTED_MARKER_ENV)
    if path:
        with open(path, "w") as handle:
            handle.write(f"{step}\n")


def checkpoint_root(config: TrainConfig) -> str:
    return os.environ.get("AIP_CHECKPOINT_DIR") or os.path.join(config.output_dir, "checkpoints")


def model_dir(config: TrainConfig) -> str:
    return os.environ.get("AIP_MODEL_DIR") or os.path.join(config.output_dir, "model")


@torch.no_grad()
def evaluate(model, dataset, config: TrainConfig, device, mode: str = "select", seed: int = 0) -> dict:
    """VQA accuracy (greedy answers) and, when relevant cells are known, recall@K."""
    model.eval()
    batch_collate = functools.partial(collate, backbone=model.backbone, image_size=config.image_size,
                                      max_question_tokens=config.max_question_tokens,
                                      max_answer_tokens=config.max_answer_tokens)
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, collate_fn=batch_collate)
    generator = torch.Generator().manual_seed(seed)
    scores, recalls, count = 0.0, [], 0
    for batch in loader:
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        answers, kept = model.generate(batch, mode, config.max_answer_tokens, generator)
        texts = model.backbone.tokenizer.batch_decode(answers, skip_special_tokens=True)
        scores += sum(vqa_accuracy(text, truth) for text, truth in zip(texts, batch["answers"]))
        count += len(texts)
        if "relevant" in batch:
            recalls.append(recall_at_k(kept, batch["relevant"]) * len(texts))
    model.train()
    result = {"accuracy": scores / max(count, 1)}
    if recalls:
        result["recall_at_k"] = sum(recalls) / count
    return result


def selector_weights(model) -> dict:
    return {k: v.detach().cpu() for k, v in model.selector.state_dict().items()}


def training_state(model, optimizer, scheduler, position: dict, processes: list[dict]) -> dict:
    """What is shared (weights, optimizer, schedule, data position) plus each process's own state, rank order."""
    return {"selector": selector_weights(model), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "processes": processes, "position": position}


def load_resume_state(accelerator, root: str) -> dict | None:
    """Rank 0 reads the newest complete checkpoint and sends it to every process (no shared disk needed)."""
    from accelerate.utils import broadcast_object_list

    holder = [checkpoint.load_latest(root) if accelerator.is_main_process else None]
    return broadcast_object_list(holder)[0]


def own_process_state(resumed: dict, accelerator) -> dict:
    """This process's saved RNG and sampling state; an exact resume needs the same process count."""
    saved = checkpoint.process_states(resumed)
    if len(saved) != accelerator.num_processes:
        raise RuntimeError(
            f"the checkpoint at step {resumed['position']['step']} holds the state of {len(saved)} process(es), "
            f"this run has {accelerator.num_processes}; an exact resume needs the same number (nodes x GPUs): "
            "run with that many, or start from scratch with another checkpoint folder")
    return saved[accelerator.process_index]


def run(config: TrainConfig, stream=sys.stdout) -> dict:
    """Train with `config`; returns the final figures (also logged as JSON lines). A SIGTERM
    during the run gives a checkpoint and {"event": "preempted"} instead of the evaluation and export."""
    with StopSignal() as stop:
        return run_training(config, stream, stop)


def run_training(config: TrainConfig, stream, stop: StopSignal) -> dict:
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    cuda = torch.cuda.is_available()
    capability = torch.cuda.get_device_capability() if cuda else None
    accelerator = Accelerator(kwargs_handlers=[process_group_kwargs(config)],
                              gradient_accumulation_steps=config.gradient_accumulation_steps,
                              mixed_precision=mixed_precision(config.mixed_precision, capability), cpu=not cuda)
    main_process = accelerator.is_main_process
    set_seed(config.seed)
    logger = MetricsLogger(main_process, config, stream)
    dtype = BACKBONE_DTYPES[accelerator.mixed_precision]
    backbone = load_backbone(config.base_model, config.image_size, config.tiny_backbone_weights or None, dtype,
                             revision=config.base_model_revision or None, hub_cache_root=config.hub_cache_dir)
    model = build_model(backbone, config.num_visual_tokens, config.image_size, config.seed, config.allocator,
                        base_model_revision=config.base_model_revision)
    model.sampling.manual_seed(config.seed * 1000 + accelerator.process_index)  # distinct samples per process
    train_set, eval_set = data.build_datasets(config, backbone.cell_pixels)
    optimizer = torch.optim.AdamW(model.selector.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    total = schedule_length(config, len(train_set), accelerator.num_processes)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_then_linear(total, config.warmup_ratio))
    model, optimizer = accelerator.prepare(model, optimizer)
    plain = accelerator.unwrap_model(model)

    position = {"epoch": 0, "batches_done": 0, "step": 0}
    resumed = load_resume_state(accelerator, checkpoint_root(config))
    if resumed:
        plain.selector.load_state_dict(resumed["selector"])
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        checkpoint.restore_process_state(own_process_state(resumed, accelerator), plain.sampling)
        position = dict(resumed["position"])
        logger.log(position["step"], {"event": "resumed", "checkpoint_root": checkpoint_root(config)})
    stop_at = min(total, config.max_steps) if config.max_steps else total

    batch_collate = functools.partial(collate_uint8, backbone=backbone, image_size=config.image_size,
                                      max_question_tokens=config.max_question_tokens,
                                      max_answer_tokens=config.max_answer_tokens)
    workers = loader_workers(config.num_workers, len(os.sched_getaffinity(0)),
                             int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    vision = backbone.config.vision_config
    progress = None
    if main_process and sys.stderr.isatty():  # a terminal: step, loss and ETA; pipes get JSON lines only
        from tqdm import tqdm

        progress = tqdm(total=stop_at, initial=position["step"], desc="train", unit="step", file=sys.stderr)
        if stream.isatty():
            logger.write_line = lambda line: tqdm.write(line, file=stream)
    last_saved, started, loss_sum, loss_count = position["step"], time.time(), 0.0, 0
    timer = smoke_report.StepTimer()
    samples_per_step = config.batch_size * config.gradient_accumulation_steps * accelerator.num_processes
    saved_at, preempted = time.monotonic(), False
    model.train()
    while position["step"] < stop_at and position["epoch"] < config.num_epochs and not preempted:
        order = data.epoch_order(len(train_set), config.seed, position["epoch"])
        loader = accelerator.prepare(torch.utils.data.DataLoader(
            train_set, batch_size=config.batch_size, sampler=order, collate_fn=batch_collate,
            num_workers=workers, worker_init_fn=ignore_sigterm,
            generator=loader_generator(config.seed, position["epoch"])))
        skipped = accelerator.skip_first_batches(loader, position["batches_done"]) if position["batches_done"] else loader
        for batch in skipped:
            batch = model_inputs(batch, vision)  # uint8 images made float here, on the training device
            with accelerator.accumulate(model):
                loss = model(batch, "train")["loss"]
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(plain.selector.parameters(), config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            position["batches_done"] += 1
            loss_sum, loss_count = loss_sum + loss.item(), loss_count + 1
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            position["step"] += 1
            step = position["step"]
            if config.smoke_report:
                if cuda:
                    torch.cuda.synchronize()  # the step's kernels have run: time them, not their launch
                timer.step(samples_per_step)
            if progress:
                progress.update(1)
            if step % config.log_every_n_steps == 0 or step == stop_at:
                mean_loss = mean_over_processes(accelerator, loss_sum / loss_count)
                logger.log(step, {"loss": round(mean_loss, 5), "lr": scheduler.get_last_lr()[0],
                                  "seconds": round(time.time() - started, 2)})
                if progress:
                    progress.set_postfix(loss=f"{mean_loss:.4f}")
                loss_sum, loss_count = 0.0, 0
            minutes_due = config.save_every_minutes and time.monotonic() - saved_at >= 60 * config.save_every_minutes
            preempted, minutes_due = agreed(accelerator, [stop.received_at is not None, minutes_due])
            if (config.save_every_n_steps and step % config.save_every_n_steps == 0) or minutes_due or preempted:
                save_checkpoint(accelerator, config, plain, optimizer, scheduler, position, logger)
                last_saved, saved_at = step, time.monotonic()
            if preempted:
                break
            if config.eval_every_n_steps and step % config.eval_every_n_steps == 0 and main_process:
                logger.log(step, {"eval": evaluate(plain, eval_set, config, accelerator.device)})
            if step >= stop_at:
                break
        else:
            position = {"epoch": position["epoch"] + 1, "batches_done": 0, "step": position["step"]}
    if position["step"] != last_saved:
        save_checkpoint(accelerator, config, plain, optimizer, scheduler, position, logger)
    if preempted:
        return finish_preempted(position["step"], stop, logger, progress)
    summary = {"event": "done", "step": position["step"]}
    if main_process:
        summary["eval"] = evaluate(plain, eval_set, config, accelerator.device)
        plain.export(model_dir(config), provenance(config, summary))
        summary["model_dir"] = model_dir(config)
        logger.log(position["step"], summary)
        if config.smoke_report:
            result = smoke_report.report(timer, cuda, os.environ)
            result["smoke_json"] = smoke_report.write(smoke_report.output_folder(config.output_dir, os.environ),
                                                      result)
            logger.log(position["step"], result)
    logger.close()
    if progress:
        progress.close()
    return summary


def finish_preempted(step: int, stop: StopSignal, logger, progress) -> dict:
    """After the preemption save: the marker for the entry point, one log line, no evaluation or export."""
    leave_preempted_marker(step)
    summary = {"event": "preempted", "step": step,
               "seconds_since_signal": round(time.monotonic() - stop.received_at, 2) if stop.received_at else None}
    logger.log(step, summary)
    logger.close()
    if progress:
        progress.close()
    return summary


def provenance(config: TrainConfig, summary: dict) -> dict:
    """What the exported selector was trained from (pinned revisions) and what it reached."""
    keys = ("base_model", "base_model_revision", "dataset", "dataset_name", "dataset_revision", "train_split",
            "eval_split", "num_visual_tokens", "allocator", "seed")
    return {**{key: getattr(config, key) for key in keys}, "steps": summary["step"], "eval": summary.get("eval")}


def mean_over_processes(accelerator, value: float) -> float:
    """The mean of a per-process figure over all processes (float64: one process gets its own value back)."""
    return accelerator.reduce(torch.tensor(value, dtype=torch.float64, device=accelerator.device), "mean").item()


def save_checkpoint(accelerator, config, plain, optimizer, scheduler, position, logger) -> None:
    """Every process hands its own RNG/sampling state to all; rank 0 alone writes one complete checkpoint.

    The gather is also a check: processes whose selector weights differ stop the run here.
    """
    from accelerate.utils import gather_object

    processes = gather_object([checkpoint.process_state(plain.sampling, selector_weights(plain))])
    checkpoint.check_same_weights(processes, position["step"])
    if accelerator.is_main_process:
        where = checkpoint.save(checkpoint_root(config), position["step"],
                                training_state(plain, optimizer, scheduler, dict(position), processes))
        logger.log(position["step"], {"event": "checkpoint", "path": where, "processes": len(processes)})
        logger.flush()
    accelerator.wait_for_everyone()


def resolve_secrets() -> int | None:
    """ARR_SECRET_REFS into this process's environment before anything logs; only names are printed."""
    try:
        names = load_secrets()
    except SecretError as error:
        print(f"secret error: {error}", file=sys.stderr)
        return 2
    if names and os.environ.get("RANK", "0") == "0":
        print(json.dumps({"event": "secrets", "set": names}), flush=True)
    return None


def config_from(args) -> TrainConfig | None:
    """The run's config from the parsed flags and the environment; None after printing why not."""
    try:
        return config_from_args(args)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    failed = resolve_secrets()
    if failed is not None:
        return failed
    args = argument_parser().parse_args(sys.argv[1:] if argv is None else argv)
    config = config_from(args)
    if config is None:
        return 2
    if not args.config and config.base_model == "tiny" and not config.tiny_backbone_weights:
        print(json.dumps({"warning": "no pretrained tiny backbone (ARR_COC_TINY_BACKBONE): the random tiny "
                                     "model cannot learn the task; the run only checks the plumbing"}), flush=True)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), int(os.environ.get("ARR_COC_THREADS", "2")))))
    try:
        summary = run(config)
    except ConfigError as error:  # a precision the GPU cannot run natively: known once the device is
        print(f"config error: {error}", file=sys.stderr)
        return 2
    return exit_code("preempted") if summary["event"] == "preempted" else 0


if __name__ == "__main__":
    sys.exit(main())
