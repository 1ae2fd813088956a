"""Battles and their outcomes: who meets whom on which prompt, judged by whom, and who wins.

Vote model (all arrays have shape (n_votes,); ``LOGIT = ln(10) / 400`` turns rating points
into natural log-odds):

* rating of a side on the vote's prompt: ``r = strength[model] + sum of the model's planted
  offsets over the groups the prompt belongs to`` (offsets add up);
* decisive logit for model_a::

      z = LOGIT * (r_a - r_b)                                   # Bradley-Terry
        + sum_k style_coefs[k] * (x_a,k - x_b,k) / (x_a,k + x_b,k + 1)   # k: tokens, headers, lists, bold
        - refusal_penalty * (refusal_a - refusal_b)             # every voter dislikes refusals a bit
        + voter bias                                            # see below

  voter bias: position voters add ``position_logit``; length voters add ``length_coef *
  d_tokens``; refusal-averse voters subtract ``refusal_penalty * (refusal_a - refusal_b)``;
  unbiased voters and fans add nothing;
* ties (Davidson): with ``p = sigmoid(z)`` and ``nu = 2 * tie_rate / (1 - tie_rate)``,
  P(model_a) = p / D, P(model_b) = (1 - p) / D, P(tie of either kind) = nu * sqrt(p (1 - p)) / D,
  D = 1 + nu * sqrt(p (1 - p)); so two equal models tie with probability ``tie_rate``;
* a tie is 'tie (bothbad)' with probability ``sigmoid(logit(bothbad_share) + BOTHBAD_REFUSAL *
  (refusal_a + refusal_b) - BOTHBAD_QUALITY * ((r_a + r_b) / 2 - 1000) / 200)``, else 'tie';
* random clickers ignore all of it: fixed probabilities (1 - t)/2, (1 - t)/2, t/2, t/2;
* fans: when their model is in the battle they vote for it with probability ``loyalty``,
  otherwise (and when it is absent) they vote like an unbiased voter. A fan with ``presence``
  > 0 votes on battles that show its model more often: each of its battles is, with probability
  ``presence``, made to show the favourite (:func:`seat_favourites`; a voter who only votes
  when it spots its model).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit, logit

from ..ratings import Cells, bradley_terry
from .population import VOTER_TYPES, Models, Voters

LOGIT = math.log(10.0) / 400.0  # natural log-odds per rating point
STYLE_FEATURES = ("tokens", "headers", "lists", "bold")
DEFAULT_STYLE_COEFS: dict[str, float] = {"tokens": 0.7, "headers": 0.1, "lists": 0.1, "bold": 0.1}
BOTHBAD_REFUSAL = 1.0  # log-odds of 'both bad' per refusing side
BOTHBAD_QUALITY = 0.8  # log-odds of 'both bad' per 200 points of the pair's mean rating below 1000
OUTCOMES = ("model_a", "model_b", "tie", "tie (bothbad)")


def sample_battles(
    n: int,
    n_prompts: int,
    popularity: np.ndarray,
    activity: np.ndarray,
    rng: np.random.Generator,
    *,
    start: float,
    days: float,
) -> dict[str, np.ndarray]:
    """``n`` battles in time order: prompt (uniform over the pool), a pair of distinct models
    (each drawn by popularity, the second redrawn until distinct, sides then shuffled), judge
    (by activity) and tstamp (unix seconds, whole 1e-4 s, uniform over ``days`` from
    ``start``, sorted). Arrays of shape (n,)."""
    prompt = rng.integers(0, n_prompts, n)
    a = rng.choice(len(popularity), size=n, p=popularity)
    b = rng.choice(len(popularity), size=n, p=popularity)
    same = np.flatnonzero(a == b)
    while len(same):
        b[same] = rng.choice(len(popularity), size=len(same), p=popularity)
        same = same[a[same] == b[same]]
    # the redraw makes b's marginal differ from a's: shuffle sides so neither position is favoured
    swap = rng.uniform(size=n) < 0.5
    a, b = np.where(swap, b, a), np.where(swap, a, b)
    judge = rng.choice(len(activity), size=n, p=activity)
    # whole ten-thousandths of a second: ticks / 1e4 is the double nearest to the 4-decimal
    # value, so the JSON text (printed with 4 decimals) and Parquet's double agree exactly
    ticks = round(start * 1e4) + np.sort(rng.integers(0, int(days * 86400 * 1e4), n))
    tstamp = ticks / 1e4
    return {"prompt": prompt, "a": a, "b": b, "judge": judge, "tstamp": tstamp}


def seat_favourites(battles: dict[str, np.ndarray], voters: Voters, rng: np.random.Generator) -> None:
    """Put each fan's favourite into its battles, in place: with probability ``presence[judge]`` a
    battle that does not show the favourite gets it on a side drawn 50/50 (the other side stays, so
    the two models remain distinct and neither side is favoured). Draws nothing when no voter has
    a presence (the default), so default arenas are unchanged."""
    j = battles["judge"]
    presence = voters.presence[j]
    if not (presence > 0).any():
        return
    fav = voters.fan_of[j]
    u = rng.uniform(size=(2, len(j)))
    move = (u[0] < presence) & (fav >= 0) & (battles["a"] != fav) & (battles["b"] != fav)
    left = move & (u[1] < 0.5)
    right = move & ~left
    battles["a"] = np.where(left, fav, battles["a"])
    battles["b"] = np.where(right, fav, battles["b"])


def style_diff(xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """Normalised style difference (x_a - x_b) / (x_a + x_b + 1), shape of the inputs."""
    xa = xa.astype(np.float64)
    xb = xb.astype(np.float64)
    return (xa - xb) / (xa + xb + 1.0)


def outcome_probabilities(
    battles: dict[str, np.ndarray],
    feats_a: dict[str, np.ndarray],
    feats_b: dict[str, np.ndarray],
    rating_a: np.ndarray,
    rating_b: np.ndarray,
    voters: Voters,
    *,
    style_coefs: dict[str, float],
    refusal_penalty: float | np.ndarray,
    tie_rate: float,
    bothbad_share: float,
    biased: bool = True,
    style: bool = True,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Outcome probabilities, shape (n, 4) in OUTCOMES order, and the logit parts (n,) each:
    ``strength`` (BT term), ``style`` (style + global refusal term), ``bias`` (voter term).

    ``rating_a/b`` are the sides' ratings on the vote's prompt (strength + offsets), points.
    ``refusal_penalty``: log-odds against a refusing side, one value or one per vote (n,).
    ``biased=False`` treats every voter as unbiased; ``style=False`` drops the style and global
    refusal terms (used for the truth's counterfactual expected ratings).
    """
    ref_a = feats_a["refusal"].astype(np.float64)
    ref_b = feats_b["refusal"].astype(np.float64)
    strength = LOGIT * (rating_a - rating_b)
    sty = np.zeros_like(strength)
    if style:
        for k in STYLE_FEATURES:
            c = float(style_coefs.get(k, 0.0))
            if c:
                sty += c * style_diff(feats_a[k], feats_b[k])
        sty -= refusal_penalty * (ref_a - ref_b)
    j = battles["judge"]
    bias = np.zeros_like(strength)
    if biased:
        bias = voters.position[j] + voters.length[j] * style_diff(feats_a["tokens"], feats_b["tokens"])
        bias -= voters.refusal[j] * (ref_a - ref_b)
    p = expit(strength + sty + bias)
    nu = 2.0 * tie_rate / (1.0 - tie_rate)
    root = nu * np.sqrt(p * (1.0 - p))
    den = 1.0 + root
    q_bad = expit(
        logit(bothbad_share)
        + BOTHBAD_REFUSAL * (ref_a + ref_b)
        - BOTHBAD_QUALITY * ((rating_a + rating_b) / 2.0 - 1000.0) / 200.0
    )
    probs = np.column_stack([p / den, (1.0 - p) / den, root / den * (1.0 - q_bad), root / den * q_bad])
    if biased:
        kind = voters.types[j]
        rnd = kind == VOTER_TYPES.index("random")
        if rnd.any():
            t = voters.random_tie[j[rnd]]
            probs[rnd] = np.column_stack([(1 - t) / 2, (1 - t) / 2, t / 2, t / 2])
        fav = voters.fan_of[j]
        loyal = voters.loyalty[j][:, None]
        for side in (0, 1):
            hit = (fav >= 0) & (fav == (battles["a"] if side == 0 else battles["b"]))
            if hit.any():
                pick = np.zeros((int(hit.sum()), 4))
                pick[:, side] = 1.0
                probs[hit] = loyal[hit] * pick + (1.0 - loyal[hit]) * probs[hit]
    return probs, {"strength": strength, "style": sty, "bias": bias}


def sample_outcomes(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One outcome per row of ``probs`` (n, 4): indices into OUTCOMES, shape (n,), int8."""
    u = rng.uniform(0.0, 1.0, len(probs))
    cum = np.cumsum(probs, axis=1)
    return np.minimum((u[:, None] >= cum[:, :3]).sum(axis=1), 3).astype(np.int8)


def expected_ratings(a: np.ndarray, b: np.ndarray, probs: np.ndarray, names: list[str]) -> np.ndarray:
    """The plain Bradley-Terry ratings (ties as half a win, mean 1000 over the models that
    play, points) that the expected outcome counts of these battles give: what a BT fit
    converges to as the votes on these very battles are redrawn many times.

    ``a``, ``b``: model indices, shape (n,); ``probs``: (n, 4) in OUTCOMES order. Returns shape
    (n_models,), NaN for models in no battle.
    """
    out = np.full(len(names), np.nan)
    present = np.flatnonzero(np.bincount(np.concatenate([a, b]), minlength=len(names)))
    if len(present) < 2:
        return out
    index = np.full(len(names), -1)
    index[present] = np.arange(len(present))
    m = len(present)
    cell = index[a].astype(np.int64) * m + index[b]
    sums = [np.bincount(cell, probs[:, k], m * m) for k in range(4)]
    keep = np.flatnonzero(sums[0] + sums[1] + sums[2] + sums[3])
    cells = Cells(keep // m, keep % m, sums[0][keep], sums[1][keep], sums[2][keep] + sums[3][keep])
    out[present] = bradley_terry([names[i] for i in present], cells)
    return out


def model_ratings_on_prompts(models: Models, offsets: np.ndarray, membership: np.ndarray) -> np.ndarray:
    """Each model's rating on each prompt, shape (n_models, n_prompts), points:
    strength plus the sum of its offsets over the prompt's groups."""
    return models.strength[:, None] + offsets @ membership.astype(np.float64)
