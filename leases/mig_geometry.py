"""MIG geometry: the profile families, their named configs, placing instances on one GPU, and
enumerating the layouts a GPU allows.

Pure functions over slice counts and start slots; GPU model ids, names and memory live in
leases.gpu_catalog, which re-exports what callers need (MigProfile, config_name). Imported by
leases modules only; other packages go through leases.gpu_catalog.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

# A demand in canonical form: (profile, count) pairs sorted by profile name, counts > 0.
Demand = tuple[tuple["MigProfile", int], ...]
Placement = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class MigProfile:
    """One MIG GPU-instance profile of a GPU model (a row of `nvidia-smi mig -lgipp`).

    An instance occupies `memory_slices` consecutive memory slices from one of `starts`, so the
    placement size of `-lgipp` (`{starts}:size`) is always `memory_slices`.
    """

    name: str
    profile_id: int
    compute_slices: int
    memory_slices: int
    max_instances: int
    starts: tuple[int, ...]
    media_extensions: bool = False


_ANY_1G = tuple(range(7))  # a 1g never starts on memory slice 7 (reference §1)


def eight_slice(
    one: str, double: str, two: str, three: str, four: str, seven: str
) -> list[MigProfile]:
    """Return the 7/8-slice profiles (1g, 1g+me, double-memory 1g, 2g, 3g, 4g, 7g) by size."""
    # Profile ids and `-lgipp` placements of A100/H100/H100 NVL. H200 and B200 share the ids;
    # their placements are UNCONFIRMED and taken to be the H100 layout (reference §1).
    return [
        MigProfile(f"1g.{one}", 19, 1, 1, 7, _ANY_1G),
        MigProfile(f"1g.{one}+me", 20, 1, 1, 1, _ANY_1G, media_extensions=True),
        MigProfile(f"1g.{double}", 15, 1, 2, 4, (0, 2, 4, 6)),
        MigProfile(f"2g.{two}", 14, 2, 2, 3, (0, 2, 4)),
        MigProfile(f"3g.{three}", 9, 3, 4, 2, (0, 4)),
        MigProfile(f"4g.{four}", 5, 4, 4, 1, (0,)),
        MigProfile(f"7g.{seven}", 0, 7, 8, 1, (0,)),
    ]


# The only 4/4-slice part: its own profile ids and placements (reference §1).
FOUR_SLICE_A30 = [
    MigProfile("1g.6gb", 14, 1, 1, 4, (0, 1, 2, 3)),
    MigProfile("1g.6gb+me", 21, 1, 1, 1, (0, 1, 2, 3), media_extensions=True),
    MigProfile("2g.12gb", 5, 2, 2, 2, (0, 2)),
    MigProfile("2g.12gb+me", 6, 2, 2, 1, (0, 2), media_extensions=True),
    MigProfile("4g.24gb", 0, 4, 4, 1, (0,)),
]


def config_name(profile: str) -> str:
    """Return the mig-parted config name that fills each GPU with `profile` (`+` becomes `.`)."""
    return "all-" + profile.replace("+", ".")


def named_configs(profiles: list[MigProfile]) -> dict[str, dict[str, int]]:
    """Return the mig-parted configs that ship for these profiles, as per-GPU multisets."""
    configs: dict[str, dict[str, int]] = {"all-disabled": {}, "all-enabled": {}}
    configs.update({config_name(p.name): {p.name: p.max_instances} for p in profiles})
    configs["all-balanced"] = _balanced(profiles)
    return configs


def _balanced(profiles: list[MigProfile]) -> dict[str, int]:
    # Two of the smallest 1g, one 2g, and one 3g where the family has a 3g (reference §2).
    def plain(compute: int, memory: int) -> str | None:
        shape = (compute, memory, False)
        matches = (
            p.name
            for p in profiles
            if (p.compute_slices, p.memory_slices, p.media_extensions) == shape
        )
        return next(matches, None)

    wanted = {plain(1, 1): 2, plain(2, 2): 1, plain(3, 4): 1}
    return {name: n for name, n in wanted.items() if name is not None}


def canonical(profiles: Mapping[MigProfile, int]) -> Demand:
    """Return a multiset of profiles in the canonical, hashable form used as a cache key."""
    return tuple(sorted(((p, n) for p, n in profiles.items() if n > 0), key=lambda pn: pn[0].name))


def place(demand: Demand, *, compute_slices: int, memory_slices: int) -> Placement | None:
    """Return (profile, start) for every instance of `demand` on one GPU, or None if none fits."""
    return _place(demand, compute_slices, memory_slices)


# Bounded because callers may ask for arbitrary infeasible counts; the feasible layouts of one
# GPU number under a hundred, so the hot set stays cached.
@lru_cache(maxsize=65536)
def _place(demand: Demand, compute_slices: int, memory_slices: int) -> Placement | None:
    if not _within_limits(demand, compute_slices, memory_slices):
        return None
    # Most constrained first (biggest, then fewest start slots): dead ends show up early.
    instances = sorted(
        (p for p, n in demand for _ in range(n)),
        key=lambda p: (-p.memory_slices, len(p.starts), p.name),
    )
    chosen: list[tuple[str, int]] = []

    def search(i: int, used: int, previous_start: int) -> bool:
        if i == len(instances):
            return True
        profile = instances[i]
        # Identical instances are interchangeable: only try increasing starts among them.
        same = i > 0 and instances[i - 1] == profile
        width = (1 << profile.memory_slices) - 1
        for start in profile.starts:
            if same and start <= previous_start:
                continue
            if start + profile.memory_slices > memory_slices:
                continue
            mask = width << start
            if used & mask:
                continue
            chosen.append((profile.name, start))
            if search(i + 1, used | mask, start):
                return True
            chosen.pop()
        return False

    if not search(0, 0, -1):
        return None
    return tuple(sorted(chosen, key=lambda ps: (ps[1], ps[0])))


def _within_limits(demand: Demand, compute_slices: int, memory_slices: int) -> bool:
    if any(n > p.max_instances for p, n in demand):
        return False
    if sum(p.compute_slices * n for p, n in demand) > compute_slices:
        return False
    if sum(p.memory_slices * n for p, n in demand) > memory_slices:
        return False
    # A GPU has one set of media engines, so at most one +me instance can own them.
    return sum(n for p, n in demand if p.media_extensions) <= 1


def feasible_multisets(
    profiles: Iterable[MigProfile], *, compute_slices: int, memory_slices: int
) -> list[dict[str, int]]:
    """List every non-empty multiset of `profiles` that fits on one GPU."""
    ordered = sorted(profiles, key=lambda p: p.name)
    found: list[dict[str, int]] = []
    for counts in itertools.product(*(range(p.max_instances + 1) for p in ordered)):
        demand = canonical(dict(zip(ordered, counts, strict=True)))
        if demand and place(demand, compute_slices=compute_slices, memory_slices=memory_slices):
            found.append({p.name: n for p, n in demand})
    return found


def maximal_multisets(feasible: list[dict[str, int]], names: Iterable[str]) -> list[dict[str, int]]:
    """Keep the feasible multisets to which no further instance of any of `names` can be added."""
    known = {_key(m) for m in feasible}
    names = list(names)
    return [
        m for m in feasible if not any(_key({**m, n: m.get(n, 0) + 1}) in known for n in names)
    ]


def _key(multiset: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((k, v) for k, v in multiset.items() if v > 0))
