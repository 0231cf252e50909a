"""What a Vowpal Wabbit agent may tell VW: its parameters (:class:`VWSettings`), the VW
command line they make (:func:`vw_arguments`) and the allow-list of VW flags that
``extra_args`` and a saved VW model's stored flags are checked against (:data:`VW_FLAGS`,
:func:`check_vw_flags`, :func:`vw_model_flags`).

Kept apart from :mod:`agents.vw` (the agent, its example formatting and sampling), and free of
VW's own modules, so the parameters can be read without loading VW.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.params import AgentParams, choice, flag, integer, number, string

SLATE_MODES: tuple[str, ...] = ("pmf", "head", "ccb")
CREDITS: tuple[str, ...] = ("clicked", "slots")
CB_TYPES: tuple[str, ...] = ("mtr", "ips", "dr", "dm")


_EXPLORATION_FLAGS: dict[str, str] = {
    "epsilon": "--epsilon {epsilon}",
    "softmax": "--softmax --lambda {softmax_lambda}",
    "bag": "--bag {bag_size}",
    "cover": "--cover {cover_size} --psi {cover_psi}",
    "squarecb": "--squarecb --gamma_scale {gamma_scale} --gamma_exponent {gamma_exponent}",
    "regcb": "--regcb --mellowness {mellowness}",
    "regcbopt": "--regcbopt --mellowness {mellowness}",
    "rnd": "--rnd {rnd_size} --rnd_alpha {rnd_alpha} --rnd_invlambda {rnd_invlambda}",
    "first": "--first {first_n}",
    "synthcover": "--synthcover --synthcoversize {synthcover_size} --synthcoverpsi {synthcover_psi}",
}
"""VW flags of each exploration algorithm, filled from the agent's parameters."""

EXPLORATIONS: tuple[str, ...] = tuple(_EXPLORATION_FLAGS)
"""Exploration algorithms of VW's ``cb_explore_adf`` available by name."""


# ------------------------------------------------------------------ allowed VW flags

_SWITCH, _COUNT, _INT, _FLOAT = "no value", "an integer >= 0", "an integer", "a number"
_PAIR, _TRIPLE, _NAMESPACES = "2 namespace letters (or ':')", "3 namespace letters (or ':')", "namespace letters"
_VALUE_PATTERNS: dict[str, re.Pattern[str]] = {
    _COUNT: re.compile(r"^\d+$"),
    _INT: re.compile(r"^-?\d+$"),
    _FLOAT: re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"),
    _PAIR: re.compile(r"^[A-Za-z:]{2}$"),
    _TRIPLE: re.compile(r"^[A-Za-z:]{3}$"),
    _NAMESPACES: re.compile(r"^[A-Za-z:]+$"),
}

VW_FLAGS: dict[str, str | tuple[str, ...]] = {
    # contextual-bandit reductions and exploration (what VW stores in its model files too)
    "--cb_explore_adf": _SWITCH, "--ccb_explore_adf": _SWITCH, "--cb_adf": _SWITCH, "--cb_sample": _SWITCH,
    "--csoaa_ldf": ("m", "multiline", "mc", "multiline-classifier"), "--csoaa_rank": _SWITCH,
    "--cb_type": ("ips", "dm", "dr", "mtr", "sm"), "--cb_min_cost": _FLOAT, "--cb_max_cost": _FLOAT,
    "--epsilon": _FLOAT, "--first_only": _SWITCH, "--first": _COUNT, "--bag": _COUNT, "--cover": _COUNT,
    "--psi": _FLOAT, "--nounif": _SWITCH, "--softmax": _SWITCH, "--lambda": _FLOAT, "--squarecb": _SWITCH,
    "--gamma_scale": _FLOAT, "--gamma_exponent": _FLOAT, "--elim": _SWITCH, "--regcb": _SWITCH,
    "--regcbopt": _SWITCH, "--mellowness": _FLOAT, "--rnd": _COUNT, "--rnd_alpha": _FLOAT,
    "--rnd_invlambda": _FLOAT, "--synthcover": _SWITCH, "--synthcoversize": _COUNT, "--synthcoverpsi": _FLOAT,
    # the learner
    "--learning_rate": _FLOAT, "--power_t": _FLOAT, "--initial_t": _FLOAT, "--decay_learning_rate": _FLOAT,
    "--l1": _FLOAT, "--l2": _FLOAT, "--adaptive": _SWITCH, "--normalized": _SWITCH, "--invariant": _SWITCH,
    "--sgd": _SWITCH, "--quantile_tau": _FLOAT, "--save_resume": _SWITCH,
    "--loss_function": ("squared", "classic", "hinge", "logistic", "quantile", "poisson", "expectile"),
    # features
    "--bit_precision": _COUNT, "--quadratic": _PAIR, "--cubic": _TRIPLE, "--interactions": _NAMESPACES,
    "--ignore": _NAMESPACES, "--ignore_linear": _NAMESPACES, "--keep": _NAMESPACES, "--noconstant": _SWITCH,
    "--hash": ("strings", "all"), "--hash_seed": _COUNT,
    # run
    "--random_seed": _COUNT, "--quiet": _SWITCH,
}  # fmt: skip
"""VW flags an agent's ``extra_args`` (and a saved VW model's stored flags) may hold, with
the kind of value each takes: behaviour only. Every other flag is refused, above all those
that read or write files or open sockets (``-f``, ``-i``, ``-d``, ``-c``, ``-p``, ``-r``,
``--readable_model``, ``--invert_hash``, ``--audit_regressor``, ``--cache_file``, ``--data``,
``--predictions``, ``--raw_predictions``, ``--dictionary``, ``--feature_mask``,
``--output_feature_regularizer_*``, ``--input_feature_regularizer``, ``--daemon``, ``--port``,
``--pid_file``, ...). (``--save_resume`` is a behaviour flag, a no-op since VW 9.)"""

_FLAG_ALIASES = {"-q": "--quadratic", "-b": "--bit_precision", "-l": "--learning_rate"}


def check_vw_flags(text: str, where: str) -> list[str]:
    """The tokens of the VW flags ``text`` (``--flag=value`` split in two) if every one is
    allowed (:data:`VW_FLAGS`).

    Each token must be an allowed flag (long form, ``--flag=value``, or ``-q``/``-b``/``-l``)
    followed by exactly the value it takes, of the right kind; a bare value is refused too
    (VW reads one as a data file).

    Raises:
        ValueError: naming ``where``, the token, and what is allowed.
    """
    tokens, out, i = text.split(), [], 0
    while i < len(tokens):
        name, eq, attached = tokens[i].partition("=") if tokens[i].startswith("--") else (tokens[i], "", "")
        flag = _FLAG_ALIASES.get(name, name)
        kind = VW_FLAGS.get(flag)
        if kind is None:
            what = f"flag {name!r} is not allowed" if name.startswith("-") else f"{name!r} is not a flag"
            raise ValueError(
                f"{where}: {what} (VW flags that read or write files, or are unknown, are refused); "
                f"allowed: {' '.join(sorted(VW_FLAGS))} {' '.join(_FLAG_ALIASES)}"
            )
        if kind == _SWITCH:
            if eq:
                raise ValueError(f"{where}: {name} takes no value; got {attached!r}")
            out.append(name)
            i += 1
            continue
        value = attached if eq else (tokens[i + 1] if i + 1 < len(tokens) else None)
        i += 1 if eq else 2
        ok = value is not None and (value in kind if isinstance(kind, tuple) else _VALUE_PATTERNS[kind].match(value))
        if not ok:
            want = f"one of {list(kind)}" if isinstance(kind, tuple) else kind
            raise ValueError(f"{where}: {name} takes {want}; got {value!r}")
        out += [name, value]
    return out


def vw_arguments(params: dict[str, Any], model: str | Path | None = None) -> str:
    """The VW command line of an agent with hyper-parameters ``params`` (see :class:`VWAgent`).

    ``interactions`` and ``extra_args`` pass :func:`check_vw_flags` (ValueError otherwise).
    With ``model`` (a file written by ``Workspace.save``) VW starts from it; the seed is then
    left out, as the model carries VW's random state (``bag`` saves its advanced seed).
    """
    args = ["--ccb_explore_adf" if params["slate_mode"] == "ccb" else "--cb_explore_adf", "--quiet"]
    args += ["--random_seed", str(params["seed"])] if model is None else ["--initial_regressor", str(model)]
    args += ["--cb_type", params["cb_type"], "--learning_rate", f"{params['learning_rate']}"]
    for pair in params["interactions"].replace(",", " ").split():
        args += check_vw_flags(f"-q {pair}", "vw.interactions")
    args += _EXPLORATION_FLAGS[params["exploration"]].format(**params).split()
    args += check_vw_flags(params["extra_args"], "vw.extra_args")
    return " ".join(args)


def vw_model_flags(model: bytes) -> list[str]:
    """The flags stored in the header of a VW 9 model file, checked by :func:`check_vw_flags`.

    VW turns a model's stored flags (and its id) into command-line options when it loads the
    model, so a forged header could make it write files (``--readable_model``); this reads
    the header first. Layout (VW 9, ``parse_regressor.cc``): version and id (u32 length +
    nul-terminated text), ``'m'``, min and max label (f32), bits and lda (u32), the ngram and
    skip definitions (u32 count + 3 bytes each), the flags (u32 length + text), a checksum.

    Raises:
        ValueError: not a VW 9 model, an id, ngram or skip definitions (VW makes flags of
            them; no agent writes them), or a stored flag that is not allowed.
    """
    at = 0

    def take(n: int) -> bytes:
        nonlocal at
        if n > len(model) - at:
            raise ValueError(f"the VW model ends inside its header (byte {at} of {len(model)})")
        at += n
        return model[at - n : at]

    def text(what: str) -> str:
        raw = take(int.from_bytes(take(4), "little")).split(b"\0", 1)[0]  # VW reads up to the first nul
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"the VW model's {what} is not ASCII text: {raw[:40]!r}") from None

    version = text("version")
    if not re.fullmatch(r"9\.\d+\.\d+", version):
        raise ValueError(f"want a VW 9 model (the header layout checked here); got version {version!r}")
    if model_id := text("id"):
        raise ValueError(f"the VW model has an id {model_id!r}; want none (VW turns it into flags)")
    if take(1) != b"m":
        raise ValueError("not a VW model: no 'm' marker after the version")
    take(16)  # min label, max label, bits, lda
    for what in ("ngram", "skip"):
        if count := int.from_bytes(take(4), "little"):
            raise ValueError(f"the VW model has {count} {what} definitions; want none (VW turns them into flags)")
    return check_vw_flags(text("stored flags"), "the VW model's stored flags")


def _check_interactions(value: str, where: str) -> None:
    """Each of the space- or comma-separated ``interactions`` is a VW ``-q`` namespace pair."""
    for pair in value.replace(",", " ").split():
        check_vw_flags(f"-q {pair}", where)


@dataclass(frozen=True)
class VWSettings(AgentParams):
    """The parameters of every VW agent but the exploration algorithm. Each algorithm's
    parameters are used only by it (the VW flags it gets: :data:`_EXPLORATION_FLAGS`)."""

    epsilon: float = number(0.1, "epsilon: exploration probability", ge=0.0, le=1.0)
    softmax_lambda: float = number(1.0, "softmax: inverse temperature lambda", gt=0.0)
    bag_size: int = integer(5, "bag: bootstrapped policies", ge=1)
    cover_size: int = integer(5, "cover: policies in the cover", ge=1)
    cover_psi: float = number(1.0, "cover: exploration strength psi", gt=0.0)
    gamma_scale: float = number(10.0, "squarecb: gamma = gamma_scale t^gamma_exponent", gt=0.0)
    gamma_exponent: float = number(0.5, "squarecb: exponent of t in gamma", ge=0.0)
    mellowness: float = number(0.1, "regcb, regcbopt: confidence mellowness", gt=0.0)
    rnd_size: int = integer(3, "rnd: random networks", ge=1)
    rnd_alpha: float = number(0.1, "rnd: bonus scale alpha", gt=0.0)
    rnd_invlambda: float = number(0.1, "rnd: inverse regularisation", gt=0.0)
    first_n: int = integer(10, "first: decisions explored uniformly before exploiting", ge=1)
    synthcover_size: int = integer(100, "synthcover: synthetic policies", ge=1)
    synthcover_psi: float = number(0.1, "synthcover: exploration strength psi", gt=0.0)
    learning_rate: float = number(0.5, "VW's learning rate", gt=0.0)
    cb_type: str = choice("mtr", "VW's cost estimator (--cb_type)", CB_TYPES)
    interactions: str = string(
        "ua", "VW -q namespace pairs, e.g. 'ua' or 'ua aa' (u user, a item)", check=_check_interactions
    )
    reward_scale: float = number(1.0, "cost = -reward / reward_scale", gt=0.0)
    slate_mode: str = choice("head", "how slots 2..k are filled (module docstring)", SLATE_MODES)
    credit: str = choice("clicked", "learn from the clicked slot only, or from every slot", CREDITS)
    hold_examples: bool = flag(False, "keep the parsed examples until the update (more memory)")
    seed: int = integer(0, "VW's --random_seed (ccb: its draws too)", ge=0, le=2**32 - 1)
    extra_args: str = string("", "more VW flags, each on the allow-list VW_FLAGS", check=check_vw_flags)
