"""One job: composed config → validated → data → trainer → train → held-out eval → recorded run.

`run_job` is what `launch.py` calls for every job of a run or sweep. It validates first (no
model is loaded for a bad config), resumes from the newest checkpoint in its output dir, always
writes `summary.json` (with `status: crashed` when training raised) and always closes W&B, so
one failed job does not poison the rest of a multirun.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from r1lab import run_dir, tracking
from r1lab.launching.memory_plan import refuse_if_over_gpu_memory
from r1lab.validation import ConfigError, exit_with_message, validate

log = logging.getLogger(__name__)


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _job_location() -> tuple[Path, str | None]:
    """The job's output dir, and the sweep dir when it is one job of a multirun."""
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    sweep_dir = hydra_cfg.sweep.dir if hydra_cfg.mode is not None and hydra_cfg.mode.name == "MULTIRUN" else None
    return output_dir, sweep_dir


def run_job(cfg: DictConfig) -> dict[str, Any]:
    output_dir, sweep_dir = _job_location()
    try:
        if cfg.dry_run and sweep_dir is None:
            from r1lab.launching.preflight import dry_run_one

            dry_run_one(cfg, list(HydraConfig.get().overrides.task))
            return {}
        validate(cfg)
        refuse_if_over_gpu_memory(cfg)
    except ConfigError as error:
        exit_with_message(error)
    output_dir.mkdir(parents=True, exist_ok=True)
    if _is_main_process():
        try:  # one writer per run dir, and only the run it was started for (r1lab/run_dir.py)
            run_dir.take(output_dir, cfg)
        except run_dir.RunDirError as error:
            if sweep_dir is not None:
                raise  # this job fails; the sweep goes on
            exit_with_message(error)
    if cfg.train.resume == "auto" and (done := tracking.finished_summary(output_dir, int(cfg.train.max_steps))):
        # A requeued or re-run job whose run already finished: nothing to train, nothing to overwrite.
        if _is_main_process():
            print(f"r1lab: run already finished at step {done['global_step']}; outputs in {output_dir}", flush=True)
        return done
    identity = tracking.RunIdentity.for_run(cfg, output_dir, sweep_dir)
    config = tracking.run_config(cfg, identity)

    from r1lab.launching import preemption

    if not preemption.installed():
        preemption.install()  # a local run: SIGTERM and Ctrl-C also stop at the end of the step, saved
    wandb_run = None
    if cfg.logger.backend == "wandb" and _is_main_process():
        wandb_run = tracking.start_wandb(cfg, identity, output_dir, config)
    started = time.time()
    status, exit_code, result = "crashed", 1, {}
    try:
        result = train(cfg, output_dir, identity)
        if result.pop("stopped_by_signal", False):
            # A stop signal (SLURM's time-limit warning, a preemption, kill, Ctrl-C): saved at the last step.
            status = preemption.stop_status()
        else:
            status, exit_code = "finished", 0
        return result
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        if _is_main_process():
            summary = tracking.summary_record(
                identity, output_dir, status, wandb_run,
                {"wall_time_s": round(time.time() - started, 2), **result},
            )
            tracking.write_summary(output_dir, summary)
        if wandb_run is not None:
            if status == "finished":  # a stopped run has no final metrics, and SLURM's SIGTERM killed W&B's service
                tracking.final_wandb_summary(wandb_run, summary)
            close_wandb(wandb_run, status, exit_code)
        if _is_main_process():
            from r1lab.terminal import closing_block

            print(closing_block(summary, int(cfg.train.max_steps)), flush=True)
            print(f"r1lab: run {status}; outputs in {output_dir}", flush=True)
        if status in preemption.STOPPED:
            preemption.hand_over()  # requeues through submitit; does not return


def close_wandb(wandb_run, status: str, exit_code: int) -> None:
    """Finish the W&B run; a preempted one is marked so, and may have lost its service to SLURM's SIGTERM
    (the requeued job resumes the same run id either way)."""
    if status != "preempted":
        wandb_run.finish(exit_code=exit_code)
        return
    try:
        wandb_run.mark_preempting()
        wandb_run.finish(exit_code=exit_code)
    except Exception as error:  # noqa: BLE001 - any failure of a dead service; the run resumes later
        log.warning("W&B could not close the preempted run (%s); the requeued job resumes it", error)


def resolve_model_path(cfg: DictConfig) -> str:
    """A Hub id or local path for the policy; tiny models (random-init or pretrained) are built and cached on first use."""
    if cfg.model.name_or_path is not None:
        return str(cfg.model.name_or_path)
    if cfg.model.get("pretrain") is not None:
        from r1lab.tiny_base import ensure_from_config

        return str(ensure_from_config(cfg))  # r1lab's own pretrained tiny base (and its instruct variant)
    from r1lab.tiny_model import ensure_tiny_model

    return str(ensure_tiny_model(cfg.model.tiny, cfg.cache_dir))


def _single_process_distributed_env(cfg: DictConfig) -> None:
    """DeepSpeed needs a torch.distributed world even for one process; without launcher variables
    it falls back to MPI discovery (and fails without mpi4py). Declare a world of one."""
    if cfg.dist.deepspeed is None or "RANK" in os.environ:
        return
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


def _check_hardware(cfg: DictConfig) -> None:
    import torch

    if torch.cuda.is_available():
        return
    needs_gpu = []
    if cfg.rollout.engine == "vllm":
        needs_gpu.append("rollout.engine=vllm (use rollout=hf)")
    if cfg.train.bf16:
        needs_gpu.append("train.bf16=true (use train.bf16=false)")
    if needs_gpu:
        raise RuntimeError("no CUDA GPU here, but the config asks for " + " and ".join(needs_gpu))
    from r1lab.adapters import adapter_hardware_problems

    if refused := adapter_hardware_problems(cfg, cuda_available=False):
        raise RuntimeError(refused[0])


def train(cfg: DictConfig, output_dir: Path, identity: tracking.RunIdentity) -> dict[str, Any]:
    """Build the algorithm's trainer for `cfg`, train (resuming if possible), evaluate; return final metrics."""
    from r1lab.terminal import quiet_libraries

    quiet_libraries()
    _check_hardware(cfg)
    _single_process_distributed_env(cfg)
    import torch
    from transformers import set_seed

    from r1lab.algos import algorithm_module
    from r1lab.data import prepare_splits, record_splits
    from r1lab.launching.vllm_server import vllm_server
    from r1lab.tokenizer_loading import load_tokenizer
    from r1lab.trl_args import trainer_kwargs

    set_seed(int(cfg.seed))
    model_path = resolve_model_path(cfg)
    tokenizer = load_tokenizer(model_path, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    train_split, test_split = prepare_splits(cfg, tokenizer)
    log.info("data: %d train / %d held-out prompts (%s)", len(train_split), len(test_split), cfg.task.name)
    if _is_main_process():
        baselines = record_splits(cfg, train_split, test_split, output_dir / tracking.DATA_DIR)
        tracking.log_baselines(baselines)

    rewards = dict(cfg.task.rewards)
    algo = algorithm_module(cfg.algo.name)
    report_to = ["wandb"] if cfg.logger.backend == "wandb" else []
    args = algo.Config(**trainer_kwargs(
        cfg,
        output_dir=str(output_dir),
        run_name=identity.name,
        report_to=report_to,
        reward_weights=[float(w) for w in rewards.values()],
        algo_fields=algo.config_fields(cfg.algo),
    ), use_cpu=not torch.cuda.is_available())  # on CPU, several ranks form one gloo world only with use_cpu
    with vllm_server(cfg, model_path, output_dir):
        return _train_and_evaluate(cfg, algo, args, model_path, tokenizer, train_split, test_split, output_dir)


def _train_and_evaluate(cfg, algo, args, model_path, tokenizer, train_split, test_split, output_dir):
    """The algorithm's trainer on the prepared data: train (resuming if possible), then the final evaluation."""
    from r1lab.adapters import trainer_adapter_kwargs
    from r1lab.checkpoints import checkpoint_step, resume_point, save_final
    from r1lab.data import held_out_rows
    from r1lab.evaluation import HeldOutSpec
    from r1lab.launching.preemption import StopOnSignal, on_terminate, stop_requested
    from r1lab.metrics_callback import MetricsJsonlCallback
    from r1lab.samples import CompletionSamples
    from r1lab.tasks import resolve_reward, task_module
    from r1lab.terminal import use_run_progress

    rewards = dict(cfg.task.rewards)
    trainer = algo.Trainer(
        model=model_path,
        **trainer_adapter_kwargs(cfg),
        reward_funcs=[resolve_reward(cfg.task.name, name) for name in rewards],
        args=args,
        train_dataset=train_split,
        eval_dataset=test_split,
        processing_class=tokenizer,
        callbacks=[MetricsJsonlCallback(output_dir / tracking.METRICS_FILE), StopOnSignal()],
    )
    use_run_progress(trainer)
    tracking.guard_wandb(trainer)
    on_terminate(lambda: tracking.detach_wandb(trainer))
    trainer.held_out = HeldOutSpec(
        task=task_module(cfg.task.name),
        num_prompts=held_out_rows(cfg),
        batch_size=int(cfg.eval.batch_size),
        max_new_tokens=int(cfg.eval.max_new_tokens),
    )
    trainer.completion_samples = CompletionSamples.from_config(cfg.samples, output_dir, int(cfg.seed))

    checkpoint = resume_point(output_dir, tidy=trainer.args.should_save) if cfg.train.resume == "auto" else None
    if checkpoint:
        log.info("resuming from %s", checkpoint)
    # The held-out evaluation before the first update: the step-0 point of every curve (a resumed run has it).
    trainer.args.eval_on_start = checkpoint is None
    if trainer.args.should_save:  # samples of steps after the checkpoint belong to a dead run
        trainer.completion_samples.drop_after(checkpoint_step(checkpoint) if checkpoint else 0)
    checkpoint = checkpoint and str(checkpoint)
    train_output = trainer.train(resume_from_checkpoint=checkpoint)
    if stop_requested() and trainer.state.global_step < trainer.state.max_steps:
        return {"stopped_by_signal": True, "global_step": trainer.state.global_step, "resumed_from": checkpoint}
    final_eval = trainer.evaluate(pass_k=int(cfg.eval.pass_k))
    save_final(trainer, output_dir / "final")
    return {
        "global_step": trainer.state.global_step,
        "world_size": trainer.args.world_size,
        # The policy's trained parameters (the adapter's under adapter=lora|qlora).
        "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "resumed_from": checkpoint,
        "train_runtime": train_output.metrics.get("train_runtime"),
        **{key.replace("eval_", "eval/", 1): value for key, value in final_eval.items()},
    }
