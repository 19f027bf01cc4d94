"""Tests for bench.stats on synthetic data (no DB needed).

Simulation model used by the rate tests (stated here so the numbers can be judged):

* ``N_BLOCKS`` = 20 ABBA blocks, ``N_SAMPLES`` = 40 latency samples per arm per block;
* within a block, samples are lognormal around 10 ms with log-sigma ``SIGMA_WITHIN`` = 0.30
  (a realistic request-latency spread: p95 is ~1.6x the median);
* a between-block drift, lognormal log-sigma ``SIGMA_BLOCK`` = 0.05 (~5%), multiplies *both*
  arms of a block -- the slow machine-state drift that pairing is meant to remove;
* a residual per-arm drift inside a block, log-sigma ``SIGMA_ARM`` = 0.01 (~1%), that pairing
  does *not* remove (the two halves of a block never see exactly the same machine);
* a true shift multiplies every variant sample by ``shift``.

With these numbers the per-block log ratio of medians has an SD of ~0.08, so the geometric
mean over 20 blocks has a standard error of ~1.8%. That is large against the 3% threshold:
judging by the point estimate alone would give a false verdict in ~12% of A/A runs, so the
A/A test below fails if the interval is too narrow; it is not passed by the threshold alone.
Each simulation uses its own fixed seed (data and bootstrap) and ``n_resamples=999``, so the
rates are deterministic.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from bench import stats
from bench.stats import FASTER, INSUFFICIENT, MIN_BLOCKS, NO_CHANGE, SLOWER

N_RUNS = 200
N_BLOCKS = 20
N_SAMPLES = 40
SIGMA_WITHIN = 0.30
SIGMA_BLOCK = 0.05
SIGMA_ARM = 0.01
MEDIAN_S = 0.010
N_RESAMPLES = 999


def simulate(
    rng: np.random.Generator,
    shift: float = 1.0,
    *,
    n_blocks: int = N_BLOCKS,
    n_samples: int = N_SAMPLES,
    sigma_within: float = SIGMA_WITHIN,
    sigma_block: float = SIGMA_BLOCK,
    sigma_arm: float = SIGMA_ARM,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Paired blocks of latencies (seconds) following the model in the module docstring."""
    block = np.exp(rng.normal(0.0, sigma_block, size=(n_blocks, 1)))
    arm_a = np.exp(rng.normal(0.0, sigma_arm, size=(n_blocks, 1)))
    arm_b = np.exp(rng.normal(0.0, sigma_arm, size=(n_blocks, 1)))
    base = block * arm_a * rng.lognormal(math.log(MEDIAN_S), sigma_within, (n_blocks, n_samples))
    var = (
        shift
        * block
        * arm_b
        * rng.lognormal(math.log(MEDIAN_S), sigma_within, (n_blocks, n_samples))
    )
    return list(zip(base, var, strict=True))


def run_many(shift: float, seed_offset: int) -> list[stats.Effect]:
    """N_RUNS independent simulated comparisons, each with its own fixed seed."""
    effects = []
    for i in range(N_RUNS):
        seed = seed_offset + i
        blocks = simulate(np.random.default_rng(seed), shift)
        effects.append(stats.summarize(blocks, n_resamples=N_RESAMPLES, seed=seed))
    return effects


def test_aa_false_verdict_rate_at_most_5_percent() -> None:
    """A/A: 200 runs of the model above with shift 1.0, default 3% threshold, no noise floor.

    Also checks the test has teeth: the point estimate alone crosses 3% in well over 5% of
    these runs, so it is the interval that keeps the false-verdict rate down. And it records
    the interval's raw miss rate (interval excludes 1): a "95%" percentile interval over 20
    blocks is known to be a little narrow (8-10% misses measured); more than 15% would mean
    the interval had become too narrow.
    """
    effects = run_many(1.0, seed_offset=10_000)
    false_rate = np.mean([e.verdict != NO_CHANGE for e in effects])
    point_beyond = np.mean([abs(e.ratio - 1.0) > 0.03 for e in effects])
    ci_misses = np.mean([not (e.ci_low <= 1.0 <= e.ci_high) for e in effects])
    print(
        f"A/A: false verdicts {false_rate:.1%}, point beyond 3% {point_beyond:.1%}, "
        f"95% CI excludes 1 in {ci_misses:.1%}"
    )
    assert false_rate <= 0.05
    assert point_beyond >= 0.08, "noise too small for the A/A test to mean anything"
    assert ci_misses <= 0.15


@pytest.mark.parametrize(
    ("shift", "expected", "seed_offset"),
    [(1.10, SLOWER, 20_000), (0.90, FASTER, 30_000)],
)
def test_true_10_percent_shift_detected_90_percent(
    shift: float, expected: str, seed_offset: int
) -> None:
    """A true 10% shift (variant samples x1.10 or x0.90), same model, 200 runs: detected in
    the right direction in >= 90% of runs and never called in the wrong direction."""
    effects = run_many(shift, seed_offset=seed_offset)
    verdicts = [e.verdict for e in effects]
    rate = verdicts.count(expected) / N_RUNS
    print(f"shift {shift}: detected {rate:.1%}")
    assert rate >= 0.90
    assert verdicts.count(SLOWER if expected == FASTER else FASTER) == 0


def test_noise_floor_raises_the_bar() -> None:
    """A true 4% slowdown measured precisely (20 blocks x 200 samples, log-sigma 0.05, 0.2%
    residual arm drift) is 'slower' against the 3% threshold alone, but 'no significant
    change' once the A/A noise floor is 5%."""
    blocks = simulate(
        np.random.default_rng(1), 1.04, n_samples=200, sigma_within=0.05, sigma_arm=0.002
    )
    plain = stats.summarize(blocks, seed=1)
    assert plain.verdict == SLOWER
    assert 1.03 < plain.ci_low < plain.ratio < plain.ci_high < 1.05
    floored = stats.summarize(blocks, noise_floor=0.05, seed=1)
    assert floored.verdict == NO_CHANGE
    assert (floored.threshold, floored.noise_floor, floored.effective_threshold) == (
        0.03,
        0.05,
        0.05,
    )
    assert floored.ratio == plain.ratio and floored.ci_low == plain.ci_low


def test_noise_floor_from_aa_tracks_measurement_noise() -> None:
    """noise_floor() of an A/A run is the A/A interval's furthest reach from 1: positive,
    bounding the A/A point estimate, and larger for noisier measurements."""
    noisy_blocks = simulate(np.random.default_rng(2), 1.0)
    quiet_blocks = simulate(np.random.default_rng(2), 1.0, n_samples=200, sigma_within=0.05)
    noisy = stats.noise_floor(noisy_blocks, seed=2)
    quiet = stats.noise_floor(quiet_blocks, seed=2)
    aa = stats.summarize(noisy_blocks, threshold=0.0, seed=2)
    assert noisy == max(1.0 - aa.ci_low, aa.ci_high - 1.0)
    assert noisy >= abs(aa.ratio - 1.0)
    assert 0.0 < quiet < noisy < 0.15
    p95_floor = stats.noise_floor(noisy_blocks, metric="p95", seed=2)
    assert p95_floor > 0.0


def test_p95_metric_sees_a_tail_only_regression() -> None:
    """Variant = baseline with its slowest 10% of samples doubled: the median does not move,
    the p95 clearly does (20 blocks x 200 samples of the standard model)."""
    rng = np.random.default_rng(3)
    blocks = []
    for base, _ in simulate(rng, 1.0, n_samples=200):
        var = base.copy()
        tail = var > np.quantile(var, 0.90)
        var[tail] *= 2.0
        blocks.append((base, var))
    med = stats.summarize(blocks, metric="median", seed=3)
    p95 = stats.summarize(blocks, metric="p95", seed=3)
    assert med.ratio == 1.0 and med.verdict == NO_CHANGE
    assert p95.metric == "p95" and p95.verdict == SLOWER
    assert p95.ratio == pytest.approx(2.0, rel=0.01)
    expected = [stats.percentile(v, 95) / stats.percentile(b, 95) for b, v in blocks]
    np.testing.assert_allclose(stats.block_ratios(blocks, "p95"), expected)


def test_geometric_mean_of_block_ratios() -> None:
    """Ratios are multiplicative: blocks at 0.5x and 2x average to 1x, not 1.25x."""
    blocks = [([1.0, 1.0, 1.0], [0.5, 0.5, 0.5]), ([1.0, 1.0, 1.0], [2.0, 2.0, 2.0])]
    np.testing.assert_allclose(stats.block_ratios(blocks), [0.5, 2.0])
    assert stats.summarize(blocks).ratio == pytest.approx(1.0)


def test_identical_samples_give_a_point_interval_and_no_change() -> None:
    """A/A with bit-identical arms: every block ratio is 1, so the interval is [1, 1] (no
    bootstrap needed), Wilcoxon p is 1 and the noise floor is 0."""
    rng = np.random.default_rng(4)
    samples = [rng.lognormal(-4.6, 0.3, 30) for _ in range(6)]
    blocks = [(s, s.copy()) for s in samples]
    eff = stats.summarize(blocks, seed=0)
    assert (eff.ratio, eff.ci_low, eff.ci_high, eff.p_wilcoxon) == (1.0, 1.0, 1.0, 1.0)
    assert eff.verdict == NO_CHANGE
    assert stats.noise_floor(blocks) == 0.0


def test_constant_ratio_blocks_are_a_point_interval() -> None:
    """Every block exactly 2x slower (e.g. an exact counter): interval collapses to the point
    and the verdict is still given."""
    blocks = [([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])] * MIN_BLOCKS
    eff = stats.summarize(blocks)
    assert (eff.ratio, eff.ci_low, eff.ci_high) == pytest.approx((2.0, 2.0, 2.0))
    assert eff.verdict == SLOWER
    assert eff.p_wilcoxon is not None and eff.p_wilcoxon < 0.1


@pytest.mark.parametrize("n_blocks", [1, MIN_BLOCKS - 1])
def test_too_few_blocks_is_insufficient(n_blocks: int) -> None:
    """Below MIN_BLOCKS: the ratio is reported, but no interval, no p and no verdict."""
    blocks = simulate(np.random.default_rng(5), 1.5, n_blocks=n_blocks)
    eff = stats.summarize(blocks)
    assert eff.verdict == INSUFFICIENT
    assert math.isnan(eff.ci_low) and math.isnan(eff.ci_high)
    assert eff.p_wilcoxon is None
    assert eff.n_blocks == n_blocks
    assert eff.ratio > 1.0
    with pytest.raises(ValueError, match="A/A blocks"):
        stats.noise_floor(blocks)


def test_min_blocks_is_enough_for_a_verdict() -> None:
    blocks = simulate(np.random.default_rng(6), 1.5, n_blocks=MIN_BLOCKS)
    eff = stats.summarize(blocks, seed=6)
    assert eff.verdict == SLOWER
    assert eff.p_wilcoxon is not None


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        ([], "no blocks"),
        ([([], [1.0])], "baseline samples are empty"),
        ([([1.0], np.array([]))], "variant samples are empty"),
        ([([1.0, math.nan], [1.0])], "NaN or inf"),
        ([([0.0, 0.0, 1.0], [1.0])], "must be > 0"),
        ([([[1.0, 2.0]], [1.0])], "1-D"),
        ([([1.0],)], r"expected \(baseline, variant\)"),
    ],
)
def test_bad_input_raises_clear_value_error(blocks: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stats.summarize(blocks)


def test_bad_parameters_raise() -> None:
    blocks = simulate(np.random.default_rng(7), 1.0, n_blocks=5)
    with pytest.raises(ValueError, match="unknown statistic"):
        stats.block_ratios(blocks, "min")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="confidence"):
        stats.summarize(blocks, confidence=95)
    with pytest.raises(ValueError, match=">= 0"):
        stats.summarize(blocks, threshold=-0.01)
    with pytest.raises(ValueError, match="empty"):
        stats.percentile([], 95)
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        stats.percentile([1.0], 950)


def test_higher_is_better_flips_the_naming() -> None:
    """Throughput (req/s) 10% higher in the variant is 'faster' with lower_is_better=False,
    while the ratio stays variant / baseline (> 1)."""
    blocks = simulate(np.random.default_rng(8), 1.10, n_samples=200, sigma_within=0.05)
    thr = stats.summarize(blocks, lower_is_better=False, seed=8)
    lat = stats.summarize(blocks, lower_is_better=True, seed=8)
    assert thr.ratio > 1.05
    assert (thr.verdict, lat.verdict) == (FASTER, SLOWER)
    assert stats.verdict(0.80, 0.90, 0.03, 0.0, lower_is_better=False) == SLOWER


@pytest.mark.parametrize(
    ("ci", "threshold", "floor", "expected"),
    [
        ((0.90, 0.96), 0.03, 0.0, FASTER),
        ((0.90, 1.0 - 0.03), 0.03, 0.0, NO_CHANGE),  # touching the bar is not beyond it
        ((1.0 + 0.03, 1.10), 0.03, 0.0, NO_CHANGE),
        ((1.031, 1.10), 0.03, 0.0, SLOWER),
        ((0.90, 1.01), 0.03, 0.0, NO_CHANGE),  # interval straddles 1
        ((0.95, 0.96), 0.03, 0.05, NO_CHANGE),  # beyond threshold, inside noise floor
        ((0.90, 0.94), 0.03, 0.05, FASTER),
        ((0.99, 0.995), 0.0, 0.0, FASTER),  # no threshold: any interval excluding 1
        ((1.0, 1.0), 0.0, 0.0, NO_CHANGE),
        ((math.nan, math.nan), 0.03, 0.0, INSUFFICIENT),
    ],
)
def test_verdict_boundaries(
    ci: tuple[float, float], threshold: float, floor: float, expected: str
) -> None:
    assert stats.verdict(ci[0], ci[1], threshold, floor) == expected


def test_verdict_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="ci_low"):
        stats.verdict(1.1, 1.0, 0.03, 0.0)
    with pytest.raises(ValueError, match=">= 0"):
        stats.verdict(0.9, 1.0, -0.03, 0.0)
    with pytest.raises(ValueError, match=">= 0"):
        stats.verdict(0.9, 1.0, 0.03, math.nan)


def test_seeded_summaries_are_reproducible_and_json_safe() -> None:
    blocks = simulate(np.random.default_rng(9), 0.9)
    a = stats.summarize(blocks, seed=42)
    b = stats.summarize(blocks, seed=42)
    assert a == b
    assert a.ci_low < a.ratio < a.ci_high
    d = a.as_dict()
    assert d["verdict"] == a.verdict and d["effective_threshold"] == 0.03
    json.dumps(d, allow_nan=False)
    short = stats.summarize(blocks[:2]).as_dict()
    assert short["ci_low"] is None and short["p_wilcoxon"] is None
    json.dumps(short, allow_nan=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.ratio = 1.0  # type: ignore[misc]
