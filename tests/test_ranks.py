"""Two gloo ranks holding halves of a rollout batch compute the same advantages as one process holding all of it.

The batch-wide statistics (whitening moments, PRIME's batch_norm maximum, RLOO group sums across the rank
boundary) go through `Ranks.of_default_group()`, which the trainers use; a rank that whitened or normalised with
its own half's statistics would differ here.
"""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from r1lab.algos.reinforce_pp import reinforce_pp_advantages
from r1lab.algos.token_level import Ranks, ppo_advantages, prime_advantages

ROWS, WIDTH, GROUP, WORLD = 12, 6, 4, 2


def make_batch() -> dict[str, torch.Tensor]:
    """Three groups of 4 over two ranks of 6 rows: the middle group straddles the ranks."""
    generator = torch.Generator().manual_seed(3)
    lengths = torch.randint(1, WIDTH + 1, (ROWS,), generator=generator)
    mask = (torch.arange(WIDTH).unsqueeze(0) < lengths.unsqueeze(1)).double()
    return {
        "mask": mask,
        "logps": -torch.rand(ROWS, WIDTH, generator=generator, dtype=torch.float64) * 3,
        "ref_logps": -torch.rand(ROWS, WIDTH, generator=generator, dtype=torch.float64) * 3,
        "prm_logps": -torch.rand(ROWS, WIDTH, generator=generator, dtype=torch.float64) * 3,
        "values": torch.randn(ROWS, WIDTH, generator=generator, dtype=torch.float64),
        "scores": torch.randn(ROWS, generator=generator, dtype=torch.float64),
    }


def advantages(b: dict[str, torch.Tensor], ranks: Ranks) -> dict[str, torch.Tensor]:
    log_ratios = (b["prm_logps"] - b["ref_logps"]) * b["mask"]
    return {
        "ppo": ppo_advantages(b["scores"], b["logps"], b["ref_logps"], b["values"], b["mask"], 0.1, 1.0, 0.95, ranks)[0],
        "prime": prime_advantages(b["scores"], log_ratios, b["mask"], GROUP, 1.0, "batch_norm", 0.05, ranks)[0],
        "reinforce_pp": reinforce_pp_advantages(b["scores"], b["logps"], b["ref_logps"], b["mask"], 0.1, 1.0,
                                                ranks.sum)[0],
    }


def _rank(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        half = ROWS // WORLD
        local = {key: value[rank * half : (rank + 1) * half] for key, value in make_batch().items()}
        torch.save(advantages(local, Ranks.of_default_group()), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_give_the_one_rank_advantages(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(port, str(tmp_path)), nprocs=WORLD, join=True)
    whole = advantages(make_batch(), Ranks())
    parts = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD)]
    for name, expected in whole.items():
        torch.testing.assert_close(torch.cat([part[name] for part in parts]), expected, rtol=0, atol=1e-9)
