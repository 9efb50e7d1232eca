"""Mini-R1's completion sample files (r1lab/samples.py): what goes in, and that they stay bounded."""

from __future__ import annotations

import re

import pytest

from r1lab.samples import ALL_FILE, SUCCESS_FILE, CompletionSamples, prompt_text, rotated


def write_steps(writer: CompletionSamples, steps: int, batch: int = 16, length: int = 200) -> None:
    for step in range(1, steps + 1):
        completions = [f"step {step} completion {i} " + "x" * length for i in range(batch)]
        writer.write(step, [f"prompt {i}" for i in range(batch)], completions, [i % 4 == 0 for i in range(batch)])


def test_per_step_random_subset_and_only_solved_in_success_file(tmp_path):
    writer = CompletionSamples(tmp_path, per_step=3, max_bytes=10**6, seed=0)
    write_steps(writer, steps=2)
    everything = (tmp_path / ALL_FILE).read_text()
    success = (tmp_path / SUCCESS_FILE).read_text()
    assert everything.count("=== step 1 |") == 3 and everything.count("=== step 2 |") == 3
    # The header names the step, the completion's index in the batch and whether it solved its prompt;
    # the prompt comes before the completion.
    entries = re.findall(r"=+ step (\d+) \| completion (\d+) \| (solved|not solved) =+\n"
                         r"prompt (\d+)\n-+ completion -+\nstep (\d+) completion (\d+) x+\n", everything)
    assert len(entries) == 6
    for step, index, verdict, prompt, text_step, text_index in entries:
        assert step == text_step and index == prompt == text_index
        assert verdict == ("solved" if int(index) % 4 == 0 else "not solved")
    assert len({index for step, index, *_ in entries if step == "1"}) == 3  # three different completions
    assert success.count("| solved ===") == 6 and "not solved" not in success
    assert all(int(i) % 4 == 0 for i in re.findall(r"completion (\d+) \|", success))


def test_no_success_file_without_successes_and_zero_disables(tmp_path):
    writer = CompletionSamples(tmp_path / "a", per_step=2, max_bytes=10**6)
    writer.write(1, ["p", "q"], ["a", "b"], [False, False])
    assert (tmp_path / "a" / ALL_FILE).exists() and not (tmp_path / "a" / SUCCESS_FILE).exists()
    CompletionSamples(tmp_path / "b", per_step=0, max_bytes=10**6).write(1, ["p"], ["a"], [True])
    assert not (tmp_path / "b").exists()


def test_files_rotate_at_the_cap_and_keep_the_newest(tmp_path):
    cap = 5_000
    writer = CompletionSamples(tmp_path, per_step=4, max_bytes=cap, seed=1)
    write_steps(writer, steps=200)
    for name in (ALL_FILE, SUCCESS_FILE):
        current, previous = tmp_path / name, rotated(tmp_path / name)
        assert previous.exists(), "200 steps of ~1.2 kB must have rotated a 5 kB file"
        assert current.stat().st_size <= cap and previous.stat().st_size <= cap
    assert "=== step 200 |" in (tmp_path / ALL_FILE).read_text()
    assert "=== step 1 |" not in (tmp_path / ALL_FILE).read_text() + rotated(tmp_path / ALL_FILE).read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [ALL_FILE, SUCCESS_FILE, rotated(tmp_path / ALL_FILE).name, rotated(tmp_path / SUCCESS_FILE).name])


def test_an_oversized_step_is_cut_at_the_cap(tmp_path):
    writer = CompletionSamples(tmp_path, per_step=1, max_bytes=1_000)
    writer.write(1, ["p"], ["é" * 5_000], [True])
    text = (tmp_path / ALL_FILE).read_bytes()
    assert len(text) <= 1_000
    text.decode("utf-8")  # not cut inside a character


def test_resumed_writer_appends_and_counts_the_existing_size(tmp_path):
    write_steps(CompletionSamples(tmp_path, per_step=2, max_bytes=3_000), steps=1)
    write_steps(CompletionSamples(tmp_path, per_step=2, max_bytes=3_000), steps=3)
    assert (tmp_path / ALL_FILE).stat().st_size <= 3_000
    assert rotated(tmp_path / ALL_FILE).exists()


def test_chat_prompts_and_completions_are_written_as_text(tmp_path):
    writer = CompletionSamples(tmp_path, per_step=1, max_bytes=10**6)
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2 + 2?"}]
    writer.write(3, [prompt], [[{"role": "assistant", "content": "4 </think>"}]], [True])
    text = (tmp_path / ALL_FILE).read_text()
    assert prompt_text(prompt) == "system: Be brief.\nuser: 2 + 2?"
    assert "system: Be brief.\nuser: 2 + 2?\n" in text and "4 </think>" in text


def test_bad_settings_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="per_step"):
        CompletionSamples(tmp_path, per_step=-1, max_bytes=10)
