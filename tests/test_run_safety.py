"""Fault injection: nothing lost, nothing mixed up (issue 10).

Each test injects one fault a careless user, a cluster or a full disk produces: a second launch into a
busy run dir, a lock left by a killed process, files r1lab did not write, a changed config on resume, an
unreadable summary, a corrupt cache entry, a save that fails half-way, SIGINT and SIGTERM mid-run; the
soak test kills a run with SIGKILL at random moments, inside saves too.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from r1lab import checkpoints, run_dir, tracking
from r1lab.launching import summary as sweep_summary
from tests.conftest import REPO, compose, launch

# A short CPU run: tiny model, small groups, no scheduled evaluation, a small final one.
QUICK = ["experiment=none", "logger=none", "eval.every_steps=0", "eval.num_prompts=2", "eval.pass_k=0",
         "eval.max_new_tokens=8", "algo.num_generations=2", "train.per_device_batch_size=2",
         "train.max_completion_length=16", "samples.per_step=1"]


def training_steps(directory: Path) -> list[int]:
    """The step of every training record of metrics.jsonl (eval records hold eval/ keys)."""
    return [r["train/global_step"] for r in tracking.read_metrics(directory)
            if not any(k.startswith("eval/") for k in r)]


def started_run_dir(directory: Path, *overrides: str) -> Path:
    """A run dir as r1lab leaves it after a start with `overrides` (its config recorded, unlocked)."""
    run_dir.take(directory, compose(*overrides))
    run_dir.release(directory)
    return directory


# --- one writer per run dir --------------------------------------------------------------------


def test_a_second_launch_into_a_busy_run_dir_fails_at_once_naming_the_holder(tmp_path):
    directory = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from r1lab import run_dir; "
                               f"run_dir.hold({str(directory)!r}); print('held', flush=True); time.sleep(120)"],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        out = launch(*QUICK, f"hydra.run.dir={directory}")
        assert out.returncode == 2
        assert f"in use by another r1lab run (pid {holder.pid} on " in out.stderr and "Traceback" not in out.stderr
        assert not (directory / ".hydra").exists()  # refused before Hydra wrote anything
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_is_taken_over_with_a_line_saying_so(tmp_path, capsys):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = tmp_path / run_dir.RECORD_DIR / run_dir.LOCK_FILE
    lock.parent.mkdir()
    lock.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "since": "x"}))
    run_dir.hold(tmp_path)
    try:
        assert "taking over the stale lock" in capsys.readouterr().out
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    finally:
        run_dir.release(tmp_path)
    assert not lock.exists()


@pytest.mark.parametrize("holder,age,stale", [
    ({"host": "other-node", "pid": 1, "slurm_job_id": "77"}, 5, True),      # the same SLURM job, requeued
    ({"host": "other-node", "pid": 1, "slurm_job_id": "12"}, 5, False),     # another job, heartbeat fresh
    ({"host": "other-node", "pid": 1}, 3600, True),                          # no heartbeat for an hour
    ({"host": None, "pid": os.getpid()}, 5, False),
])
def test_a_lock_of_another_host_is_stale_by_slurm_job_or_heartbeat(monkeypatch, holder, age, stale):
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    holder = {**holder, "host": holder["host"] or socket.gethostname()}
    assert (run_dir.stale_reason(holder, age) is not None) == stale


# --- files r1lab did not write, and config drift ------------------------------------------------


@pytest.mark.parametrize("name", ["metrics.jsonl", "summary.json"])
def test_a_foreign_record_file_is_refused_and_left_untouched(tmp_path, name):
    foreign = tmp_path / "run" / name
    foreign.parent.mkdir()
    content = 'not json\n{"train/global_step": 99, "stray": 1}\n'
    foreign.write_text(content)
    out = launch(*QUICK, f"hydra.run.dir={foreign.parent}")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"holds {name} that r1lab did not write" in out.stderr
    assert foreign.read_text() == content
    assert not (foreign.parent / "checkpoint-1").exists()


def test_resuming_with_a_changed_training_config_fails_listing_old_and_new(tmp_path):
    directory = started_run_dir(tmp_path / "run", "train.max_steps=10")
    out = launch(f"hydra.run.dir={directory}", "train.max_steps=20", "algo.lr=0.5", "algo.beta=0.2", "logger=none")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "algo.beta: 0.001 -> 0.2" in out.stderr and "algo.lr: 0.01 -> 0.5" in out.stderr
    assert "train.max_steps" not in out.stderr.split("To extend")[0]  # extending is allowed
    assert "choose another hydra.run.dir" in out.stderr


def test_another_algorithm_in_a_finished_dir_is_drift_not_already_finished(tmp_path):
    directory = started_run_dir(tmp_path / "run", "train.max_steps=10")
    (directory / "summary.json").write_text(json.dumps({"status": "finished", "global_step": 10}))
    out = launch(f"hydra.run.dir={directory}", "algo=prime", "train.max_steps=10", "logger=none")
    assert out.returncode == 2
    assert "algo.name: 'grpo' -> 'prime'" in out.stderr and "already finished" not in out.stdout


def test_safe_keys_may_change_and_resume_never_is_refused_in_a_used_dir(tmp_path):
    directory = started_run_dir(tmp_path / "run", "train.max_steps=10")
    assert run_dir.take(directory, compose("train.max_steps=30", "logger=none", "eval.every_steps=5",
                                           "samples.per_step=0")) is True
    run_dir.release(directory)
    with pytest.raises(run_dir.RunDirError, match="train.resume=never"):
        run_dir.claim(directory, compose("train.max_steps=10", "train.resume=never"))


# --- checkpoints, signals, metrics and samples -------------------------------------------------


def test_resume_takes_the_newest_complete_checkpoint_and_removes_partial_ones(tmp_path, caplog):
    for step, complete in ((10, True), (20, True), (30, False)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if complete:
            checkpoints.mark_complete(tmp_path / f"checkpoint-{step}")
    assert checkpoints.resume_point(tmp_path, tidy=False) == tmp_path / "checkpoint-20"
    assert (tmp_path / "checkpoint-30").exists()
    assert checkpoints.resume_point(tmp_path) == tmp_path / "checkpoint-20"
    assert not (tmp_path / "checkpoint-30").exists()
    assert "skipping checkpoint-30: incomplete" in caplog.text


FAIL_SECOND_SAVE = """
import runpy, sys
import transformers
calls = []
original = transformers.Trainer._save_rng_state
def full_disk(self, output_dir):
    calls.append(output_dir)
    if len(calls) == 2:
        raise OSError(28, "No space left on device")
    return original(self, output_dir)
transformers.Trainer._save_rng_state = full_disk
sys.argv = ["launch.py"] + sys.argv[1:]
runpy.run_path("launch.py", run_name="__main__")
"""


def _start(directory: Path, *overrides: str, code: str | None = None) -> subprocess.Popen:
    args = ["-c", code] if code else [str(REPO / "launch.py")]
    return subprocess.Popen([sys.executable, *args, *QUICK, f"hydra.run.dir={directory}", *overrides], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_for_step(directory: Path, step: int, process: subprocess.Popen, timeout: float = 600) -> None:
    """Until `process` logged `step` (a metrics.jsonl older than the process is an earlier start's)."""
    started, deadline = time.time(), time.time() + timeout
    metrics = directory / "metrics.jsonl"
    while time.time() < deadline and process.poll() is None:
        if metrics.exists() and metrics.stat().st_mtime > started and step in training_steps(directory):
            return
        time.sleep(0.05)
    raise AssertionError(f"step {step} never logged: {process.communicate()[0][-3000:]}")


def _summary(directory: Path) -> dict:
    return json.loads((directory / "summary.json").read_text())


@pytest.mark.slow
def test_a_full_disk_in_a_save_then_ctrl_c_then_sigterm_lose_nothing(tmp_path):
    directory = tmp_path / "run"
    steps = ["train.max_steps=8", "train.save_steps=2"]

    # 1. The disk fills in the second save (step 4): the run crashes, leaving a partial checkpoint-4.
    first = _start(directory, *steps, code=FAIL_SECOND_SAVE)
    output = first.communicate(timeout=900)[0]
    assert first.returncode != 0 and "No space left on device" in output
    assert _summary(directory)["status"] == "crashed"
    assert not checkpoints.is_complete(directory / "checkpoint-4")

    # 2. The restart skips it, resumes from checkpoint-2; Ctrl-C after step 3 saves the step it lands in.
    second = _start(directory, *steps)
    _wait_for_step(directory, 3, second)
    second.send_signal(signal.SIGINT)
    output = second.communicate(timeout=900)[0]
    assert "skipping checkpoint-4: incomplete" in output and "resuming from" in output
    assert second.returncode == 128 + signal.SIGINT and _summary(directory)["status"] == "interrupted"
    stopped_at = _summary(directory)["global_step"]
    assert checkpoints.is_complete(directory / f"checkpoint-{stopped_at}")

    # 3. SIGTERM as soon as the next step is logged: saved at the end of that step.
    third = _start(directory, *steps)
    _wait_for_step(directory, stopped_at + 1, third)
    third.send_signal(signal.SIGTERM)
    third.communicate(timeout=900)
    assert third.returncode == 128 + signal.SIGTERM and _summary(directory)["status"] == "terminated"

    # 4. The last start finishes; every step is there once, and the samples of dead steps are gone.
    last = _start(directory, *steps)
    assert last.wait(timeout=900) == 0
    assert _summary(directory)["status"] == "finished"
    assert training_steps(directory) == list(range(1, 9))
    records = tracking.read_metrics(directory)
    assert [r["train/global_step"] for r in records if "eval/accuracy" in r] == [0, 8]  # before training, at the end
    samples = (directory / "completion_samples" / "completion_samples.txt").read_text()
    assert [samples.count(f" step {n} |") for n in range(1, 9)] == [1] * 8


# --- sweeps, compare, the cache ------------------------------------------------------------------


def test_a_sweep_survives_unreadable_summaries_and_names_them(tmp_path):
    sweep = tmp_path / "sweep"
    for job in ("0", "1"):
        (sweep / job).mkdir(parents=True)
        (sweep / job / "summary.json").write_text("{broken")
    out = launch("-m", "seed=0,1", *QUICK, f"hydra.sweep.dir={sweep}")
    table = (sweep / "sweep_summary.md").read_text()
    assert "0 of 2 jobs finished" in table and table.count("unreadable summary.json") == 2
    assert f"{sweep / '0' / 'summary.json'} is unreadable" in out.stdout + out.stderr

    compare = subprocess.run([sys.executable, "-m", "r1lab.cli", "compare", str(sweep), "--out", str(tmp_path / "c")],
                             capture_output=True, text=True, cwd=REPO)
    assert compare.returncode == 0, compare.stderr
    assert f"{sweep / '1' / 'summary.json'} is unreadable" in compare.stderr
    assert "unreadable" in (tmp_path / "c" / "table.md").read_text()


def test_outcome_names_an_unreadable_summary(tmp_path):
    (tmp_path / "summary.json").write_bytes(b"\xff\xfe")
    outcome = sweep_summary.outcome(3, "seed=1", "COMPLETED", tmp_path)
    assert outcome.run_status == "unreadable summary.json" and str(tmp_path / "summary.json") in outcome.error


def test_compare_tells_a_mistyped_local_path_from_a_wandb_group(tmp_path, monkeypatch, capsys):
    from r1lab import cli

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    (tmp_path / "multirun").mkdir()
    monkeypatch.chdir(tmp_path)
    for source, expected in (("multirun/typo/x", "no such directory: multirun/typo/x"),
                             ("./a/b/c", "no such directory: ./a/b/c"),
                             ("a/b/c", "a/b/c is not a directory here, and reading it as W&B group 'c' of "
                                       "'a/b' failed: UsageError")):
        assert cli.main(["compare", source, "--out", str(tmp_path / "out")]) == 2
        assert expected in capsys.readouterr().err


def test_a_corrupt_cached_tiny_model_is_rebuilt_naming_it(tmp_path, capsys):
    from r1lab.tiny_model import cache_entry_problem, ensure_tiny_model

    arch = OmegaConf.to_container(compose().model.tiny)
    path = ensure_tiny_model(arch, tmp_path)
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert cache_entry_problem(path) == "model.safetensors is not as built"
    assert ensure_tiny_model(arch, tmp_path) == path
    assert f"the cached tiny model {path} is corrupt (model.safetensors is not as built); rebuilding" \
        in capsys.readouterr().out
    assert cache_entry_problem(path) is None


# --- the soak ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_soak_sigkill_at_random_moments_loses_at_most_one_save_interval(tmp_path):
    """A 60-step run killed with SIGKILL at 5 random moments (some inside saves) and restarted each time."""
    directory, save_steps, rng = tmp_path / "run", 5, random.Random(int(os.environ.get("R1LAB_SOAK_SEED", 0)))
    steps = ["train.max_steps=60", f"train.save_steps={save_steps}", "train.save_total_limit=2"]
    kills, lost, in_save = 0, [], 0
    for kill_at in sorted(rng.sample(range(3, 58), 5)):
        process = _start(directory, *steps)
        _wait_for_step(directory, kill_at, process)
        if rng.random() < 0.6:  # then wait for the next save to begin, and kill inside it
            deadline = time.time() + 120
            while time.time() < deadline and not any(not checkpoints.is_complete(c)
                                                     for c in checkpoints.checkpoints(directory)):
                time.sleep(0.002)
        process.kill()
        process.wait()
        kills += 1
        in_save += any(not checkpoints.is_complete(c) for c in checkpoints.checkpoints(directory))
        reached = max(training_steps(directory))
        resumed = checkpoints.resume_point(directory, tidy=False)
        lost.append(reached - (checkpoints.checkpoint_step(resumed) if resumed else 0))
    final = _start(directory, *steps)
    output = final.communicate(timeout=1800)[0]
    assert final.returncode == 0, output[-3000:]
    print(f"\nsoak: {kills} SIGKILLs ({in_save} inside a save), {kills} resumes, steps lost per kill: {lost}")

    assert training_steps(directory) == list(range(1, 61))
    assert _summary(directory)["status"] == "finished" and _summary(directory)["global_step"] == 60
    assert all(n <= save_steps for n in lost)
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(directory / "final").num_parameters() > 0


class _DeadWandb:
    """What `wandb` looks like to HF's callback once SLURM's SIGTERM has killed W&B's service."""

    class run:  # noqa: N801 - mirrors `wandb.run`
        summary: dict = {}

    @staticmethod
    def log(*args, **kwargs):
        raise ConnectionResetError("Connection lost")


@pytest.mark.parametrize("guarded", [True, False])
def test_a_dead_wandb_service_does_not_fail_the_step_and_metrics_go_on(tmp_path, guarded):
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments
    from transformers.integrations import WandbCallback

    seen = []

    class Metrics(TrainerCallback):  # stands for MetricsJsonlCallback, which HF calls after W&B's callback
        def on_log(self, args, state, control, logs=None, **kwargs):
            seen.append(dict(logs))

    args = TrainingArguments(output_dir=str(tmp_path), report_to=["wandb"], use_cpu=True)
    trainer = Trainer(model=torch.nn.Linear(1, 1), args=args, callbacks=[Metrics()])
    (wandb_callback,) = [c for c in trainer.callback_handler.callbacks if isinstance(c, WandbCallback)]
    wandb_callback._wandb, wandb_callback._initialized = _DeadWandb, True
    if guarded:
        tracking.guard_wandb(trainer)
        trainer.log({"loss": 1.0})
        trainer.log({"loss": 0.5})  # W&B detached after the first failure: no second warning, no error
        assert [s["loss"] for s in seen] == [1.0, 0.5]
        assert "wandb" not in trainer.args.report_to and wandb_callback._wandb is None
    else:  # what the guard prevents: the step fails and the metrics callback never sees it
        with pytest.raises(ConnectionResetError):
            trainer.log({"loss": 1.0})
        assert seen == []


def test_an_error_outside_wandb_still_fails_the_step(tmp_path):
    import torch
    from transformers import Trainer, TrainingArguments

    trainer = Trainer(model=torch.nn.Linear(1, 1), args=TrainingArguments(output_dir=str(tmp_path), report_to=[],
                                                                          use_cpu=True))

    def broken_log(logs, start_time=None):
        raise ConnectionResetError("not W&B's")

    trainer.log = broken_log
    tracking.guard_wandb(trainer)
    with pytest.raises(ConnectionResetError, match="not W&B's"):
        trainer.log({"loss": 1.0})
