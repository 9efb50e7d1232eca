"""Hydra entry point: `python launch.py [overrides]`, or `python launch.py -m ...` for a sweep.

Composition, `--cfg job` and validation import neither torch nor TRL; the training stack is
imported only once a job really starts.
"""

import sys

import hydra
from omegaconf import DictConfig

from r1lab.launching.overrides import open_map_overrides


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict:
    from r1lab.train import run_job

    return run_job(cfg)


if __name__ == "__main__":
    sys.argv = open_map_overrides(sys.argv)  # algo.trl.<field>=v: checked by r1lab.validation, not Hydra's struct
    main()
