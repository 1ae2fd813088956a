"""The simulated arena's models (strength, popularity, style), planted per-group offsets and voters.

Units: strengths and offsets are Elo-like rating points (400 points = 10x odds, mean 1000);
voter bias parameters are natural log-odds added to the vote's decisive logit (see
:mod:`.votes`). Every draw comes from the generator passed in, so a seed fixes everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import ArenatreeError
from .texts import FAMILIES

VARIANTS = ("7b", "13b", "70b", "mini", "pro", "max")
VOTER_TYPES = ("unbiased", "position", "length", "refusal_averse", "random", "fan")
DEFAULT_VOTER_MIX: dict[str, float] = {
    "unbiased": 0.70,
    "position": 0.07,
    "length": 0.07,
    "refusal_averse": 0.06,
    "random": 0.05,
    "fan": 0.05,
}
# Ranges of each biased type's parameters, drawn uniformly per voter.
POSITION_LOGIT = (0.7, 1.5)  # added to the decisive logit for model_a (left)
LENGTH_COEF = (2.0, 4.0)  # extra log-odds per unit of (tokens_a - tokens_b) / (tokens_a + tokens_b + 1)
REFUSAL_EXTRA = (2.0, 4.0)  # extra log-odds against a side that refused
RANDOM_TIE = (0.0, 0.2)  # a random clicker's probability of a tie (half of them both-bad)
FAN_LOYALTY = 1.0  # probability that a fan votes for the favourite when it is in the battle
FAN_PRESENCE = 0.0  # probability that a fan's battle is made to show the favourite (0: battles as anyone's)
# Each voter parameter and its default range (min, max), drawn uniformly per voter of the type;
# ``simulate(voter_params=...)`` overrides any of them with a range or one value.
VOTER_PARAMS: dict[str, tuple[float, float]] = {
    "position_logit": POSITION_LOGIT,
    "length_coef": LENGTH_COEF,
    "refusal_penalty": REFUSAL_EXTRA,
    "random_tie": RANDOM_TIE,
    "fan_loyalty": (FAN_LOYALTY, FAN_LOYALTY),
    "fan_presence": (FAN_PRESENCE, FAN_PRESENCE),
}
# Strong, unmistakable anomalies (issue 15, "anomalous voters"): position voters who click left
# on ~99.7% of decisive votes (and tie on ~5% of votes, not ~34%), length voters who pick the
# longer answer on ~96% of them (ties ~10%), fans who vote only on battles that show their model
# and always for it (always-one-model). Random clickers keep their default. Measured on seed 1
# of bench/bench_voter_types.py, which uses it, as does tests/test_voter_types.py.
STRONG_ANOMALIES: dict[str, tuple[float, float]] = {
    "position_logit": (6.0, 8.0),
    "length_coef": (20.0, 30.0),
    "fan_loyalty": (1.0, 1.0),
    "fan_presence": (1.0, 1.0),
}


@dataclass(frozen=True)
class Models:
    """Model truth, every array shape (n_models,)."""

    names: list[str]
    families: list[str]
    strength: np.ndarray  # rating points, mean 1000
    popularity: np.ndarray  # sampling weight of appearing in a battle, sums to 1
    mean_tokens: np.ndarray  # planned mean answer length, tokens
    headers: np.ndarray  # planned mean '## ' headers per answer
    lists: np.ndarray  # planned mean list items per answer
    bold: np.ndarray  # planned mean bold spans per answer
    refusal_rate: np.ndarray  # probability that an answer is a refusal
    leak_rate: np.ndarray  # probability that a (non-refusal) answer names the model family


def model_names(n: int) -> tuple[list[str], list[str]]:
    """``n`` distinct model names ``sim-<family>-<variant>`` and their families."""
    names, fams = [], []
    for k in range(n):
        fam = FAMILIES[k % len(FAMILIES)]
        var = VARIANTS[(k // len(FAMILIES)) % len(VARIANTS)]
        rnd = k // (len(FAMILIES) * len(VARIANTS))
        names.append(f"sim-{fam}-{var}" + (f"-r{rnd + 1}" if rnd else ""))
        fams.append(fam)
    return names, fams


def make_models(n: int, rng: np.random.Generator, *, spread: float = 500.0) -> Models:
    """``n`` models. Strengths: ``spread`` points from weakest to strongest, evenly spaced
    with a jitter of a quarter spacing, shuffled over the names, mean exactly 1000."""
    names, fams = model_names(n)
    base = np.linspace(-spread / 2, spread / 2, n)
    jitter = rng.uniform(-0.25, 0.25, n) * (spread / max(n - 1, 1))
    strength = rng.permutation(base) + jitter
    strength = np.round(strength - strength.mean() + 1000.0, 1)
    pop = rng.lognormal(0.0, 0.5, n)
    return Models(
        names=names,
        families=fams,
        strength=strength,
        popularity=pop / pop.sum(),
        mean_tokens=np.round(np.exp(rng.uniform(np.log(100), np.log(500), n)), 1),
        headers=np.round(rng.uniform(0, 2.5, n), 2),
        lists=np.round(rng.uniform(0, 7.0, n), 2),
        bold=np.round(rng.uniform(0, 5.0, n), 2),
        refusal_rate=np.round(0.01 + 0.19 * rng.uniform(0, 1, n) ** 3, 3),
        leak_rate=np.round(0.05 * rng.uniform(0, 1, n) ** 2, 3),
    )


def plant_offsets(
    n_models: int,
    group_sizes: np.ndarray,
    rng: np.random.Generator,
    *,
    weak_share: float = 0.5,
    weaknesses: tuple[int, int] = (1, 3),
    weakness_points: tuple[float, float] = (150.0, 400.0),
    strong_share: float = 0.25,
    strength_points: tuple[float, float] = (100.0, 250.0),
    group_size: tuple[int, int] = (50, 400),
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """Planted strength offsets, shape (n_models, n_groups), rating points (0 = none).

    ``round(weak_share * n_models)`` models get ``weaknesses`` (inclusive range) groups each
    with an offset of minus U(``weakness_points``); ``round(strong_share * n_models)`` models
    get one group with plus U(``strength_points``). Only groups whose prompt count lies in
    ``group_size`` (inclusive) are eligible, and only those ``allowed`` ((n_groups,) bool, default
    all); a (model, group) cell holds at most one offset.
    """
    off = np.zeros((n_models, len(group_sizes)))
    ok = (group_sizes >= group_size[0]) & (group_sizes <= group_size[1])
    eligible = np.flatnonzero(ok & (True if allowed is None else np.asarray(allowed, bool)))
    if len(eligible) == 0 or n_models == 0:
        return off
    n_weak = min(n_models, round(weak_share * n_models))
    for m in rng.permutation(n_models)[:n_weak]:
        k = min(len(eligible), int(rng.integers(weaknesses[0], weaknesses[1] + 1)))
        for g in rng.choice(eligible, size=k, replace=False):
            off[m, g] = -round(float(rng.uniform(*weakness_points)), 1)
    n_strong = min(n_models, round(strong_share * n_models))
    for m in rng.permutation(n_models)[:n_strong]:
        free = eligible[off[m, eligible] == 0]
        if len(free):
            off[m, rng.choice(free)] = round(float(rng.uniform(*strength_points)), 1)
    return off


@dataclass(frozen=True)
class Voters:
    """Voter truth, every array shape (n_voters,)."""

    judges: list[str]
    types: np.ndarray  # index into VOTER_TYPES
    activity: np.ndarray  # probability that a vote comes from this voter, sums to 1
    position: np.ndarray  # log-odds for model_a (position voters), else 0
    length: np.ndarray  # extra length coefficient (length voters), else 0
    refusal: np.ndarray  # extra refusal penalty in log-odds (refusal-averse voters), else 0
    random_tie: np.ndarray  # tie probability of a random clicker, else 0
    fan_of: np.ndarray  # model index the fan votes for, -1 for non-fans
    loyalty: np.ndarray  # probability a fan votes for the favourite when present, else 0
    presence: np.ndarray  # probability a fan's battle is made to show the favourite, else 0

    def params(self, j: int, model_names: list[str]) -> dict:
        """The planted parameters of voter ``j`` (only those of its type)."""
        t = VOTER_TYPES[self.types[j]]
        if t == "position":
            return {"position_logit": float(self.position[j])}
        if t == "length":
            return {"length_coef": float(self.length[j])}
        if t == "refusal_averse":
            return {"refusal_penalty": float(self.refusal[j])}
        if t == "random":
            tie = float(self.random_tie[j])
            half = (1 - tie) / 2
            return {"p_model_a": half, "p_model_b": half, "p_tie": tie / 2, "p_tie_bothbad": tie / 2}
        if t == "fan":
            out = {"model": model_names[self.fan_of[j]], "loyalty": float(self.loyalty[j])}
            if self.presence[j] > 0:
                out["presence"] = float(self.presence[j])
            return out
        return {}


def check_mix(mix: Mapping[str, float]) -> dict[str, float]:
    """``mix`` normalised to sum 1, in VOTER_TYPES order; ArenatreeError on unknown types."""
    bad = sorted(set(mix) - set(VOTER_TYPES))
    if bad:
        raise ArenatreeError(f"unknown voter type(s) {', '.join(bad)} (known: {', '.join(VOTER_TYPES)})")
    w = np.array([float(mix.get(t, 0.0)) for t in VOTER_TYPES])
    if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
        raise ArenatreeError(f"voter mix needs non-negative shares with a positive sum, got {dict(mix)}")
    return dict(zip(VOTER_TYPES, np.round(w / w.sum(), 9).tolist(), strict=True))


def check_voter_params(
    overrides: Mapping[str, float | tuple[float, float]] | None,
) -> dict[str, tuple[float, float]]:
    """VOTER_PARAMS with ``overrides`` (a range (min, max) or one value per key) applied; ArenatreeError
    on unknown keys or min > max; loyalty and presence must lie in [0, 1]."""
    out = dict(VOTER_PARAMS)
    for key, value in (overrides or {}).items():
        if key not in VOTER_PARAMS:
            known = ", ".join(VOTER_PARAMS)
            raise ArenatreeError(f"unknown voter parameter {key!r} (known: {known})")
        lo, hi = (float(value), float(value)) if np.isscalar(value) else (float(value[0]), float(value[1]))
        if not lo <= hi or (key.startswith("fan_") and not 0 <= lo <= hi <= 1):
            raise ArenatreeError(
                f"voter parameter {key} needs min <= max (within [0, 1] for fans), got {value}"
            )
        out[key] = (lo, hi)
    return out


def make_voters(
    n: int,
    mix: Mapping[str, float],
    n_models: int,
    model_popularity: np.ndarray,
    rng: np.random.Generator,
    *,
    prefix: str,
    activity_sigma: float = 1.0,
    params: Mapping[str, float | tuple[float, float]] | None = None,
) -> Voters:
    """``n`` voters ``<prefix>user<j>``; type counts follow ``mix`` (largest-remainder
    rounding, so they are exact), assigned in random order. Activity is lognormal(0,
    ``activity_sigma``): a few voters cast many votes, as in real arenas. ``params``: overrides
    of :data:`VOTER_PARAMS` (see :func:`check_voter_params`); fan loyalty and presence are drawn only
    when given as a range, so the default draws are those of the fixed defaults."""
    ranges = check_voter_params(params)
    shares = np.array(list(check_mix(mix).values()))
    raw = shares * n
    counts = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    types = rng.permutation(np.repeat(np.arange(len(VOTER_TYPES)), counts))
    act = rng.lognormal(0.0, activity_sigma, n)

    def draw(t: str, lo_hi: tuple[float, float]) -> np.ndarray:
        v = np.round(rng.uniform(lo_hi[0], lo_hi[1], n), 3)
        return np.where(types == VOTER_TYPES.index(t), v, 0.0)

    position = draw("position", ranges["position_logit"])
    length = draw("length", ranges["length_coef"])
    refusal = draw("refusal_averse", ranges["refusal_penalty"])
    random_tie = draw("random", ranges["random_tie"])
    fav = rng.choice(n_models, size=n, p=model_popularity)
    is_fan = types == VOTER_TYPES.index("fan")

    def fixed_or_drawn(key: str) -> np.ndarray:
        lo, hi = ranges[key]
        return np.full(n, lo) if lo == hi else draw("fan", (lo, hi))

    width = len(str(max(n - 1, 0)))
    return Voters(
        judges=[f"{prefix}user{j:0{width}d}" for j in range(n)],
        types=types,
        activity=act / act.sum(),
        position=position,
        length=length,
        refusal=refusal,
        random_tie=random_tie,
        fan_of=np.where(is_fan, fav, -1),
        loyalty=np.where(is_fan, fixed_or_drawn("fan_loyalty"), 0.0),
        presence=np.where(is_fan, fixed_or_drawn("fan_presence"), 0.0),
    )
