"""Vowpal Wabbit contextual bandits (``--cb_explore_adf``) as BubbleGym agents.

Each decision is one VW multi-line example: a ``shared`` line with the user features in
namespace ``u`` and one line per candidate with its item features in namespace ``a``
(action-dependent features, Li et al. 2010 "LinUCB"-style ADF). The default interaction
``-q ua`` makes the linear cost model personal (without it every user gets the same ranking).
VW returns a pmf over the C candidates from one of its exploration algorithms, selected
by name (``exploration``):

=============  =====================================================  ==========================
name           VW flags                                               source
=============  =====================================================  ==========================
``epsilon``    ``--epsilon epsilon``                                  Langford & Zhang 2007
``softmax``    ``--softmax --lambda softmax_lambda``                  Boltzmann exploration
``bag``        ``--bag bag_size``                                     bootstrap Thompson (Osband 2016)
``cover``      ``--cover cover_size --psi cover_psi``                 Agarwal et al. 2014 (ILTCB)
``squarecb``   ``--squarecb --gamma_scale g --gamma_exponent e``      Foster & Rakhlin 2020
``regcb``      ``--regcb --mellowness m``                             Foster et al. 2018 (RegCB-elim)
``regcbopt``   ``--regcbopt --mellowness m``                          Foster et al. 2018 (RegCB-opt)
``rnd``        ``--rnd rnd_size --rnd_alpha a --rnd_invlambda l``     random network distillation
``first``      ``--first first_n``                                    explore-first (tau-first)
``synthcover`` ``--synthcover --synthcoversize n --synthcoverpsi p``  synthetic cover
=============  =====================================================  ==========================

Slates. VW's pmf is over single actions. The default, ``slate_mode="head"``, uses it
where VW defines it: slot 1 is drawn from VW's pmf (propensity = VW's own pmf), and slots
2..k are filled greedily in VW's order (highest pmf, then lowest predicted cost;
propensity 1). ``slate_mode="pmf"`` fills every slot from the pmf *without replacement*:
slot j is drawn from the pmf renormalised over the candidates not yet served, with that
renormalised probability as its propensity (a slot whose remaining mass is zero, as with
``bag``/``first``, takes the best remaining candidate with propensity 1). ``"head"`` is the
default because the renormalised pmf of most explorers is nearly flat once the greedy
action is served (for ``epsilon`` exactly uniform), so under ``"pmf"`` slots 2..k are close
to random and the exploration rate is ~1 whatever epsilon is; with ``"head"`` the
exploration rate and the engagement reflect VW's exploration parameter.
Why a pmf-based fill rather than VW's own slate learners: ``--ccb_explore_adf``
(conditional contextual bandits, ``slate_mode="ccb"``) needs k extra ``ccb slot`` lines per
decision and runs the cb learner once per slot when predicting and learning (about k times
the work: measured 4x slower at B = 1,024, C = 50, k = 5), and VW samples each slot with its
own generator, so the agent's ``rng`` cannot drive the draws; ``--slates`` needs a disjoint
action set per slot, which the candidate set (any item in any position) is not. The pmf
fill keeps one VW prediction per decision, samples with the agent's ``rng`` and still
reports exact per-slot propensities.
``slate_mode="ccb"`` is offered all the same: each slot's pmf is VW's exploration over the
candidates not yet chosen (so an epsilon agent's later slots are greedy with probability
1 - epsilon, unlike the pmf fill); the propensity of slot j is the probability VW gave the
action it sampled there, and every slot is labelled at learning (``credit`` and
``hold_examples`` do not apply). Its draws come from VW's generator seeded by ``seed``
(same seed, same results; the agent's ``rng`` is unused), and ``Decision.predicted`` is None.

Learning. VW minimises cost, so a reward r (minutes or clicks) becomes the cost
``-r / reward_scale``. With ``credit="clicked"`` (default) each decision makes one VW update:
on a click, the clicked item is labelled with that cost and the propensity of its slot;
without a click, the slot-1 item (VW's own draw from its pmf) is labelled with cost 0.
``credit="slots"`` makes k updates, one per slot (cost ``-r`` for the clicked item, 0 for
the others), k times slower. Labels use the propensity logged at act time.

Speed. VW's Python wrappers (``pyvw.Example``, one Python object per line) cost more than
VW itself, so the agent talks to the native ``pylibvw`` objects, and the text of the whole
batch is formatted at once in numpy (fixed width, :class:`ExampleFormatter`). Per decision:
one parse and one prediction at ``act``; after feedback the kept text, with the label spliced
into the chosen line at a known offset, is parsed and learned (``hold_examples=False``, the
default). ``hold_examples=True`` instead keeps the parsed examples until
:meth:`VWAgent.update` sets the label on the chosen one (``set_label_string``) and learns on
the same objects: one parse per decision, but every held example costs VW about 35 kB (its
256 namespace slots), i.e. about 1.8 GB for B = 1,024 and C = 50, and measured no faster
(the re-parse reuses a few cache-hot pooled examples; ``benchmarks/bench_agents.py``).
Both ways give identical models. VW takes one multi-line example per call, so parsing,
prediction and learning loop over users in Python (two or three native calls per user);
everything else (formatting, sampling, labels) is batched. Sampling is batched in numpy with the agent's ``rng``;
VW's own randomness (bag bootstrap, cover) is seeded by ``--random_seed seed``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pylibvw
from vowpalwabbit import pyvw

from agents.base import Agent, Decision, Feedback, Observation
from agents.params import choice
from agents.persist import ModelFileError
from agents.registry import register
from agents.slates import repeated_slots
from agents.vw_options import (
    CB_TYPES,
    CREDITS,
    EXPLORATIONS,
    SLATE_MODES,
    VW_FLAGS,
    VWSettings,
    check_vw_flags,
    vw_arguments,
    vw_model_flags,
)
from simenv import WorldSpec

__all__ = [
    "CB_TYPES",
    "CREDITS",
    "EXPLORATIONS",
    "SLATE_MODES",
    "VW_FLAGS",
    "ExampleFormatter",
    "VWAgent",
    "VWEpsilonAgent",
    "VWSettings",
    "VWSquareCBAgent",
    "check_vw_flags",
    "fill_slates",
    "vw_arguments",
    "vw_model_flags",
    "vw_workspace",
]


_DECIMALS = 3
_INT_DIGITS = 2
_VALUE_WIDTH = 1 + _INT_DIGITS + 1 + _DECIMALS  # sign, integer digits, '.', decimals: "-01.234"
_CB_LABEL = pyvw.LabelType.CONTEXTUAL_BANDIT.value


def vw_workspace(params: dict[str, Any], model: bytes | None = None) -> pyvw.Workspace:
    """A VW workspace for an agent with hyper-parameters ``params``, starting from the VW model
    file content ``model`` (checked by :func:`vw_model_flags` first) if given."""
    if model is None:
        return pyvw.Workspace(vw_arguments(params))
    vw_model_flags(model)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.vw"
        path.write_bytes(model)
        return pyvw.Workspace(vw_arguments(params, path))


class ExampleFormatter:
    """Fixed-width VW text for a batch of decisions, built in numpy.

    One decision's text is ``"shared |u 0:v 1:v ...\\n|a 0:v ...\\n|a ..."`` with every
    value written as 7 characters ``sDD.DDD`` (s is '-' or '0'; rounded to 3 decimals,
    clipped to +-99.999), so all texts of a world have the same length and every value sits
    at a known offset: formatting is one table lookup and one scatter for the whole batch.
    With ``ccb_slots`` = k > 0 the lines are ``ccb shared``/``ccb action`` and k lines
    ``ccb slot |`` follow (VW's conditional contextual bandit format).
    """

    def __init__(self, user_dim: int, item_dim: int, n_candidates: int, ccb_slots: int = 0) -> None:
        shared, action = ("ccb shared |u", "ccb action |a") if ccb_slots else ("shared |u", "|a")
        user_line, user_pos = self._line(shared, user_dim)
        item_line, item_pos = self._line(action, item_dim)
        self.action_offsets = np.array([len(user_line) + 1 + c * (len(item_line) + 1) for c in range(n_candidates)])
        """(C,) character offset of each candidate's line in a decision's text (cb label goes there)."""
        slots_start = len(user_line) + 1 + n_candidates * (len(item_line) + 1)
        self.slot_label_offsets = slots_start + len("ccb slot ") + np.arange(ccb_slots) * len("ccb slot |\n")
        """(k,) character offset of each ``ccb slot`` line's label (``ccb_slots`` > 0 only)."""
        template = "\n".join([user_line] + [item_line] * n_candidates + ["ccb slot |"] * ccb_slots)
        self.length = len(template)
        self._template = np.frombuffer(template.encode("ascii"), dtype=np.uint8)
        item_starts = self.action_offsets[:, None] + item_pos[None, :]
        starts = np.concatenate([user_pos, item_starts.ravel()])
        self._value_bytes = (starts[:, None] + np.arange(_VALUE_WIDTH)).ravel()

    @staticmethod
    def _line(prefix: str, dim: int) -> tuple[str, np.ndarray]:
        """One line with placeholder values and the (dim,) offsets of their first character."""
        parts, positions, cursor = [prefix], [], len(prefix)
        for j in range(dim):
            token = f"{j}:"
            positions.append(cursor + 1 + len(token))
            parts.append(token + "0" * _VALUE_WIDTH)
            cursor += 1 + len(token) + _VALUE_WIDTH
        return " ".join(parts), np.array(positions, dtype=np.int64)

    def format(self, user: np.ndarray, candidates: np.ndarray) -> list[str]:
        """B texts for user features (B, F_u) and candidate features (B, C, F_i)."""
        b = user.shape[0]
        values = np.concatenate([user.reshape(b, -1), candidates.reshape(b, -1)], axis=1).astype(np.float64)
        if not np.isfinite(values).all():
            raise ValueError("vw: observation features must be finite; got NaN or inf")
        q = np.rint(values * 10**_DECIMALS)
        np.clip(q, -_VALUE_LIMIT, _VALUE_LIMIT, out=q)
        text = np.empty((b, self.length), dtype=np.uint8)
        text[:] = self._template
        text[:, self._value_bytes] = _value_table()[q.astype(np.int64) + _VALUE_LIMIT].reshape(b, -1)
        blob = text.tobytes().decode("ascii")
        n = self.length
        return [blob[i * n : (i + 1) * n] for i in range(b)]


_VALUE_LIMIT = 10 ** (_INT_DIGITS + _DECIMALS) - 1
_TABLE: list[np.ndarray] = []


def _value_table() -> np.ndarray:
    """(2 L + 1, 7) uint8: the text ``sDD.DDD`` of q / 1000 for q in [-L, L], L = 99999 (built once)."""
    if not _TABLE:
        q = np.arange(-_VALUE_LIMIT, _VALUE_LIMIT + 1)
        digits = (np.abs(q)[:, None] // 10 ** np.arange(_INT_DIGITS + _DECIMALS - 1, -1, -1)) % 10 + ord("0")
        table = np.empty((q.size, _VALUE_WIDTH), dtype=np.uint8)
        table[:, 0] = np.where(q < 0, ord("-"), ord("0"))
        table[:, 1 : 1 + _INT_DIGITS] = digits[:, :_INT_DIGITS]
        table[:, 1 + _INT_DIGITS] = ord(".")
        table[:, 2 + _INT_DIGITS :] = digits[:, _INT_DIGITS:]
        _TABLE.append(table)
    return _TABLE[0]


def fill_slates(
    pmf: np.ndarray, cost: np.ndarray, k: int, rng: np.random.Generator, *, mode: str = "pmf"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fill k slots per user from VW's pmf without replacement.

    Args:
        pmf: (B, C) VW's action probabilities (rows sum to ~1).
        cost: (B, C) VW's cost estimate per candidate (tie-break of the greedy order).
        k: slate size.
        rng: the generator of every draw.
        mode: ``"pmf"``: slot j drawn from the pmf renormalised over unserved candidates;
            ``"head"``: slot 1 from the pmf, later slots greedy.

    Returns:
        slates (B, k) int64, propensities (B, k) float64 (slot j's probability given the
        slots before it), explored (B,) bool: some slot differs from the greedy choice at
        that slot (the unserved candidate first in VW's greedy order: highest pmf, then
        lowest cost, then lowest index).
    """
    if mode not in SLATE_MODES:
        raise ValueError(f"fill_slates: mode must be one of {list(SLATE_MODES)}; got {mode!r}")
    b, c = pmf.shape
    if not 1 <= k <= c:
        raise ValueError(f"fill_slates: k must be in [1, {c}]; got {k}")
    rows = np.arange(b)
    p = np.maximum(np.nan_to_num(pmf.astype(np.float64)), 0.0)
    mass = p.sum(axis=1, keepdims=True)
    p = np.where(mass > 0, p / np.where(mass > 0, mass, 1.0), 1.0 / c)  # a degenerate row becomes uniform
    order = np.lexsort((np.broadcast_to(np.arange(c), (b, c)), cost, -p), axis=1)
    rank = np.empty((b, c), dtype=np.int64)
    rank[rows[:, None], order] = np.arange(c)
    slates = np.empty((b, k), dtype=np.int64)
    props = np.empty((b, k), dtype=np.float64)
    explored = np.zeros(b, dtype=bool)
    u = rng.random((b, k))
    for j in range(k):
        greedy = np.argmin(rank, axis=1)
        total = p.sum(axis=1)
        sample = total > 1e-12 if (mode == "pmf" or j == 0) else np.zeros(b, dtype=bool)
        cdf = np.cumsum(p, axis=1)
        drawn = np.minimum((cdf <= (u[:, j] * total)[:, None]).sum(axis=1), c - 1)
        # at the float edge the count can land on a zero-weight (served) candidate
        bad = p[rows, drawn] == 0
        drawn[bad] = np.argmax(p[bad], axis=1)
        chosen = np.where(sample, drawn, greedy)
        props[:, j] = np.where(sample, p[rows, chosen] / np.where(sample, total, 1.0), 1.0)
        slates[:, j] = chosen
        explored |= chosen != greedy
        p[rows, chosen] = 0.0
        rank[rows, chosen] = c
    return slates, props, explored


def fill_slates_probabilities(
    pmf: np.ndarray, cost: np.ndarray, slates: np.ndarray, *, mode: str = "pmf"
) -> np.ndarray:
    """(B, k) exact law of :func:`fill_slates` at given ``slates`` (B, k): slot j's candidate
    has the pmf renormalised over the candidates not in the prefix (mode ``"pmf"``, or slot 0
    of ``"head"``), or 1 if it is the greedy one of the remaining candidates where the slot is
    greedy (later slots of ``"head"``, or a pmf with no mass left), else 0.
    """
    if mode not in SLATE_MODES or mode == "ccb":
        raise ValueError(f"fill_slates_probabilities: mode must be 'pmf' or 'head'; got {mode!r}")
    b, c = pmf.shape
    rows = np.arange(b)
    p = np.maximum(np.nan_to_num(pmf.astype(np.float64)), 0.0)
    mass = p.sum(axis=1, keepdims=True)
    p = np.where(mass > 0, p / np.where(mass > 0, mass, 1.0), 1.0 / c)
    order = np.lexsort((np.broadcast_to(np.arange(c), (b, c)), cost, -p), axis=1)
    rank = np.empty((b, c), dtype=np.int64)
    rank[rows[:, None], order] = np.arange(c)
    props = np.empty(slates.shape, dtype=np.float64)
    for j in range(slates.shape[1]):
        greedy = np.argmin(rank, axis=1)
        total = p.sum(axis=1)
        sample = total > 1e-12 if (mode == "pmf" or j == 0) else np.zeros(b, dtype=bool)
        chosen = slates[:, j]
        props[:, j] = np.where(sample, p[rows, chosen] / np.where(sample, total, 1.0), chosen == greedy)
        p[rows, chosen] = 0.0
        rank[rows, chosen] = c
    return np.where(repeated_slots(slates), 0.0, props)


@register
class VWAgent(Agent):
    """A VW ``cb_explore_adf`` contextual bandit over the C candidates (module docstring).

    Hyper-parameters: ``exploration`` (one of :data:`EXPLORATIONS`) and :class:`VWSettings`.
    ``Decision.predicted`` is VW's regression estimate of each served item's reward,
    ``-cost * reward_scale``.
    """

    name = "vw"

    @dataclass(frozen=True)
    class Params(VWSettings):
        exploration: str = choice("epsilon", "VW's exploration algorithm (module docstring)", EXPLORATIONS)

    fixed_exploration: ClassVar[str | None] = None
    """The exploration algorithm of a subclass that fixes it (then not a parameter)."""

    def __init__(self, spec: WorldSpec, **params: Any) -> None:
        super().__init__(spec, **params)
        if self.fixed_exploration is not None:  # recorded with the parameters, as VW runs with it
            self._params = {"exploration": self.fixed_exploration, **self._params}
        ccb_slots = spec.slate_size if self._params["slate_mode"] == "ccb" else 0
        self._formatter = ExampleFormatter(spec.user_dim, spec.item_dim, spec.n_candidates, ccb_slots)
        self._ws = vw_workspace(self._params)
        self._pending: _Pending | None = None

    # ------------------------------------------------------------------ acting
    def act(self, obs: Observation, rng: np.random.Generator) -> Decision:
        """Slates (B, k) filled from VW's pmf (see :func:`fill_slates`), one VW prediction per user."""
        self._drop_pending()
        texts = self._formatter.format(obs["user"], obs["candidates"])
        if self._params["slate_mode"] == "ccb":
            decision = self._predict_ccb(texts)
            self._pending = _Pending(decision=decision, texts=texts, examples=None)
            return decision
        b = len(texts)
        pmf, cost, held = self._predict(texts, self._params["hold_examples"])
        slates, props, explored = fill_slates(pmf, cost, self.spec.slate_size, rng, mode=self._params["slate_mode"])
        predicted = -cost[np.arange(b)[:, None], slates] * self._params["reward_scale"]
        decision = Decision(slates=slates, propensities=props, explored=explored, predicted=predicted)
        self._pending = _Pending(decision=decision, texts=texts, examples=held)
        return decision

    def slot_probabilities(self, obs: Observation, slates: np.ndarray) -> np.ndarray | None:
        """Exact law of :func:`fill_slates` over VW's pmf (one VW prediction per user, nothing
        learned, a pending decision kept); None for ``slate_mode: ccb`` (VW samples it itself)."""
        if self._params["slate_mode"] == "ccb":
            return None
        pmf, cost, _ = self._predict(self._formatter.format(obs["user"], obs["candidates"]), False)
        return fill_slates_probabilities(pmf, cost, slates, mode=self._params["slate_mode"])

    def _predict(self, texts: list[str], hold: bool) -> tuple[np.ndarray, np.ndarray, list | None]:
        """(B, C) pmf and cost estimates for B decision texts; the parsed examples if held."""
        ws, c = self._ws, self.spec.n_candidates
        pmf = np.empty((len(texts), c))
        cost = np.empty((len(texts), c))
        held: list | None = [] if hold else None
        for i, text in enumerate(texts):
            examples = ws._parse(text)
            pylibvw.vw.predict_multi(ws, examples)
            pmf[i] = examples[0].get_action_scores()
            cost[i] = [ex.get_partial_prediction() for ex in examples[1:]]
            if held is None:
                pylibvw.vw._finish_example_multi_ex(ws, examples)
            else:
                held.append(examples)
        return pmf, cost, held

    def _predict_ccb(self, texts: list[str]) -> Decision:
        """VW's conditional contextual bandit: one pmf per slot over the unserved candidates.

        VW samples each slot itself (seeded by ``seed``); the slot's propensity is the
        sampled action's probability, and a slot explores when that action is not the slot's
        most probable one.
        """
        ws, k = self._ws, self.spec.slate_size
        slates = np.empty((len(texts), k), dtype=np.int64)
        props = np.empty((len(texts), k))
        top = np.empty((len(texts), k))
        for i, text in enumerate(texts):
            examples = ws._parse(text)
            pylibvw.vw.predict_multi(ws, examples)
            for j, scores in enumerate(examples[0].get_decision_scores()):
                slates[i, j], props[i, j] = scores[0]
                top[i, j] = max(score for _, score in scores)
            pylibvw.vw._finish_example_multi_ex(ws, examples)
        return Decision(slates=slates, propensities=props, explored=(props < top).any(axis=1))

    # ---------------------------------------------------------------- learning
    def update(self, obs: Observation, decision: Decision, feedback: Feedback) -> None:
        """One VW update per decision (``credit="slots"``: one per slot), cost = -reward / reward_scale."""
        pending = self._pending
        if pending is None or pending.decision is not decision:
            self._drop_pending()
            pending = _Pending(decision, self._formatter.format(obs["user"], obs["candidates"]), None)
        self._pending = None
        items, costs, probs = self._labels(decision, feedback)
        if self._params["slate_mode"] == "ccb":
            self._learn_ccb(pending.texts, items, costs, probs)
            return
        # first label of every decision, then (credit="slots") the others: the same order held or not
        if pending.examples is None:
            self._learn_text(pending.texts, items[:, :1], costs[:, :1], probs[:, :1])
        else:
            self._learn_held(pending.examples, items[:, 0], costs[:, 0], probs[:, 0])
        if items.shape[1] > 1:
            self._learn_text(pending.texts, items[:, 1:], costs[:, 1:], probs[:, 1:])

    def _labels(self, decision: Decision, feedback: Feedback) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B, L) labelled candidate, cost and probability; L = 1 (clicked) or k (slots)."""
        slates, props = decision.slates, decision.propensities
        b, k = slates.shape
        clicks = np.asarray(feedback.clicks)
        if clicks.shape != (b,) or np.any((clicks < -1) | (clicks >= k)):
            raise ValueError(f"vw.update: feedback.clicks must be (B,) = ({b},) in [-1, {k - 1}]; got {clicks}")
        cost = -np.asarray(feedback.rewards, dtype=np.float64) / self._params["reward_scale"]
        if self._params["credit"] == "slots" or self._params["slate_mode"] == "ccb":
            costs = np.where(np.arange(k)[None, :] == clicks[:, None], cost[:, None], 0.0)
            return slates, costs, props
        slot = np.maximum(clicks, 0)
        rows = np.arange(b)
        costs = np.where(clicks >= 0, cost, 0.0)
        return slates[rows, slot][:, None], costs[:, None], props[rows, slot][:, None]

    def _learn_held(self, held: list, items: np.ndarray, costs: np.ndarray, probs: np.ndarray) -> None:
        """Label the chosen parsed example of each decision ((B,) arrays), learn, give the examples back.

        VW's label parser appends costs and cannot clear them, so a held decision takes one label.
        """
        ws = self._ws
        labels = _label_strings(costs[:, None], probs[:, None])
        for examples, item, (label,) in zip(held, (items + 1).tolist(), labels, strict=True):
            examples[item].set_label_string(ws, label, _CB_LABEL)
            pylibvw.vw.learn_multi(ws, examples)
            pylibvw.vw._finish_example_multi_ex(ws, examples)

    def _learn_text(self, texts: list[str], items: np.ndarray, costs: np.ndarray, probs: np.ndarray) -> None:
        """Re-parse each decision's text with the label spliced into the chosen line, and learn."""
        ws = self._ws
        labels = _label_strings(costs, probs)
        offsets = self._formatter.action_offsets[items].tolist()
        for text, row_offsets, row_labels in zip(texts, offsets, labels, strict=True):
            for at, label in zip(row_offsets, row_labels, strict=True):
                examples = ws._parse(f"{text[:at]}{label} {text[at:]}")
                pylibvw.vw.learn_multi(ws, examples)
                pylibvw.vw._finish_example_multi_ex(ws, examples)

    def _learn_ccb(self, texts: list[str], items: np.ndarray, costs: np.ndarray, probs: np.ndarray) -> None:
        """One VW update per decision with every slot labelled ``action:cost:probability``."""
        ws = self._ws
        labels = _label_strings(costs, probs, items)
        cuts = self._formatter.slot_label_offsets.tolist()
        for text, row_labels in zip(texts, labels, strict=True):
            pieces = [text[: cuts[0]]]
            for j, label in enumerate(row_labels):
                end = cuts[j + 1] if j + 1 < len(cuts) else len(text)
                pieces.append(f"{label} {text[cuts[j] : end]}")
            examples = ws._parse("".join(pieces))
            pylibvw.vw.learn_multi(ws, examples)
            pylibvw.vw._finish_example_multi_ex(ws, examples)

    def _drop_pending(self) -> None:
        """Return held examples of a decision that got no feedback to VW's pool."""
        if self._pending is not None and self._pending.examples is not None:
            for examples in self._pending.examples:
                pylibvw.vw._finish_example_multi_ex(self._ws, examples)
        self._pending = None

    # ------------------------------------------------------------- persistence
    def _model_bytes(self) -> bytes:
        """The content of VW's model file (``Workspace.save``)."""
        with tempfile.TemporaryDirectory() as tmp:
            model = os.path.join(tmp, "model.vw")
            self._ws.save(model)
            return Path(model).read_bytes()

    def get_state(self) -> dict[str, Any]:
        """``{"vw_model": (n,) uint8}``: VW's model file (weights, VW's random state)."""
        return {"vw_model": np.frombuffer(self._model_bytes(), dtype=np.uint8).copy()}

    def set_state(self, state: dict[str, Any]) -> None:
        """Start from a saved VW model; its header's stored flags are checked first (:func:`vw_model_flags`)."""
        model = state.get("vw_model")
        ok = isinstance(model, np.ndarray) and model.dtype == np.uint8 and model.ndim == 1
        if set(state) != {"vw_model"} or not ok:
            got = {key: getattr(value, "dtype", type(value).__name__) for key, value in state.items()}
            raise ModelFileError(f"state: want {{'vw_model': a 1-d uint8 array}}; got {got}")
        workspace = vw_workspace(self._params, model.tobytes())
        self._drop_pending()
        self._ws.finish()
        self._ws = workspace

    def __getstate__(self) -> dict[str, Any]:
        """Pickle support: the VW model travels as bytes; held examples are dropped."""
        self._drop_pending()
        state = {key: value for key, value in self.__dict__.items() if key != "_ws"}
        state["_model_bytes"] = self._model_bytes()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        model_bytes = state.pop("_model_bytes")
        self.__dict__.update(state)
        self._ws = vw_workspace(self._params, model_bytes)

    def __del__(self) -> None:
        # held examples must go back to VW before its workspace is finished
        if getattr(self, "_ws", None) is not None and getattr(self, "_pending", None) is not None:
            self._drop_pending()

    def close(self) -> None:
        """Release VW's workspace (the agent is unusable afterwards)."""
        self._drop_pending()
        if not self._ws.finished:
            self._ws.finish()


class _Pending:
    """A decision waiting for feedback: its texts and, if held, its parsed examples."""

    __slots__ = ("decision", "examples", "texts")

    def __init__(self, decision: Decision, texts: list[str], examples: list | None) -> None:
        self.decision = decision
        self.texts = texts
        self.examples = examples


def _label_strings(costs: np.ndarray, probs: np.ndarray, actions: np.ndarray | None = None) -> list[list[str]]:
    """(B, L) VW labels ``"action:cost:probability"``; action 0 unless given (cb ADF ignores it)."""
    probs = np.clip(probs, 1e-6, 1.0)
    actions = np.zeros(costs.shape, dtype=np.int64) if actions is None else actions
    return [
        [f"{a}:{cost:.6g}:{prob:.6g}" for a, cost, prob in zip(row_a, row_c, row_p, strict=True)]
        for row_a, row_c, row_p in zip(actions.tolist(), costs.tolist(), probs.tolist(), strict=True)
    ]


@register
class VWEpsilonAgent(VWAgent):
    """:class:`VWAgent` with ``exploration="epsilon"`` (epsilon-greedy, Langford & Zhang 2007)."""

    name = "vw_epsilon"
    Params = VWSettings
    fixed_exploration = "epsilon"


@register
class VWSquareCBAgent(VWAgent):
    """:class:`VWAgent` with ``exploration="squarecb"`` (SquareCB, Foster & Rakhlin 2020)."""

    name = "vw_squarecb"
    Params = VWSettings
    fixed_exploration = "squarecb"
