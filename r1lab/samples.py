"""Mini-R1's completion sample files: read how the policy's reasoning changes as it trains.

In the run dir, `completion_samples/completion_samples.txt` gets up to `per_step` random training
completions per step and `success_completion_samples.txt` up to `per_step` of those that solved their
prompt (the task's CORRECTNESS reward is 1.0), each under a header naming the step and the prompt.
Mini-R1 wrote every sampled completion and let the files grow; here a file that would pass
`max_bytes` is renamed to `*.1.txt` (replacing the previous one) and restarted, so a long run keeps
its newest samples and each kind takes at most twice `max_bytes` on disk.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from r1lab.tasks.answer_format import completion_text

SAMPLES_DIR = "completion_samples"
ALL_FILE = "completion_samples.txt"
SUCCESS_FILE = "success_completion_samples.txt"
_HEADER = re.compile(r"^={24} step (\d+) \| ", re.MULTILINE)


def prompt_text(prompt: Any) -> str:
    """A plain prompt as is; a chat prompt as ``role: content`` lines."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m.get('role', '?')}: {m.get('content', '')}" for m in prompt)


def rotated(path: Path) -> Path:
    """Where a full sample file goes: ``completion_samples.txt`` -> ``completion_samples.1.txt``."""
    return path.with_name(f"{path.stem}.1{path.suffix}")


class CompletionSamples:
    """Appends sampled training completions to the two sample files of one run (call on one rank only)."""

    def __init__(self, directory: Path, per_step: int, max_bytes: int, seed: int = 0):
        if per_step < 0 or max_bytes < 1:
            raise ValueError(f"samples.per_step must be >= 0 and samples.max_bytes >= 1, got {per_step}, {max_bytes}")
        self.directory = Path(directory)
        self.per_step = per_step
        self.max_bytes = max_bytes
        self._rng = random.Random(seed)

    @classmethod
    def from_config(cls, samples: Mapping[str, Any], output_dir: Path, seed: int) -> CompletionSamples:
        return cls(Path(output_dir) / SAMPLES_DIR, int(samples["per_step"]), int(samples["max_bytes"]), seed)

    def write(self, step: int, prompts: Sequence[Any], completions: Sequence[Any], solved: Sequence[bool]) -> None:
        """Append up to ``per_step`` random completions, and up to ``per_step`` solved ones, of one step."""
        if self.per_step == 0:
            return
        everything = range(len(completions))
        successes = [i for i in everything if solved[i]]
        for name, pool in ((ALL_FILE, everything), (SUCCESS_FILE, successes)):
            picked = sorted(self._rng.sample(pool, min(self.per_step, len(pool))))
            if picked:
                entries = [self._entry(step, i, prompts[i], completions[i], solved[i]) for i in picked]
                self._append(self.directory / name, "".join(entries))

    def drop_after(self, step: int) -> None:
        """Remove the entries of steps after `step` (a resumed run's checkpoint): they belong to a dead run."""
        for name in (ALL_FILE, SUCCESS_FILE):
            for path in (rotated(self.directory / name), self.directory / name):
                if not path.exists():
                    continue
                text = path.read_text(encoding="utf-8", errors="replace")
                starts = [m.start() for m in _HEADER.finditer(text)] + [len(text)]
                kept = text[:starts[0]] + "".join(
                    text[a:b] for a, b in zip(starts, starts[1:]) if int(_HEADER.match(text, a).group(1)) <= step)
                if kept != text:
                    tmp = path.with_suffix(".tmp")
                    tmp.write_text(kept, encoding="utf-8")
                    os.replace(tmp, path)

    @staticmethod
    def _entry(step: int, index: int, prompt: Any, completion: Any, solved: bool) -> str:
        verdict = "solved" if solved else "not solved"
        return (
            f"{'=' * 24} step {step} | completion {index} | {verdict} {'=' * 24}\n"
            f"{prompt_text(prompt)}\n{'-' * 24} completion {'-' * 24}\n{completion_text(completion)}\n\n"
        )

    def _append(self, path: Path, text: str) -> None:
        # A single oversized batch is cut at the cap (never inside a UTF-8 character).
        data = text.encode("utf-8")[: self.max_bytes].decode("utf-8", "ignore").encode("utf-8")
        path.parent.mkdir(parents=True, exist_ok=True)
        size = path.stat().st_size if path.exists() else 0
        if size and size + len(data) > self.max_bytes:
            os.replace(path, rotated(path))
        with path.open("ab") as f:
            f.write(data)
