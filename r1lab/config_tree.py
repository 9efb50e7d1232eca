"""The repository's Hydra config tree (`conf/`), composed outside a Hydra app: the CLI's helpers, the tiny-base
builder and bench/ scripts read the config `python launch.py <overrides>` would run."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def compose(overrides: Iterable[str] = ()):
    """The composed (unresolved) config of `python launch.py <overrides>`."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))
