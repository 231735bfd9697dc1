"""Request traces for the placement benchmark: H100-80GB tiers, mixes, Poisson arrivals.

A trace is a list of lease requests (arrival, duration, tier, units, patience) drawn with a
fixed seed, so every policy sees the same requests. Offered load ρ is the mean GPU demand as a
fraction of the cluster's GPUs, where one unit of a tier costs 1/(units per GPU) of a GPU.
Imported by the rest of bench.placement only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from config.policy import Tier
from leases.capacity import TierSpec, tier_spec

MODEL = "H100-80GB"
GPUS_PER_NODE = 8

# max_units per lease as in the example policy, widened for 2g (not in it) and full GPUs.
# Fallbacks (in the order offered) each give at least the asked compute and memory,
# dedicated: 1g.10gb → 2g.20gb, 3g.40gb; 2g.20gb → 3g.40gb; 3g.40gb → a whole GPU; a quarter
# time-share of an 80 GB H100 → 2g.20gb (2/7 of the compute and 20 of the 80 GB, dedicated:
# at least a fair quarter), 3g.40gb. So each costs at least the asked GPUs; a fallback's
# max_units still holds (4 units of 1g cannot go to 2g).
TIERS: Mapping[str, TierSpec] = {
    t.name: tier_spec(t)
    for t in (
        Tier(
            name="h100-1g",
            display="1g.10gb",
            gpu_model=MODEL,
            mode="mig",
            mig_profile="1g.10gb",
            max_units=4,
            fallback=["h100-2g", "h100-3g"],
        ),
        Tier(
            name="h100-2g",
            display="2g.20gb",
            gpu_model=MODEL,
            mode="mig",
            mig_profile="2g.20gb",
            max_units=3,
            fallback=["h100-3g"],
        ),
        Tier(
            name="h100-3g",
            display="3g.40gb",
            gpu_model=MODEL,
            mode="mig",
            mig_profile="3g.40gb",
            max_units=2,
            fallback=["h100-full"],
        ),
        Tier(
            name="h100-shared",
            display="1/4 time-share",
            gpu_model=MODEL,
            mode="timeslice",
            replicas=4,
            max_units=2,
            fallback=["h100-2g", "h100-3g"],
        ),
        Tier(name="h100-full", display="whole GPU", gpu_model=MODEL, mode="full", max_units=4),
    )
}
TIER_NAMES: tuple[str, ...] = tuple(TIERS)
# Units per GPU of each tier, by index into TIER_NAMES: u units of tier t cost u / PER_GPU[t] GPUs.
PER_GPU: np.ndarray = np.array([TIERS[name].units_per_gpu for name in TIER_NAMES], dtype=float)

# Units per lease, per tier: (sizes, probabilities). Most leases are small.
SIZES: Mapping[str, tuple[tuple[int, ...], tuple[float, ...]]] = {
    "h100-1g": ((1, 2, 4), (0.5, 0.3, 0.2)),
    "h100-2g": ((1, 2, 3), (0.6, 0.3, 0.1)),
    "h100-3g": ((1, 2), (0.7, 0.3)),
    "h100-shared": ((1, 2), (0.7, 0.3)),
    "h100-full": ((1, 2, 4), (0.5, 0.3, 0.2)),
}


def _weights(one_g: float, two_g: float, three_g: float, shared: float, full: float) -> np.ndarray:
    w = np.array([one_g, two_g, three_g, shared, full], dtype=float)
    return w / w.sum()


_SMALL = _weights(45, 15, 5, 30, 5)
_BALANCED = _weights(20, 20, 20, 20, 20)
_LARGE = _weights(5, 10, 30, 5, 50)


def _alternating(position: float) -> np.ndarray:
    # reference/gpu.md §6 proposes a 3g/4g alternation; with one profile per node here, its
    # analogue is demand swinging between the two GPU-hungry tiers (3g.40gb and whole GPUs),
    # so that every few dozen lease lifetimes the best split flips and nodes must be drained.
    hot = 2 if int(position * _PHASES) % 2 == 0 else 4
    w = np.full(5, 0.1)
    w[hot] = 0.6
    return w


_PHASES = 12


# A mix gives the tier probabilities at a position in the trace (0 = first request, 1 = last).
MIXES: Mapping[str, Callable[[float], np.ndarray]] = {
    "small-heavy": lambda _: _SMALL,
    "balanced": lambda _: _BALANCED,
    "large-heavy": lambda _: _LARGE,
    "adversarial": _alternating,
    "shifting": lambda position: _SMALL if position < 0.5 else _LARGE,
}
LOADS: tuple[float, ...] = (0.5, 0.7, 0.9, 1.1)


@dataclass(frozen=True)
class TraceConfig:
    """How requests are drawn: lognormal durations (seconds), patience as a share of duration."""

    requests: int = 5000
    median_duration_s: float = 4 * 3600.0
    duration_sigma: float = 1.0
    max_duration_s: float = 14 * 86400.0
    patience_fraction: float = 0.25
    warmup_fraction: float = 0.1


@dataclass(frozen=True)
class Trace:
    """Requests sorted by arrival, as parallel arrays; `measured` excludes the warm-up."""

    mix: str
    load: float
    gpus: int
    arrival: np.ndarray
    duration: np.ndarray
    patience: np.ndarray
    tier: np.ndarray  # index into TIER_NAMES
    units: np.ndarray
    measured: np.ndarray

    def __len__(self) -> int:
        return len(self.arrival)

    @property
    def gpu_cost(self) -> np.ndarray:
        """Return what each request costs in whole GPUs while it runs on the tier it asked for."""
        return self.units / PER_GPU[self.tier]


def _mean_cost(weights: np.ndarray) -> float:
    cost = 0.0
    for w, name in zip(weights, TIER_NAMES, strict=True):
        sizes, probs = SIZES[name]
        cost += w * float(np.dot(sizes, probs)) / TIERS[name].units_per_gpu
    return cost


def generate(*, mix: str, load: float, gpus: int, seed: int, config: TraceConfig = TraceConfig()) -> Trace:
    """Draw a trace whose offered load is `load` × `gpus` GPUs, whatever the mix does."""
    rng = np.random.default_rng(seed)
    n = config.requests
    mix_at = MIXES[mix]
    sigma = config.duration_sigma
    mean_duration = config.median_duration_s * float(np.exp(sigma**2 / 2))
    duration = np.minimum(
        rng.lognormal(np.log(config.median_duration_s), sigma, size=n), config.max_duration_s
    )
    tier = np.empty(n, dtype=np.int64)
    units = np.empty(n, dtype=np.int64)
    gaps = np.empty(n)
    uniform = rng.random(n)
    for i in range(n):
        weights = mix_at(i / n)
        # Little's law: rate = ρ·G / (E[duration]·E[GPU cost]) keeps the load at ρ when the mix
        # (and so the mean cost of a request) changes.
        rate = load * gpus / (mean_duration * _mean_cost(weights))
        gaps[i] = -np.log(1.0 - uniform[i]) / rate
        tier[i] = rng.choice(5, p=weights)
        sizes, probs = SIZES[TIER_NAMES[tier[i]]]
        units[i] = rng.choice(sizes, p=probs)
    arrival = np.cumsum(gaps)
    measured = np.arange(n) >= int(config.warmup_fraction * n)
    return Trace(
        mix=mix,
        load=load,
        gpus=gpus,
        arrival=arrival,
        duration=duration,
        patience=config.patience_fraction * duration,
        tier=tier,
        units=units,
        measured=measured,
    )
