"""Before a sweep queues anything: compose every job, validate it, size it, freeze it, show it.

Every job's config is composed here, on the submitting machine, and validated with
`r1lab.validation`; a composition error (bad override, unknown key), an invalid config or a
resource request the cluster cannot meet stops the whole sweep with one message per job, and
nothing is submitted. The composed configs are frozen (fully resolved, written under
`<sweep dir>/.r1lab/`) and shipped to the jobs as they are, so editing `conf/` later cannot change
queued jobs. `dry_run=true` stops after printing the job table.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import filter_overrides
from omegaconf import DictConfig, OmegaConf, open_dict

from r1lab.launching.memory_plan import MemoryPlan, gpu_memory_plan, over_memory_message
from r1lab.launching.resources import JobResources, estimated_gpu_hours, resources_for
from r1lab.validation import environment_problems, problems

log = logging.getLogger(__name__)
FROZEN_DIR = ".r1lab"


class SweepError(ValueError):
    """A sweep that cannot be queued; the message lists every failing job and why."""


@dataclass
class PlannedJob:
    num: int
    overrides: list[str]
    config: DictConfig | None
    resources: JobResources | None = None
    gpu_hours: float = 0.0
    memory: MemoryPlan | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        shown = [o for o in filter_overrides(self.overrides) if not o.startswith("dry_run=")]
        return " ".join(shown) or "(defaults)"


class JobComposer:
    """Composes a sweep's jobs exactly as Hydra's `load_sweep_config` does, each choice of config groups once.

    Hydra composes a job in two stages (`ConfigLoaderImpl._load_configuration_impl`): the defaults list,
    chosen by the group overrides (`model=...`, `+sweeps=...`) and the `hydra.*` ones, is composed into a
    config; then the value overrides (`algo.lr=...`, `seed=...`) are applied to it. The first stage costs
    about 0.1 s a job; a 96-job sweep over 4 models x 2 variants has 8 distinct defaults lists. So the
    first stage runs once per distinct list, and each job applies its value overrides to a copy with
    Hydra's own code, then gets Hydra's `hydra.overrides.task` and `override_dirname` for its full list
    (tests/test_speed_features.py checks the result equals Hydra's). A job whose value overrides do not
    apply is composed by Hydra itself, so its error message is Hydra's.
    """

    def __init__(self, config_loader, primary: DictConfig):
        self.loader = config_loader
        self.primary = primary
        self.hydra_overrides = list(primary.hydra.overrides.hydra)
        self.parser = OverridesParser.create()
        self._is_group: dict[str, bool] = {}
        self._stage_one: dict[tuple[str, ...], DictConfig] = {}

    def is_group(self, key: str) -> bool:
        if key not in self._is_group:
            options = self.loader.get_group_options(key, results_filter=None, config_name=str(
                self.primary.hydra.job.config_name), overrides=self.hydra_overrides)
            self._is_group[key] = bool(options)
        return self._is_group[key]

    def compose(self, overrides: list[str]) -> DictConfig:
        parsed = self.parser.parse_overrides(overrides)
        is_value = [not o.is_hydra_override() and o.package is None and not isinstance(o.value(), dict)
                    and not self.is_group(o.key_or_group) for o in parsed]
        if not any(is_value):
            return self.loader.load_sweep_config(self.primary, overrides)
        values = [o for o, value in zip(parsed, is_value) if value]
        groups = tuple(o.input_line for o, value in zip(parsed, is_value) if not value)
        if groups not in self._stage_one:
            self._stage_one[groups] = self.loader.load_sweep_config(self.primary, list(groups))
        config = copy.deepcopy(self._stage_one[groups])
        try:
            ConfigLoaderImpl._apply_overrides_to_config(values, config)
        except Exception:  # noqa: BLE001 - let Hydra compose it and raise its own message
            return self.loader.load_sweep_config(self.primary, overrides)
        app = [o for o in parsed if not o.is_hydra_override()]
        naming = config.hydra.job.config.override_dirname
        config.hydra.overrides.task = [o.input_line for o in app]
        config.hydra.job.override_dirname = get_overrides_dirname(
            overrides=app, kv_sep=naming.kv_sep, item_sep=naming.item_sep, exclude_keys=naming.exclude_keys)
        OmegaConf.copy_cache(from_config=self.primary, to_config=config)
        return config


def freeze(config: DictConfig, sweep_dir: str) -> DictConfig:
    """Resolve every value now (sweep dir, ${now:}, env defaults), so the job runs what was validated."""
    task = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
    OmegaConf.resolve(task)
    frozen = config.copy()
    with open_dict(frozen):
        for key in task:
            frozen[key] = task[key]
        frozen.hydra.sweep.dir = sweep_dir
        frozen.hydra.sweep.subdir = str(config.hydra.sweep.subdir)
    return frozen


def plan(hydra_context, primary: DictConfig, job_overrides, initial_job_idx: int,
         capacity_check=None, dry_run: bool = False) -> list[PlannedJob]:
    """Compose, freeze, validate and size every job; `capacity_check(resources)` returns a refusal or None.

    A dry run only warns about packages missing here (vLLM, DeepSpeed): it may be planned on a
    machine that is not the one that will run it.
    """
    sweep_dir = str(primary.hydra.sweep.dir)
    composer = JobComposer(hydra_context.config_loader, primary)
    jobs = []
    for offset, overrides in enumerate(job_overrides):
        num = initial_job_idx + offset
        job = PlannedJob(num=num, overrides=list(overrides), config=None)
        jobs.append(job)
        try:
            config = composer.compose(list(overrides))
            with open_dict(config):
                config.hydra.job.num = num
                config.hydra.job.id = num
            job.config = freeze(config, sweep_dir)
        except Exception as error:  # noqa: BLE001 - Hydra raises several types; all mean "does not compose"
            job.problems.append(f"does not compose: {error}")
            continue
        task_cfg = OmegaConf.masked_copy(job.config, [key for key in job.config if key != "hydra"])
        check_and_size(job, task_cfg, capacity_check, dry_run)
    name_by_what_varies(jobs)
    return jobs


def check_and_size(job: PlannedJob, task_cfg: DictConfig, capacity_check=None, dry_run: bool = False) -> None:
    """Validate one job, then size it: resources, GPU-hours, GPU-memory plan (refused when over its GPUs) and
    the cluster's capacity. Problems and warnings go on `job`."""
    job.problems.extend(problems(task_cfg))
    (job.warnings if dry_run else job.problems).extend(environment_problems(task_cfg))
    if job.problems:
        return
    job.resources = resources_for(task_cfg)
    job.gpu_hours = estimated_gpu_hours(task_cfg)
    job.memory = gpu_memory_plan(task_cfg)
    if job.memory is not None and not job.memory.fits:
        job.problems.append(over_memory_message(task_cfg, job.memory))
    if capacity_check is not None and (refusal := capacity_check(job.resources)):
        job.problems.append(f"resources: {refusal}")


def dry_run_one(cfg: DictConfig, overrides: list[str]) -> None:
    """`python launch.py ... dry_run=true`: the one job checked and sized as a sweep's preflight does it (missing
    packages only warn), its table printed; raises ConfigError with every problem instead."""
    from r1lab.validation import ConfigError

    job = PlannedJob(0, overrides, cfg)
    check_and_size(job, cfg, dry_run=True)
    if job.problems:
        raise ConfigError("cannot run:\n  - " + "\n  - ".join(job.problems))
    print(job_table([job]) + "\ndry run: nothing launched", flush=True)


def name_by_what_varies(jobs: list[PlannedJob]) -> None:
    """Set each job's `run_name` (unless the user set one) to the overrides that differ between the jobs,
    e.g. `algo.lr=5e-07,seed=1`: within the sweep's W&B group that is all a name needs to say."""
    overrides = [dict(o.split("=", 1) for o in filter_overrides(job.overrides) if "=" in o) for job in jobs]
    keys = list(dict.fromkeys(k for job_overrides in overrides for k in job_overrides))
    varying = [k for k in keys if len({job_overrides.get(k) for job_overrides in overrides}) > 1]
    for job, job_overrides in zip(jobs, overrides):
        if job.config is not None and varying and job.config.get("run_name") is None:
            with open_dict(job.config):
                job.config.run_name = ",".join(f"{k}={job_overrides.get(k, '-')}" for k in varying)


def job_table(jobs: list[PlannedJob]) -> str:
    """A Markdown table of the jobs: overrides, resources, estimated GPU memory and GPU-hours."""
    lines = ["| job | overrides | GPUs | tasks | CPUs/task | mem GB | time min | GB/GPU | est. GPU-h |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for job in jobs:
        r = job.resources
        cells = [str(r.gpus), str(r.tasks), str(r.cpus_per_task), str(r.mem_gb), str(r.timeout_min)] if r else ["?"] * 5
        cells.append(job.memory.cell() if job.memory is not None else "-")
        lines.append(f"| {job.num} | {job.label} | " + " | ".join(cells) + f" | {job.gpu_hours:.1f} |")
    for warning in sorted({w for job in jobs for w in job.warnings}):
        lines.append(f"\nwarning: {warning}")
    total = sum(job.gpu_hours for job in jobs)
    lines.append(f"\n{len(jobs)} jobs, about {total:.1f} GPU-hours (rough per-model step times; see conf/model)")
    if any(job.memory is not None for job in jobs):
        lines.append("GB/GPU: estimated peak GiB per training GPU / gpu_mem_gb (r1lab/launching/memory_plan.py; an "
                     "estimate that leaves out fragmentation and temporaries)")
    return "\n".join(lines)


def check_and_record(jobs: list[PlannedJob], sweep_dir: str) -> None:
    """Raise SweepError if any job cannot run; else write the frozen configs and the job table."""
    failing = [job for job in jobs if job.problems]
    if failing:
        details = "\n".join(f"  job {job.num} ({job.label}):\n    - " + "\n    - ".join(job.problems) for job in failing)
        raise SweepError(f"{len(failing)} of {len(jobs)} jobs cannot run; nothing was submitted:\n{details}")
    record = Path(sweep_dir) / FROZEN_DIR
    record.mkdir(parents=True, exist_ok=True)
    for job in jobs:
        OmegaConf.save(job.config, record / f"job_{job.num}.yaml")
    (record / "jobs.md").write_text(job_table(jobs) + "\n")
