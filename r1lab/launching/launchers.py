"""What r1lab's Hydra launchers do on top of Hydra's basic launcher and hydra-submitit-launcher's
two: the preflight of `preflight.py`, per-job resources, frozen configs and a sweep summary. (Hydra
only instantiates launcher classes from the `hydra_plugins` package, so the classes themselves are
declared in `hydra_plugins/r1lab_launchers`, from these mixins.)

hydra-submitit-launcher submits a whole sweep as one job array with one resource request, and
re-composes each job's config from `conf/` when the job starts. Here jobs are grouped by what
their model needs (`resources.py`) and each group is submitted as its own array with its own
request; each job receives its frozen config instead of re-composing it; a job with several
ranks gets the torch.distributed environment from submitit; and the sweep waits for every job,
so one failure never hides the others.
"""

from __future__ import annotations

import copy
import logging
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, run_job, setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict

from r1lab.launching import summary
from r1lab.launching.preflight import PlannedJob, SweepError, check_and_record, job_table, plan

log = logging.getLogger(__name__)


def output_dir(config: DictConfig) -> Path:
    return Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)


class Preflight:
    """Shared by the three launchers: plan and validate the whole sweep before running any of it."""

    hydra_context: Any
    config: DictConfig

    def capacity_check(self):
        """A function resources → refusal (or None); None when the launcher has no cluster to ask."""
        return None

    def preflight(self, job_overrides, initial_job_idx: int) -> list[PlannedJob] | None:
        """The validated, frozen jobs; None for a dry run. Raises SweepError before anything runs."""
        dry_run = bool(self.config.get("dry_run"))
        jobs = plan(self.hydra_context, self.config, job_overrides, initial_job_idx, self.capacity_check(), dry_run)
        sweep_dir = str(self.config.hydra.sweep.dir)
        try:
            check_and_record(jobs, sweep_dir)
        except SweepError as error:
            # A user error, not a crash: the message, without Hydra's traceback.
            print(f"r1lab: {error}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        print(job_table(jobs), flush=True)
        if dry_run:
            print(f"dry run: nothing launched (frozen configs in {sweep_dir}/.r1lab/)", flush=True)
            return None
        return jobs

    def report(self, outcomes: list[summary.JobOutcome]) -> None:
        table = summary.write(self.config.hydra.sweep.dir, outcomes)
        print("\nsweep summary:\n" + table, flush=True)


class InProcessJobs(Preflight):
    """`launcher=local`: jobs one after another in this process, as Hydra's basic launcher runs them."""

    task_function: Any

    def launch(self, job_overrides, initial_job_idx: int) -> list[JobReturn]:
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        jobs = self.preflight(job_overrides, initial_job_idx)
        if jobs is None:
            return []
        returns, outcomes = [], []
        for job in jobs:
            log.info("\t#%d : %s", job.num, job.label)
            ret = run_job(hydra_context=self.hydra_context, task_function=self.task_function, config=job.config,
                          job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
            returns.append(ret)
            failed = ret.status != JobStatus.COMPLETED
            outcomes.append(summary.outcome(job.num, job.label, "FAILED" if failed else "COMPLETED",
                                            output_dir(job.config), error=repr(ret._return_value) if failed else None))
        self.report(outcomes)
        return returns


class SubmititJobs(Preflight):
    """The submitit side: per-resource job arrays, frozen configs, multi-rank set-up, waiting for all."""

    _EXECUTOR: str
    params: dict[str, Any]

    def __call__(self, config: DictConfig, singleton_state: dict) -> JobReturn:
        """Runs on the node (each SLURM task of the job): the frozen config, nothing re-composed."""
        import submitit

        from r1lab.launching import preemption

        Singleton.set_state(singleton_state)
        setup_globals()
        env = submitit.JobEnvironment()
        # Hydra makes the config it runs read-only; the argument itself must stay as submitted,
        # since a requeue re-runs this call with it.
        config = copy.deepcopy(config)
        OmegaConf.set_readonly(config, False)
        with open_dict(config):
            config.hydra.job.id = env.job_id
        if env.num_tasks > 1:
            # MASTER_ADDR/PORT, RANK, LOCAL_RANK, WORLD_SIZE for accelerate/torch.distributed.
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        preemption.install()
        return run_job(hydra_context=self.hydra_context, task_function=self.task_function, config=config,
                       job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")

    def _executor(self):
        import submitit

        init = {"folder": self.params["submitit_folder"]}
        if "max_num_timeout" in self.params:
            init[f"{self._EXECUTOR}_max_num_timeout"] = self.params["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        base_keys = {"timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node", "mem_gb", "nodes",
                     "name", "stderr_to_stdout"}
        skip = {"submitit_folder", "max_num_timeout"}
        executor.update_parameters(**{
            key if key in base_keys else f"{self._EXECUTOR}_{key}": value
            for key, value in self.params.items() if key not in skip and value is not None
        })
        return executor

    def launch(self, job_overrides, initial_job_idx: int) -> list[JobReturn]:
        jobs = self.preflight(job_overrides, initial_job_idx)
        if jobs is None:
            return []
        executor = self._executor()
        by_request: dict[Any, list[PlannedJob]] = defaultdict(list)
        for job in jobs:
            by_request[job.resources].append(job)
        submitted = []
        for resources, group in by_request.items():
            executor.update_parameters(**resources.submitit_parameters())
            handles = executor.map_array(self, [job.config for job in group], [Singleton.get_state()] * len(group))
            log.info("submitted %d job(s) with %s: %s", len(group), resources, [h.job_id for h in handles])
            submitted.extend(zip(group, handles))
        if self._EXECUTOR == "slurm":
            summary.record_scheduler_ids(self.config.hydra.sweep.dir, {job.num: h.job_id for job, h in submitted})

        returns: dict[int, JobReturn] = {}
        outcomes = []
        for job, handle in submitted:
            try:
                ret = handle.results()[0]
                state = "COMPLETED" if ret.status == JobStatus.COMPLETED else "FAILED"
                error = None if state == "COMPLETED" else repr(ret._return_value)
            except Exception as exc:  # noqa: BLE001 - the job died outside Python (OOM kill, time limit, cancel)
                ret = JobReturn(overrides=job.overrides, cfg=job.config, hydra_cfg=job.config,
                                working_dir=str(output_dir(job.config)), status=JobStatus.FAILED)
                ret.return_value = exc
                state, error = str(handle.state), f"{type(exc).__name__}: {exc}"[:2000]
            returns[job.num] = ret
            outcomes.append(summary.outcome(job.num, job.label, state, output_dir(job.config),
                                            scheduler_id=handle.job_id, error=error))
        self.report(outcomes)
        return [returns[job.num] for job in jobs]


class SlurmCapacity:
    """`launcher=slurm`: refuse a sweep whose requests the chosen (or default) partition cannot meet."""

    params: dict[str, Any]

    def capacity_check(self):
        from r1lab.launching.cluster import partitions, refusal

        available = partitions()
        partition = self.params.get("partition")
        return lambda resources: refusal(resources, partition, available)
