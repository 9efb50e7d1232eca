"""Reward functions that tests name by dotted path in overrides."""


def failing_reward(completions, **kwargs):
    raise RuntimeError("deliberate failure in a user reward")


def some_digits_reward(completions, **kwargs):
    """1.0 iff at least 7% of the completion's characters are digits: about half of the tiny random model's
    completions at the start, so a PRM labelled with it has something to learn from the first step."""
    from r1lab.tasks.answer_format import completion_text
    from r1lab.tasks.sanity import digit_share

    return [1.0 if digit_share(completion_text(c)) >= 0.07 else 0.0 for c in completions]
