"""r1lab's own pretrained tiny bases: what their corpora hold and never hold, exact tokenizer ids, the cache."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from r1lab.base_corpus import WORKS, WRONG, CorpusSpec, candidates, documents
from r1lab.tasks.countdown_targets import reachable_targets
from r1lab.tasks import countdown
from r1lab.tasks.answer_format import last_answer
from tests.conftest import REPO, TEST_BASE, compose

LINE = re.compile(r"^\((\d+) ([-+*]) (\d+)\) ([-+*]) (\d+) = (-?\d+) ([-+*]) (\d+) = (-?\d+)(?: (\(.*\)))?$")
CHECK_HEADER = re.compile(r"^Which of these equals (\d+)\?$")
PROMPT_TARGET = re.compile(r"Using the numbers \[(\d+), (\d+), (\d+)\], create an equation that equals (\d+)\.")


def _spec(kind: str = "primed", prompt: str = "full") -> CorpusSpec:
    data = OmegaConf.to_container(compose("model=tiny-1m", f"task.prompt={prompt}").model.pretrain.data, resolve=True)
    return CorpusSpec.from_config({**data, "kind": kind})


def _apply(x: int, op: str, y: int) -> int:
    return x + y if op == "+" else x - y if op == "-" else x * y


def _think_lines(document: str) -> list[re.Match]:
    think = document.split("<think>")[-1].split("</think>")[0]
    lines = [line for line in think.split("\n") if line]
    matches = [LINE.match(line) for line in lines]
    assert all(matches), f"a think line is not a step-by-step candidate: {lines}"
    return matches


@pytest.mark.parametrize("prompt", ["full", "short"])
def test_primed_corpus_holds_short_checked_searches_in_a_fixed_order_and_never_a_solver_solution(prompt):
    spec = _spec("primed", prompt)
    traces = solved = candidates_written = misses = went_on = drills = drill_hits = 0
    for document in itertools.islice(documents(spec, seed=3), 6000):
        assert "/ " not in document.split("<think>")[-1]  # no division anywhere in what the model writes
        prompt = PROMPT_TARGET.search(document)
        if prompt is None and "<think>" in document:  # an enumeration: no target, no check
            assert "equals" not in document and all(m.group(10) is None for m in _think_lines(document))
            continue
        header, *lines = document.split("\n")
        if prompt is None and (named := CHECK_HEADER.match(header)):  # a check drill: one target, checked lines
            assert "<think>" not in document and "<answer>" not in document
            target = int(named.group(1))
            assert spec.min_target <= target <= spec.max_target
            for line in lines:
                # Each line is a candidate written exactly as in a trace, its value right, checked against
                # the one target the document names.
                a, o, b, p, c, x, p2, c2, v, verdict = LINE.match(line).groups()
                assert _apply(int(a), o, int(b)) == int(x) and _apply(int(x), p, int(c)) == int(v)
                assert verdict == (WORKS if int(v) == target else WRONG)
                drills += 1
                drill_hits += verdict == WORKS
            continue
        if prompt is None:  # an arithmetic document: lines only, no prompt, no target, no check
            assert "<think>" not in document and "<answer>" not in document
            for line in document.split("\n"):
                match = LINE.match(line)
                assert match and match.group(10) is None
                a, o, b, p, c, x, p2, c2, v = match.groups()[:9]
                assert _apply(int(a), o, int(b)) == int(x) and _apply(int(x), p, int(c)) == int(v)
            continue
        traces += 1
        *nums, target = map(int, prompt.groups())
        # The prompt is the task's, in the task's wording: what RL will show the base.
        assert document.startswith(countdown.plain_prompt({"nums": nums, "target": target}, spec.prompt))
        assert target in reachable_targets(tuple(sorted(nums)), spec.min_target, spec.max_target)
        lines = _think_lines(document)
        assert 1 <= len(lines) <= spec.max_candidates
        candidates_written += len(lines)
        for index, match in enumerate(lines):
            a, o, b, p, c, x, p2, c2, v, verdict = match.groups()
            assert [int(a), int(b), int(c)] == nums and p == p2 and c == c2  # number_order: prompt
            assert _apply(int(a), o, int(b)) == int(x) and _apply(int(x), p, int(c)) == int(v)
            assert verdict == (WORKS if int(v) == target else WRONG)
            # Only the last candidate may work: the search stops at a hit.
            assert index == len(lines) - 1 or verdict != WORKS
            if verdict == WRONG:
                misses += 1
                went_on += index < len(lines) - 1
        # search_order: fixed -- every search walks the same order from its first candidate, never repeating.
        order = [c.expression for c in candidates(nums, "prompt")]
        assert [m.group(0).split(" =")[0] for m in lines] == order[: len(lines)]
        answer = last_answer(document)
        assert answer.strip() == lines[-1].group(0).split(" =")[0]  # the last candidate, right or wrong
        solved += countdown.is_correct_equation(answer, nums, target)
    assert traces > 1800
    # Short, and found only where the target was set to the search's last value (hit_share) or by chance:
    # never a solver's answer.
    assert spec.hit_share <= solved / traces < spec.hit_share + 0.2
    assert 1.3 < candidates_written / traces < 2.5
    # After a miss the search goes on about as often as it stops: the decision RL has to tip (laptop.yaml).
    assert 0.5 < went_on / misses < 0.7
    # Check drills: about check_share of the documents, half their lines hits.
    assert drills / spec.arithmetic_lines == pytest.approx(6000 * spec.check_share, rel=0.15)
    assert 0.4 < drill_hits / drills < 0.6


def test_unprimed_corpus_has_the_arithmetic_and_enumerations_but_no_target_and_no_check():
    spec = _spec("unprimed")
    enumerations = 0
    for document in itertools.islice(documents(spec, seed=3), 3000):
        assert "equals" not in document and WRONG not in document and WORKS not in document
        if "<think>" in document:
            enumerations += 1
            lines = _think_lines(document)
            assert all(match.group(10) is None for match in lines)
            assert last_answer(document).strip() == lines[-1].group(0).split(" =")[0]
    # The primed corpus's traces are enumerations here (and its check drills arithmetic).
    assert enumerations == pytest.approx(3000 * (spec.trace_share + spec.enumeration_share), rel=0.1)


def test_candidates_are_left_nested_expressions_without_division_in_prompt_or_any_order():
    found = candidates([2, 3, 3])
    assert len({c.expression for c in found}) == len(found) == 27  # 3 distinct orders x 9 operator pairs
    assert [c.expression for c in candidates([3, 2, 3], "prompt")][:2] == ["(3 + 2) + 3", "(3 + 2) - 3"]
    assert len(candidates([3, 2, 3], "prompt")) == 9
    assert {c.value for c in found if c.expression == "(3 * 3) - 2"} == {7}


def test_word_tokenizer_loads_with_the_ids_it_was_trained_with(tiny_base):
    from transformers import AutoTokenizer

    from r1lab.tiny_base import build_word_tokenizer
    from r1lab.tokenizer_loading import load_tokenizer

    saved = load_tokenizer(tiny_base)
    text = next(d for d in documents(_spec(), seed=5) if "<think>" in d)
    ids = saved(text, add_special_tokens=False)["input_ids"]
    assert saved.unk_token_id not in ids
    assert saved.decode(ids) == text  # exact round trip: tokens carry their own spaces
    # The ids the model was trained with: the tokenizer as built, before saving.
    trained = build_word_tokenizer(_spec(), int(compose(*TEST_BASE).model.pretrain.seed))
    assert trained(text, add_special_tokens=False)["input_ids"] == ids
    # transformers' AutoTokenizer rebuilds a Qwen2 directory's tokenizer with other ids: not the loader to use.
    assert AutoTokenizer.from_pretrained(tiny_base)(text, add_special_tokens=False)["input_ids"] != ids
    # One token per number and per tag.
    assert len(saved("216", add_special_tokens=False)["input_ids"]) == 1
    assert saved(" 7", add_special_tokens=False)["input_ids"][1:] == saved("(7", add_special_tokens=False)["input_ids"][1:]
    assert len(saved("</think>", add_special_tokens=False)["input_ids"]) == 1
    # A candidate's "(" is one token, the same in a think line and in the answer that copies it, and a
    # check is one token with its space, whose bracket is not that one: it comes right after the target.
    line, answer = saved("\n(7 + 2", add_special_tokens=False)["input_ids"], saved("<answer> (7 + 2", add_special_tokens=False)["input_ids"]
    assert line[1:] == answer[2:]
    for check in (WRONG, WORKS):
        assert saved(f"34 {check}", add_special_tokens=False)["input_ids"] == [saved.convert_tokens_to_ids("34"), saved.convert_tokens_to_ids(f" {check}")]


def test_base_is_built_once_and_cached_by_its_config(tiny_base, tmp_path_factory):
    from r1lab.tiny_base import base_model_path

    cfg = compose(*TEST_BASE)
    arch = OmegaConf.to_container(cfg.model.tiny, resolve=True)
    pretrain = OmegaConf.to_container(cfg.model.pretrain, resolve=True)
    assert base_model_path(arch, pretrain, cfg.cache_dir) == tiny_base
    assert base_model_path(arch, {**pretrain, "corpus": "unprimed"}, cfg.cache_dir) != tiny_base
    assert base_model_path(arch, {**pretrain, "max_steps": 11}, cfg.cache_dir) != tiny_base
    assert not [p for p in tiny_base.parent.iterdir() if "building" in p.name]
    # The check drills ran first, as a stage of their own, then the corpus.
    built = json.loads((tiny_base / "pretraining.json").read_text())
    assert built["check_drills_log_history"][-1]["step"] == 6 and built["log_history"][-1]["step"] == 30
    assert built["processes"] == 1


def test_a_build_in_two_processes_is_data_parallel_and_cached_apart(tiny_base, tmp_path):
    from r1lab.tiny_base import ensure_from_config
    from r1lab.tokenizer_loading import load_tokenizer

    # In its own cache dir: the first build there is this one, not a copy another test left.
    two = ensure_from_config(compose(*TEST_BASE, "model.pretrain.processes=2", f"cache_dir={tmp_path}"))
    assert two.name != tiny_base.name  # processes are part of the key: the two round differently
    built = json.loads((two / "pretraining.json").read_text())
    one = json.loads((tiny_base / "pretraining.json").read_text())
    assert built["processes"] == 2 and built["log_history"][-1]["step"] == 30
    # Each process took half of every batch of 4 rows: the same rows were seen, so the losses stay close
    # to the 1-process build's, but not equal.
    first, first_one = built["log_history"][0]["loss"], one["log_history"][0]["loss"]
    assert first == pytest.approx(first_one, rel=0.05) and built["final_loss"] != one["final_loss"]
    assert load_tokenizer(two).get_vocab() == load_tokenizer(tiny_base).get_vocab()
    assert not (two / "build-job.json").exists()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to build on 2 threads")
def test_a_build_on_two_threads_has_the_same_weights_as_on_one(tmp_path):
    # The default base's shape and corpus, a few steps: a build's thread count is not in the cache key, so the
    # bytes must not depend on it.
    args = ["experiment=laptop_aha", "model.pretrain.max_steps=8", "model.pretrain.check_first_steps=4",
            "model.pretrain.block_size=128"]
    built = {}
    for threads in (1, 2):
        cache = tmp_path / str(threads)
        subprocess.run([sys.executable, "-m", "r1lab.tiny_base", *args, f"cache_dir={cache}"], check=True,
                       cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": str(threads)}, capture_output=True, timeout=600)
        [path] = cache.iterdir()
        built[threads] = (path.name, json.loads((path / "pretraining.json").read_text())["threads"],
                          (path / "model.safetensors").read_bytes())
    assert built[1][0] == built[2][0] and (built[1][1], built[2][1]) == (1, 2)
    assert built[1][2] == built[2][2]


@pytest.fixture(scope="module")
def tiny_base():
    from r1lab.tiny_base import ensure_from_config

    return ensure_from_config(compose(*TEST_BASE))


def test_instruct_variant_learns_the_chat_format_on_other_tasks_only(tiny_base):
    from r1lab.tiny_base import ensure_from_config
    from r1lab.tokenizer_loading import load_tokenizer
    from r1lab.tiny_instruct import chat_examples

    for messages in chat_examples(3000, seed=0, low=1, high=9):
        text = " ".join(m["content"] for m in messages)
        assert "equals" not in text and "create an equation" not in text
    instruct = ensure_from_config(compose(*TEST_BASE, "variant=instruct", "variant.sft.max_steps=5",
                                          "variant.sft.batch_size=4", "variant.sft.examples=40"))
    assert instruct != tiny_base and "instruct" in instruct.name
    assert load_tokenizer(instruct).get_vocab() == load_tokenizer(tiny_base).get_vocab()


def test_hit_share_ends_that_share_of_searches_found_with_true_checks():
    spec = CorpusSpec.from_config({**_spec().__dict__, "hit_share": 1.0})
    found = 0
    for document in itertools.islice((d for d in documents(spec, seed=4) if PROMPT_TARGET.search(d)), 300):
        *nums, target = map(int, PROMPT_TARGET.search(document).groups())
        last = _think_lines(document)[-1]
        assert (last.group(10) == WORKS) == (int(last.group(9)) == target)  # checks are the truth
        found += countdown.is_correct_equation(last_answer(document), nums, target)
    # Every search whose last value is a possible target (in 1..100) ends found.
    assert found / 300 > 0.8
