"""Reward-verifier benchmark: completions/s on one core vs Mini-R1-style regex+eval, and hostile worst cases.

Run from the repo root: python bench/reward.py  (with r1lab installed, `pip install -e .`, or PYTHONPATH=.);
about half a minute; it pins itself to one CPU where the OS allows.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable

from r1lab.tasks import countdown, multiplication
from machine_info import machine

SEED = 0
CORPUS_SIZE = 4000
REPEATS = 5
THINK_WORDS = "let me try adding subtracting the numbers first then check whether that reaches target".split()


def think(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(THINK_WORDS) for _ in range(words))


def wrap(rng: random.Random, answer: str, words: int = 40) -> str:
    return f" {think(rng, words)} </think>\n<answer> {answer} </answer>"


def countdown_corpus(rng: random.Random) -> tuple[list[str], dict[str, list]]:
    """Correct, wrong, malformed and long-think completions for generated tasks (30/30/20/20 %)."""
    tasks = countdown.generate_tasks(
        {"min_count": 3, "max_count": 4, "min_number": 1, "max_number": 99, "min_target": 1, "max_target": 99},
        CORPUS_SIZE,
        SEED,
    )
    completions, nums, target = [], [], []
    for task in tasks:
        solution = countdown.solve(task["nums"], task["target"])
        kind = rng.random()
        if kind < 0.3:
            completion = wrap(rng, solution if rng.random() < 0.5 else f"{solution} = {task['target']}")
        elif kind < 0.6:
            wrong = re.sub(r"\d+", lambda m: str(int(m.group()) + 1), solution, count=1)
            completion = wrap(rng, wrong)
        elif kind < 0.8:
            completion = rng.choice(
                [
                    f" {think(rng, 60)}",  # never closes the think block
                    f" {think(rng, 20)} </think> The answer is {solution}.",
                    f" {think(rng, 20)} </think>\n<answer> -{solution} </answer>",
                    f" {think(rng, 20)} </think>\n<answer> {solution} </answer> extra <think>",
                    f" {think(rng, 20)} </think>\n<answer> {task['target']} </answer>",
                ]
            )
        else:
            completion = wrap(rng, solution, words=rng.randint(300, 700))
        completions.append(completion)
        nums.append(task["nums"])
        target.append(task["target"])
    return completions, {"nums": nums, "target": target}


def multiplication_corpus(rng: random.Random) -> tuple[list[str], dict[str, list]]:
    tasks = multiplication.generate_tasks({"min_digits": 2, "max_digits": 4}, CORPUS_SIZE, SEED)
    completions = []
    for task in tasks:
        product, kind = task["product"], rng.random()
        if kind < 0.3:
            completion = wrap(rng, str(product))
        elif kind < 0.6:
            completion = wrap(rng, str(product + rng.choice([-10, -1, 1, 100])))
        elif kind < 0.8:
            completion = f" {think(rng, 30)} </think> so it is {product}"
        else:
            completion = wrap(rng, f"{task['a']} * {task['b']} = {product}", words=rng.randint(300, 700))
        completions.append(completion)
    columns = {name: [t[name] for t in tasks] for name in ("a", "b", "product")}
    return completions, columns


# --- references: Mini-R1's reward functions (blog), regex + eval ---------------------------------


def mini_r1_format_reward(completions, **kwargs):
    regex = r"^<think>([^<]*(?:<(?!/?think>)[^<]*)*)<\/think>\n<answer>([\s\S]*?)<\/answer>$"
    return [0.0 if re.search(regex, "<think>" + c, re.DOTALL) is None else 1.0 for c in completions]


def mini_r1_equation_reward(completions, target, nums, **kwargs):
    rewards = []
    for completion, gt, numbers in zip(completions, target, nums, strict=True):
        try:
            match = re.search(r"<answer>(.*?)<\/answer>", "<think>" + completion)
            if match is None:
                rewards.append(0.0)
                continue
            equation = match.group(1).strip()
            used_numbers = [int(n) for n in re.findall(r"\d+", equation)]
            if sorted(used_numbers) != sorted(numbers) or not re.match(r"^[\d+\-*/().\s]+$", equation):
                rewards.append(0.0)
                continue
            result = eval(equation, {"__builtins__": None}, {})
            rewards.append(1.0 if abs(float(result) - float(gt)) < 1e-5 else 0.0)
        except Exception:
            rewards.append(0.0)
    return rewards


def reference_product_reward(completions, product, **kwargs):
    rewards = []
    for completion, gt in zip(completions, product, strict=True):
        try:
            match = re.search(r"<answer>(.*?)<\/answer>", completion)
            rewards.append(1.0 if match and eval(match.group(1).strip(), {"__builtins__": None}, {}) == gt else 0.0)
        except Exception:
            rewards.append(0.0)
    return rewards


# --- measurement ---------------------------------------------------------------------------------


def rate(reward: Callable, completions: list, columns: dict) -> float:
    """Completions per second, best of REPEATS passes over the corpus."""
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        reward(completions=completions, **columns)
        best = min(best, time.perf_counter() - start)
    return len(completions) / best


def hostile_cases() -> dict[str, str]:
    return {
        "1 MB of text, no tags": "x" * 1_000_000,
        "1 MB of alternating tags": "<answer></think><think>" * 45_000,
        "1 MB expression in the answer": "</think><answer>" + "1 + " * 250_000 + "1</answer>",
        "125k open answer tags": "<answer>" * 125_000 + "</answer>",
        "10,000 nested parentheses": "</think><answer>" + "(" * 10_000 + "1 + 2" + ")" * 10_000 + "</answer>",
        "9**9**9**9": "</think><answer>9**9**9**9</answer>",
        "100,000-digit number": "</think><answer>" + "9" * 100_000 + "</answer>",
        "28 eight-digit factors (within the 256-char cap)": "</think><answer>"
        + " * ".join(["99999999"] * 28)
        + "</answer>",
        "NUL bytes x1000": "</think><answer>1 + 2\x00</answer>\x00" * 1000,
        "unbalanced tags x1000": "</answer><answer><answer></think></answer>" * 1000,
        "unclosed answer, 850 kB": "</think><answer>" + "55 + 36 - 7 - 19 " * 50_000,
    }


def worst_case(reward: Callable, completion: str, columns: dict) -> float:
    """Slowest of three single-completion calls, in seconds."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        reward(completions=[completion], **columns)
        times.append(time.perf_counter() - start)
    return max(times)


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(machine())
    rng = random.Random(SEED)
    countdown_completions, countdown_columns = countdown_corpus(rng)
    multiplication_completions, multiplication_columns = multiplication_corpus(rng)
    mean_chars = sum(map(len, countdown_completions)) / len(countdown_completions)
    print(f"corpus: {CORPUS_SIZE} completions per task, mean {mean_chars:.0f} chars (countdown), seed {SEED}\n")

    rows = [
        (
            "countdown equation_reward",
            countdown.equation_reward,
            mini_r1_equation_reward,
            countdown_completions,
            countdown_columns,
        ),
        (
            "countdown format_reward",
            countdown.format_reward,
            mini_r1_format_reward,
            countdown_completions,
            countdown_columns,
        ),
        (
            "multiplication product_reward",
            multiplication.product_reward,
            reference_product_reward,
            multiplication_completions,
            multiplication_columns,
        ),
    ]
    print(f"{'verifier':34} {'r1lab /s':>10} {'reference /s':>13} {'ratio':>6}")
    for name, ours, reference, completions, columns in rows:
        ours_rate, reference_rate = rate(ours, completions, columns), rate(reference, completions, columns)
        print(f"{name:34} {ours_rate:10,.0f} {reference_rate:13,.0f} {ours_rate / reference_rate:6.2f}")
    agree = sum(
        a == b
        for a, b in zip(
            countdown.equation_reward(countdown_completions, **countdown_columns),
            mini_r1_equation_reward(countdown_completions, **countdown_columns),
            strict=True,
        )
    )
    print(f"equation_reward agrees with the Mini-R1 reference on {agree}/{CORPUS_SIZE} corpus completions")

    print("\nhostile inputs: worst of 3 calls, one completion (the reference is not run: eval hangs on 9**9**9**9)")
    print(f"{'case':50} {'equation ms':>12} {'format ms':>10} {'product ms':>11}")
    one_countdown = {"nums": [[9, 9, 9, 9]], "target": [65]}
    one_product = {"a": [1234], "b": [5678], "product": [7006652]}
    for name, completion in hostile_cases().items():
        equation = worst_case(countdown.equation_reward, completion, one_countdown)
        layout = worst_case(countdown.format_reward, completion, {})
        product = worst_case(multiplication.product_reward, completion, one_product)
        print(f"{name:50} {equation * 1e3:12.3f} {layout * 1e3:10.3f} {product * 1e3:11.3f}")


if __name__ == "__main__":
    main()
