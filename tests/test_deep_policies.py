"""Candidate-scoring deep-RL policies (agents.scoring, agents.scoring_policy, agents.slate_dqn):
equivariance to candidate order, the Plackett-Luce slate law and its propensities, the slate
DQN, save/load, and (slow) PPO against LinUCB and random on the default preset."""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from agents import make_agent
from agents.deep_rl import SB3Agent, SlatePolicy
from agents.scoring import CandidateScorer, pool_candidates, split_observation
from agents.scoring_policy import PlackettLuceDistribution, ScoringDQNPolicy, ScoringSlatePolicy
from agents.slate_dqn import SlateDQN
from experiments.rollout import rollout
from simenv import RecVectorEnv, WorldSpec, get_preset, with_overrides
from simenv.wrappers import flatten_observation

SMALL = {"n_candidates": 6, "slate_size": 2, "catalog": {"n_items": 200, "dim": 4}, "users": {"observed_dims": 4}}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_config(**extra):
    return with_overrides(get_preset("default"), {**SMALL, **extra})


def small_obs(config, n=8, seed=1):
    obs, _ = RecVectorEnv(n, config=config).reset(seed=seed)
    return obs


# ---------------------------------------------------------------------------- equivariance


@pytest.mark.parametrize("hidden, interaction", [((32, 16), 8), ((), 0), ((8,), 0)])
def test_permuting_candidates_permutes_scores_exactly(hidden, interaction):
    torch.manual_seed(0)
    scorer = CandidateScorer(5, 7, hidden, interaction)
    user, cand = torch.randn(9, 5), torch.randn(9, 11, 7)
    perm = torch.randperm(11, generator=torch.Generator().manual_seed(3))
    scores = scorer(user, cand)
    assert scores.shape == (9, 11)
    # the same arithmetic on each pair: equal up to the float32 rounding of the matrix kernels
    # (whose summation order may depend on a row's place in its block), far below any score gap
    torch.testing.assert_close(scorer(user, cand[:, perm]), scores[:, perm], rtol=0, atol=1e-6)
    assert not torch.allclose(scores[:, perm], scores, atol=1e-3)  # the permutation moved scores
    # the pooled summary does not depend on the order (mean to rounding, max exactly)
    pooled, pooled_perm = pool_candidates(cand), pool_candidates(cand[:, perm])
    assert torch.equal(pooled[:, 7:], pooled_perm[:, 7:])
    torch.testing.assert_close(pooled[:, :7], pooled_perm[:, :7], rtol=0, atol=1e-6)


def test_scorer_scores_by_hand_without_hidden_layers():
    scorer = CandidateScorer(2, 3, hidden=(), interaction=0)
    with torch.no_grad():
        scorer.head.weight.copy_(torch.tensor([[1.0, -2.0, 0.5, 3.0, -1.0]]))
        scorer.head.bias.fill_(0.25)
    user, cand = torch.tensor([[1.0, 2.0]]), torch.tensor([[[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]]])
    # 1 - 4 + (0.5 * 1 + 3 * 0 - 1 * 2) + 0.25 = -4.25 ; 1 - 4 + (0 + 3 + 1) + 0.25 = 1.25
    torch.testing.assert_close(scorer(user, cand), torch.tensor([[-4.25, 1.25]]))


def test_split_observation_matches_flatten_and_rejects_bad_widths():
    config = small_config()
    obs = small_obs(config, n=3)
    spec = WorldSpec.from_config(config)
    user, cand = split_observation(torch.as_tensor(flatten_observation(obs)), spec.user_dim, spec.item_dim)
    np.testing.assert_array_equal(user.numpy(), obs["user"])
    np.testing.assert_array_equal(cand.numpy(), obs["candidates"])
    with pytest.raises(ValueError, match=r"\(B, 9 \+ C \* 4\)"):
        split_observation(torch.zeros(2, 9 + 4 * 3 + 1), 9, 4)
    with pytest.raises(ValueError, match="hidden widths >= 1"):
        CandidateScorer(3, 3, hidden=(0,))


def policy_parts(name):
    config = small_config()
    agent = make_agent(name, WorldSpec.from_config(config), n_envs=4)
    return agent, config


def permuted_flat(obs, perm):
    moved = {"user": obs["user"], "candidates": obs["candidates"][:, perm]}
    return torch.as_tensor(flatten_observation(obs)), torch.as_tensor(flatten_observation(moved))


def test_scoring_policy_logits_permute_and_value_is_invariant():
    agent, config = policy_parts("ppo")
    policy = agent.ensure_model().policy
    assert isinstance(policy, ScoringSlatePolicy)
    torch.manual_seed(1)
    for p in policy.parameters():  # away from the near-zero initial policy head
        p.data.normal_(0, 0.5)
    obs = small_obs(config)
    perm = np.array([3, 0, 5, 1, 4, 2])
    flat, moved = permuted_flat(obs, perm)
    with torch.no_grad():
        logits, logits_perm = policy.get_distribution(flat).logits, policy.get_distribution(moved).logits
        values, values_perm = policy.predict_values(flat), policy.predict_values(moved)
    torch.testing.assert_close(logits_perm, logits[:, perm], rtol=0, atol=1e-5)
    torch.testing.assert_close(values_perm, values, rtol=0, atol=1e-5)
    # the served slot law follows the permutation too
    moved_obs = {**obs, "candidates": obs["candidates"][:, perm]}
    np.testing.assert_allclose(agent._probabilities(moved_obs), agent._probabilities(obs)[:, :, perm], rtol=1e-5)


def test_scoring_q_network_permutes_q_values():
    config = small_config()
    agent = make_agent("dqn", WorldSpec.from_config(config))
    policy = agent.ensure_model().policy
    assert isinstance(policy, ScoringDQNPolicy) and isinstance(agent.model, SlateDQN)
    obs = small_obs(config)
    perm = np.array([5, 4, 3, 2, 1, 0])
    q = agent.q_values(obs)
    assert q.shape == (8, 6)
    moved = agent.q_values({**obs, "candidates": obs["candidates"][:, perm]})
    np.testing.assert_allclose(moved, q[:, perm], rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------- Plackett-Luce law


def plackett_luce_probability(p, slate):
    """Hand computation: product over slots of p_x / (1 - mass of earlier slots)."""
    prob, used = 1.0, 0.0
    for x in slate:
        prob *= p[x] / (1.0 - used)
        used += p[x]
    return prob


def test_plackett_luce_log_prob_and_entropy_by_hand():
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4]], dtype=torch.float64))
    p = [0.1, 0.2, 0.3, 0.4]
    slates = list(itertools.permutations(range(4), 2))
    want = np.array([plackett_luce_probability(p, s) for s in slates])
    assert want.sum() == pytest.approx(1.0)
    dist = PlackettLuceDistribution(2, 4).proba_distribution(logits.expand(12, 4))
    got = dist.log_prob(torch.tensor(slates)).exp().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # chain-rule entropy along a slate; its mean under the law is the slate entropy
    per_slate = dist.entropy().numpy()
    np.testing.assert_allclose((want * per_slate).sum(), -(want * np.log(want)).sum(), rtol=1e-12)
    assert dist.log_prob(torch.tensor([[2, 2]] * 12)).isinf().all()  # a repeat has no mass
    np.testing.assert_array_equal(dist.mode()[0].numpy(), [3, 2])


def chi_square_p(counts, probs):
    """p-value of Pearson's chi-square test of ``counts`` against ``probs``."""
    counts = np.asarray(counts, dtype=np.float64)
    return stats.chisquare(counts, probs / probs.sum() * counts.sum()).pvalue


def test_gumbel_top_k_draws_follow_plackett_luce():
    p = np.array([0.05, 0.15, 0.3, 0.5])
    slates = list(itertools.permutations(range(4), 2))
    want = np.array([plackett_luce_probability(p, s) for s in slates])
    n = 60_000
    torch.manual_seed(5)
    dist = PlackettLuceDistribution(2, 4).proba_distribution(torch.log(torch.tensor(p)).expand(n, 4))
    draws = dist.sample().numpy()
    assert (draws[:, 0] != draws[:, 1]).all()
    counts = [np.sum((draws[:, 0] == a) & (draws[:, 1] == b)) for a, b in slates]
    assert chi_square_p(counts, want) > 1e-3  # 11 dof; fails by chance once in 1000 runs


def serving_counts(agent, obs, n_rows):
    """Slate counts and product-of-propensity probabilities of one observation repeated n_rows times."""
    one = {k: np.repeat(v[:1], n_rows, axis=0) for k, v in obs.items()}
    decision = agent.act(one, np.random.default_rng(11))
    c = agent.spec.n_candidates
    slates = list(itertools.permutations(range(c), agent.spec.slate_size))
    index = {s: i for i, s in enumerate(slates)}
    counts = np.zeros(len(slates))
    probs = np.zeros(len(slates))
    for slate, props in zip(map(tuple, decision.slates), decision.propensities, strict=True):
        counts[index[slate]] += 1
        probs[index[slate]] = np.prod(props)  # the same slate always has the same propensities
    return counts, probs, decision


def test_served_ppo_slates_match_their_propensities_and_plackett_luce():
    agent, config = policy_parts("ppo")
    policy = agent.ensure_model().policy
    torch.manual_seed(2)
    for p in policy.actor.parameters():
        p.data.normal_(0, 0.4)
    obs = small_obs(config, n=1)
    counts, probs, _ = serving_counts(agent, obs, 40_000)
    with torch.no_grad():
        logits = policy.get_distribution(torch.as_tensor(flatten_observation(obs))).logits[0]
    pl = torch.softmax(logits.double(), 0).numpy()
    seen = counts > 0
    want = np.array([plackett_luce_probability(pl, s) for s in itertools.permutations(range(6), 2)])
    np.testing.assert_allclose(probs[seen], want[seen], rtol=1e-5)  # propensities = the law (float32 scores)
    assert chi_square_p(counts, want) > 1e-3  # 29 dof


def test_served_slate_dqn_slates_match_their_propensities():
    config = small_config()
    agent = make_agent("dqn", WorldSpec.from_config(config), exploration_final_eps=0.3)
    counts, probs, decision = serving_counts(agent, small_obs(config, n=1), 40_000)
    assert (decision.slates[:, 0] != decision.slates[:, 1]).all()
    # every slate of the law is seen (each has mass >= (0.3 / 6) (0.3 / 5) = 0.003)
    assert (counts > 0).all()
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-12)
    assert chi_square_p(counts, probs) > 1e-3


# ---------------------------------------------------------------------------- agents


def test_policy_parameter_chooses_the_network_and_is_validated():
    spec = WorldSpec.from_config(small_config())
    assert isinstance(make_agent("a2c", spec).ensure_model().policy, ScoringSlatePolicy)
    assert type(make_agent("ppo", spec, policy="mlp").ensure_model().policy) is SlatePolicy
    from agents.registry import AgentError

    with pytest.raises(AgentError, match=r"ppo\.policy.*'scoring', 'mlp'"):
        make_agent("ppo", spec, policy="cnn")
    with pytest.raises(AgentError, match=r"policy 'mlp' needs slate_size 1"):
        make_agent("dqn", spec, policy="mlp")


def test_slate_dqn_learns_on_slates_of_two_with_distinct_items():
    config = small_config()
    agent = make_agent("dqn", WorldSpec.from_config(config), n_envs=8, learning_starts=64, exploration_final_eps=0.2)
    agent.train(config, 512, seed=0)
    assert agent.model.num_timesteps >= 512 and agent.model._n_updates > 0
    batch = agent.model.replay_buffer.actions[: agent.model.replay_buffer.pos]
    assert batch.shape[1:] == (8, 2) and (batch[..., 0] != batch[..., 1]).all()  # collected slates are distinct
    trajectory = rollout(agent, RecVectorEnv(16, config=config), 3, np.random.default_rng(0), seed=2, learn=False)
    slates, props = trajectory.records["slate"], trajectory.records["propensity"]
    assert slates.shape == (3, 16, 2) and (slates[..., 0] != slates[..., 1]).all()
    assert np.isin(np.round(props[..., 0], 12), np.round([0.8 + 0.2 / 6, 0.2 / 6], 12)).all()


def decisions(agent, config, seed=7, n=16):
    obs = small_obs(config, n=n, seed=seed)
    return agent.act(obs, np.random.default_rng(seed))


def test_same_seed_same_scoring_model():
    config = small_config()
    spec = WorldSpec.from_config(config)
    runs = [make_agent("ppo", spec, n_envs=4, n_steps=8, batch_size=16).train(config, 64, seed=s) for s in (3, 3, 4)]
    same = [decisions(a, config) for a in runs]
    np.testing.assert_array_equal(same[0].propensities, same[1].propensities)
    assert not np.array_equal(same[0].propensities, same[2].propensities)


@pytest.mark.parametrize(
    "name, extra",
    [("ppo", {"n_steps": 8, "batch_size": 32}), ("a2c", {"n_steps": 8}), ("dqn", {"learning_starts": 32})],
)
def test_scoring_models_save_load_and_pickle_make_the_same_decisions(name, extra, tmp_path):
    config = small_config()
    agent = make_agent(name, WorldSpec.from_config(config), n_envs=4, **extra).train(config, 128, seed=1)
    agent.save(tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    loaded = SB3Agent.load(tmp_path / "model")
    pickled = pickle.loads(pickle.dumps(agent))
    want = decisions(agent, config)
    for other in (loaded, pickled):
        assert other.params == agent.params and other.trained
        got = decisions(other, config)
        np.testing.assert_array_equal(got.slates, want.slates)
        np.testing.assert_array_equal(got.propensities, want.propensities)
    for ours, theirs in zip(agent.model.policy.parameters(), loaded.model.policy.parameters(), strict=True):
        assert torch.equal(ours, theirs)


# ---------------------------------------------------------------------------- learning (slow)


def default_scenario_budget():
    """The default scenario's training steps and evaluation horizon (users, steps)."""
    import yaml

    scenario = yaml.safe_load((Path(__file__).resolve().parents[1] / "scenarios" / "default.yaml").read_text())
    return int(scenario["training"]["steps"]), int(scenario["horizon"]["users"]), int(scenario["horizon"]["steps"])


@pytest.mark.slow
def test_scoring_ppo_reaches_linucb_and_beats_random_on_the_default_preset():
    """Three seeds; per seed, PPO (trained on its own world for the default scenario's budget),
    LinUCB (alpha 1, learning online, as in the scenario) and random are run on the same
    evaluation world and agent stream (common random numbers) over the scenario's horizon."""
    steps, users, horizon = default_scenario_budget()
    config = get_preset("default")
    spec = WorldSpec.from_config(config)

    def engagement(agent, seed, learn):
        env = RecVectorEnv(users, config=config)
        trajectory = rollout(agent, env, horizon, np.random.default_rng(seed), seed=1000 + seed, learn=learn)
        return float(trajectory.records["reward"].mean())

    ppo, linucb, random = [], [], []
    for seed in range(3):
        agent = make_agent("ppo", spec).train(config, steps, seed=seed)
        ppo.append(engagement(agent, seed, learn=False))
        linucb.append(engagement(make_agent("linucb", spec, alpha=1.0), seed, learn=True))
        random.append(engagement(make_agent("random", spec), seed, learn=False))
    ppo, linucb, random = map(np.array, (ppo, linucb, random))
    print(f"reward per user-step over seeds: ppo {ppo}, linucb {linucb}, random {random}")
    # at least 90% of LinUCB's reward per user-step, on average over the seeds
    assert ppo.mean() >= 0.9 * linucb.mean(), (ppo, linucb)
    # beats random: paired 95% t interval of the per-seed differences (2 dof) excludes zero
    gain = ppo - random
    half = stats.t.ppf(0.975, df=len(gain) - 1) * gain.std(ddof=1) / np.sqrt(len(gain))
    assert gain.mean() - half > 0, (gain, half)
