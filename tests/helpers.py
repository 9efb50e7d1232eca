"""Reward functions that tests name by dotted path in overrides."""


def failing_reward(completions, **kwargs):
    raise RuntimeError("deliberate failure in a user reward")
