"""Hydra plugin registrations for r1lab (discovered by Hydra in the `hydra_plugins` namespace).

Kept import-light: Hydra imports every plugin module at start-up, also for `--cfg job`.
"""

from dataclasses import dataclass
from pathlib import Path

from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.config_store import ConfigStore
from hydra.plugins.search_path_plugin import SearchPathPlugin
from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher

from r1lab.launching.launchers import InProcessJobs, Preflight, SlurmCapacity, SubmititJobs

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "hydra_plugins.r1lab_launchers.r1lab_launchers"


class R1BasicLauncher(InProcessJobs, BasicLauncher):
    """launcher=local"""


class R1SubmititLocalLauncher(SubmititJobs, LocalLauncher):
    """launcher=submitit_local"""


class R1SlurmLauncher(SlurmCapacity, SubmititJobs, SlurmLauncher):
    """launcher=slurm"""


class R1BasicSweeper(BasicSweeper):
    """Hydra's basic sweeper, without composing every job a second time when an r1lab launcher runs them.

    Hydra's sweeper composes each job to check it (`Sweeper.validate_batch_is_legal`) and then hands the
    batch to the launcher; r1lab's launchers compose and validate every job in their preflight
    (r1lab/launching/preflight.py) before anything runs, with a message per job, so the first pass only
    doubled the cost (about 0.1 s a job: 10 s of a 96-job dry run). Other launchers keep Hydra's check.
    """

    def validate_batch_is_legal(self, batch) -> None:
        if not isinstance(self.launcher, Preflight):
            super().validate_batch_is_legal(batch)


@dataclass
class R1BasicSweeperConf(BasicSweeperConf):
    _target_: str = f"{PLUGIN}.R1BasicSweeper"


@dataclass
class R1BasicLauncherConf:
    _target_: str = f"{PLUGIN}.R1BasicLauncher"


@dataclass
class R1SubmititLocalConf(LocalQueueConf):
    _target_: str = f"{PLUGIN}.R1SubmititLocalLauncher"


@dataclass
class R1SlurmConf(SlurmQueueConf):
    _target_: str = f"{PLUGIN}.R1SlurmLauncher"
    # Seconds between SLURM's warning signal and the time limit: room to finish a step and save.
    signal_delay_s: int = 300
    # Requeues after time limits or preemptions; the run resumes from its newest checkpoint.
    max_num_timeout: int = 20


store = ConfigStore.instance()
store.store(group="hydra/launcher", name="r1lab_basic", node=R1BasicLauncherConf, provider="r1lab")
store.store(group="hydra/launcher", name="r1lab_submitit_local", node=R1SubmititLocalConf, provider="r1lab")
store.store(group="hydra/launcher", name="r1lab_slurm", node=R1SlurmConf, provider="r1lab")
store.store(group="hydra/sweeper", name="r1lab_basic", node=R1BasicSweeperConf, provider="r1lab")


class R1labSearchPath(SearchPathPlugin):
    """Adds the r1lab checkout so that `+sweeps=<name>` finds `sweeps/<name>.yaml` (r1lab's app only)."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        conf = str(REPO_ROOT / "conf")
        if any(element.path.removeprefix("file://") == conf for element in search_path.get_path()):
            search_path.append(provider="r1lab", path=f"file://{REPO_ROOT}")
