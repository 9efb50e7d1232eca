"""Command-line overrides that Hydra's struct mode would refuse but r1lab checks itself.

`algo.trl` is an open map of GRPOConfig fields (conf/algo/*.yaml). Hydra refuses `algo.trl.<field>=v` for a key
the YAML does not list unless it is written `++algo.trl.<field>=v`; `python launch.py` accepts the plain form
and turns it into Hydra's, and r1lab.validation then checks each name against GRPOConfig's fields, naming a
mistyped one, before any model loads.
"""

from __future__ import annotations

OPEN_MAPS = ("algo.trl.",)


def open_map_overrides(argv: list[str]) -> list[str]:
    """`argv` with every plain `algo.trl.<field>=value` written as Hydra's add-or-override `++algo.trl.<field>=value`."""
    return [f"++{arg}" if arg.startswith(OPEN_MAPS) and "=" in arg else arg for arg in argv]
