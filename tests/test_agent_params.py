"""Agent hyper-parameters as data (agents.params): every converted agent declares its
parameters once, and every bad value is refused with an AgentError naming the agent, the
parameter, what is allowed and the value seen.

Two tables: exact messages written by hand for each agent and each kind of mistake, and a
sweep generated from the declarations that sends every parameter of every agent the bad
values of its kind (out of range, NaN, infinity, wrong type, unknown choice, None).
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import pytest

from agents import AgentError, agent_names, agent_parameters, make_agent
from agents.bandits import LinUCB
from agents.params import CHOICE, FLAG, INTEGER, NUMBER, TEXT, WIDTHS, Rule, rule_of
from agents.registry import agent_class, check_parameter, params_class
from experiments.cli import main
from simenv import WorldSpec

TINY = WorldSpec(n_candidates=3, slate_size=2, user_dim=4, item_dim=5, embedding_dim=2, n_topics=1)
SINGLE = dataclasses.replace(TINY, slate_size=1)  # dqn serves one item
CONVERTED = agent_names()


def spec_for(name: str) -> WorldSpec:
    return SINGLE if name == "dqn" else TINY


# (agent, parameters, the exact message)
BAD = [
    ("linucb", {"alpha": -1}, "linucb.alpha must be a number in [0.0, inf]; got -1"),
    ("linucb", {"lam": 0.0}, "linucb.lam must be a number in (0.0, inf]; got 0.0"),
    ("linucb", {"alpha": "wide"}, "linucb.alpha must be a number in [0.0, inf]; got 'wide'"),
    ("linear_egreedy", {"epsilon": math.nan}, "linear_egreedy.epsilon must be a number in [0.0, 1.0]; got nan"),
    (
        "linear_egreedy",
        {"exploration": "item"},
        "linear_egreedy.exploration must be one of ['slot', 'slate']; got 'item'",
    ),
    ("discounted_linucb", {"gamma": 1.5}, "discounted_linucb.gamma must be a number in (0.0, 1.0]; got 1.5"),
    ("dp_linucb", {"delta": 1.0}, "dp_linucb.delta must be a number in (0.0, 1.0); got 1.0"),
    ("dp_linucb", {"horizon": 2.5}, "dp_linucb.horizon must be an integer in [1, inf]; got 2.5"),
    ("dp_linucb", {"epsilon": math.inf}, "dp_linucb.epsilon must be a number in (0.0, inf]; got inf"),
    ("lints", {"propensity_draws": True}, "lints.propensity_draws must be an integer in [1, inf]; got True"),
    ("lints", {"v": None}, "lints.v must be a number in [0.0, inf]; got None"),
    ("linucb_hybrid", {"user_slots": "many"}, "linucb_hybrid.user_slots must be an integer in [1, inf]; got 'many'"),
    ("popularity", {"prior_ctr": 1.2}, "popularity.prior_ctr must be a number in [0.0, 1.0] or None; got 1.2"),
    ("popularity", {"epsilon": None}, "popularity.epsilon must be a number in [0.0, 1.0]; got None"),
    ("static", {"feature": -1}, "static.feature must be an integer in [0, inf] or None; got -1"),
    ("static", {"feature": 5}, "static.feature must be an item-feature column, an integer in [0, 4] or None; got 5"),
    ("mf", {"learning_rate": 0.0}, "mf.learning_rate must be a number in (0.0, 1.0]; got 0.0"),
    ("mf", {"n_factors": 0}, "mf.n_factors must be an integer in [1, inf]; got 0"),
    ("content", {"profile_rate": math.inf}, "content.profile_rate must be a number in [0.0, 1.0]; got inf"),
    ("hybrid", {"n_factors": 0}, "hybrid.n_factors must be an integer in [1, inf]; got 0"),
    ("hybrid", {"max_mf_weight": 2}, "hybrid.max_mf_weight must be a number in [0.0, 1.0]; got 2"),
    (
        "vw",
        {"exploration": "ucb"},
        "vw.exploration must be one of ['epsilon', 'softmax', 'bag', 'cover', 'squarecb', 'regcb', 'regcbopt', "
        "'rnd', 'first', 'synthcover']; got 'ucb'",
    ),
    ("vw", {"hold_examples": 1}, "vw.hold_examples must be True or False; got 1"),
    ("vw", {"interactions": 3}, "vw.interactions must be a string; got 3"),
    ("vw", {"interactions": "uaa"}, "vw.interactions: -q takes 2 namespace letters (or ':'); got 'uaa'"),
    ("vw_epsilon", {"extra_args": "-f model"}, "vw_epsilon.extra_args: flag '-f' is not allowed"),
    ("vw_epsilon", {"seed": 2**32}, "vw_epsilon.seed must be an integer in [0, 4294967295]; got 4294967296"),
    ("vw_squarecb", {"cb_type": "sm"}, "vw_squarecb.cb_type must be one of ['mtr', 'ips', 'dr', 'dm']; got 'sm'"),
    (
        "ppo",
        {"net_arch": [64, 0]},
        "ppo.net_arch must be a non-empty list of layer widths, each an integer >= 1; got [64, 0]",
    ),
    ("ppo", {"batch_size": 1}, "ppo.batch_size must be an integer in [2, inf]; got 1"),
    ("a2c", {"gamma": 1.5}, "a2c.gamma must be a number in [0.0, 1.0]; got 1.5"),
    ("dqn", {"exploration_final_eps": -0.1}, "dqn.exploration_final_eps must be a number in [0.0, 1.0]; got -0.1"),
    ("dqn", {"learning_starts": -1}, "dqn.learning_starts must be an integer in [0, inf]; got -1"),
    # unknown names, for the registry and for a class built directly
    ("vw_squarecb", {"exploration": "epsilon"}, "agent 'vw_squarecb' got unknown argument(s) ['exploration']"),
    ("random", {"seed": 1}, "agent 'random' got unknown argument(s) ['seed']; allowed: []"),
]


@pytest.mark.parametrize(("name", "params", "message"), BAD, ids=[f"{n}-{next(iter(p))}" for n, p, _ in BAD])
def test_bad_values_raise_an_agent_error_naming_agent_parameter_range_and_value(
    name: str, params: dict, message: str
) -> None:
    with pytest.raises(AgentError) as err:
        make_agent(name, spec_for(name), **params)
    assert message in str(err.value)


def test_an_agent_built_directly_checks_its_parameters_too() -> None:
    with pytest.raises(AgentError, match=r"^linucb\.alpha must be a number in \[0\.0, inf\]; got -2\.0$"):
        LinUCB(TINY, alpha=-2.0)
    with pytest.raises(AgentError, match=r"^agent 'linucb' got unknown argument\(s\) \['beta'\]"):
        LinUCB(TINY, beta=1.0)


def bad_values(rule: Rule) -> list:
    """Values of the wrong type, out of range, not finite or not among the choices for ``rule``."""
    if rule.kind in (NUMBER, INTEGER):
        values = ["x", True, math.nan] + ([2.5] if rule.kind == INTEGER else [math.inf, -math.inf])
        if math.isfinite(rule.lo):
            values.append(rule.lo if rule.lo_open else rule.lo - 1)
        if math.isfinite(rule.hi):
            values.append(rule.hi if rule.hi_open else rule.hi + 1)
    else:
        values = {
            CHOICE: ["no-such-choice", 1],
            FLAG: [1, "yes"],
            TEXT: [3, b"ua"],
            WIDTHS: [[], [0], "64", [True], 64],
        }[rule.kind]
    return values if rule.optional else [*values, None]


SWEEP = [(name, key) for name in CONVERTED for key in params_class(name).fields()]


@pytest.mark.parametrize(("name", "key"), SWEEP)
def test_every_parameter_of_every_agent_refuses_the_bad_values_of_its_kind(name: str, key: str) -> None:
    rule = rule_of(params_class(name).fields()[key])
    for value in bad_values(rule):
        message = f"{name}.{key} must be {rule.allowed()}; got {value!r}"
        with pytest.raises(AgentError) as err:
            make_agent(name, spec_for(name), **{key: value})
        assert str(err.value) == message
        with pytest.raises(AgentError) as err:  # the check a scenario runs without building the agent
            check_parameter(name, key, value)
        assert str(err.value) == message


@pytest.mark.parametrize("name", CONVERTED)
def test_every_declared_default_is_allowed_and_has_a_meaning(name: str) -> None:
    fields = params_class(name).fields()
    for key, field in fields.items():
        rule = rule_of(field)
        assert rule.accepts(field.default), f"{name}.{key} default {field.default!r} not {rule.allowed()}"
        assert rule.meaning and "\n" not in rule.meaning, f"{name}.{key} needs a one-line meaning"
    agent = make_agent(name, spec_for(name))
    assert set(agent.params) >= {"agent", *fields}  # every parameter recorded for the result rows


def test_every_built_in_agent_declares_its_parameters() -> None:
    assert all(params_class(name) is not None for name in agent_names())
    assert agent_parameters("slateq")["discount"] == 0.9


def test_deferred_agents_declare_their_parameters_in_a_light_module() -> None:
    code = (
        "import sys\n"
        "from agents.registry import agent_parameters\n"
        "assert agent_parameters('ppo')['net_arch'] == (64, 64)\n"
        "assert agent_parameters('dqn')['buffer_size'] == 20000\n"
        "assert 'torch' not in sys.modules and 'stable_baselines3' not in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for name in ("ppo", "a2c", "dqn"):
        assert agent_class(name).Params is params_class(name)


def test_list_prints_each_parameter_with_default_meaning_and_range(capsys: pytest.CaptureFixture[str]) -> None:
    def lines_of(name: str) -> list[str]:
        assert main(["list", "agents", name]) == 0
        return [line.strip() for line in capsys.readouterr().out.splitlines()]

    linucb = lines_of("linucb")
    at = linucb.index("alpha = 1.0")
    assert linucb[at + 1] == "width multiplier of the confidence bound (reward units); a number in [0.0, inf]"
    egreedy = lines_of("linear_egreedy")
    assert "one of ['slot', 'slate']" in egreedy[egreedy.index("exploration = 'slot'") + 1]
    ppo = lines_of("ppo")
    assert "layer widths" in ppo[ppo.index("net_arch = (64, 64)") + 1]
    assert lines_of("random")[-1] == "no parameters"


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("ppo", {"net_arch": [32], "n_steps": 4}),
        ("popularity", {"prior_ctr": 0.2}),
        ("static", {"feature": 3}),
        ("vw_epsilon", {"epsilon": 0.3, "interactions": "ua aa"}),
        ("hybrid", {"init_std": 0.2, "max_mf_weight": 1}),
    ],
)
def test_non_default_parameters_round_trip_through_a_model_file(name: str, params: dict, tmp_path: Path) -> None:
    agent = make_agent(name, spec_for(name), **params)
    agent.save(tmp_path / "model.agent")
    loaded = type(agent).load(tmp_path / "model.agent", spec=spec_for(name))
    assert loaded.params == agent.params and loaded.hparams == agent.hparams
