"""pass@k: the unbiased estimator (Chen et al. 2021) and how the final evaluation groups samples by prompt."""

from __future__ import annotations

from math import comb

import pytest

from r1lab.evaluation import HeldOutEvaluation, HeldOutSpec, pass_at_k
from r1lab.tasks import countdown


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (1, 0, 1, 0.0),
        (1, 1, 1, 1.0),
        (2, 1, 1, 0.5),
        (8, 3, 1, 3 / 8),  # pass@1 is the share of correct samples
        (4, 1, 2, 1 - 3 / 6),  # 1 - C(3,2)/C(4,2)
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5) = 11/12
        (8, 0, 8, 0.0),
        (8, 1, 8, 1.0),  # n = k: any correct sample
        (5, 2, 4, 1.0),  # fewer than k wrong samples: every k-subset holds a correct one
    ],
)
def test_pass_at_k_hand_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_the_binomial_formula():
    for n in range(1, 21):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k), abs=1e-12)


@pytest.mark.parametrize(("n", "c", "k"), [(4, 5, 1), (4, 1, 0), (4, 1, 5), (4, -1, 1)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


class ScriptedEvaluation(HeldOutEvaluation):
    """HeldOutEvaluation with generation replaced by a script: which samples of which prompt are right."""

    def __init__(self, correct_per_prompt: list[list[bool]]):
        self.held_out = HeldOutSpec(task=countdown, num_prompts=None, batch_size=4, max_new_tokens=8)
        self.correct_per_prompt = correct_per_prompt

    def _held_out_completions(self, prompts, samples_per_prompt=None):
        assert samples_per_prompt == len(self.correct_per_prompt[0])
        # Prompt-major: prompt i's samples are consecutive (prompt i's target is i + 3 = 1 + 2 + i).
        completions = [f" </think> <answer> 1 + 2 + {i if ok else i + 1} </answer>"
                       for i, samples in enumerate(self.correct_per_prompt) for ok in samples]
        return completions, [8] * len(completions)


def test_final_evaluation_groups_samples_by_prompt():
    correct = [[True, False, False, False], [False] * 4, [True] * 4]
    rows = [{"prompt": f"p{i}", "nums": [1, 2, i], "target": 3 + i} for i in range(3)]
    metrics = ScriptedEvaluation(correct)._pass_at_k(rows, 4)
    assert metrics == {"pass@1": pytest.approx((1 / 4 + 0 + 1) / 3), "pass@4": pytest.approx(2 / 3)}
