"""Candidate scoring in torch: one shared-weight network scores every candidate.

A flat MLP over ``[user, candidate_1, ..., candidate_C]`` must learn, for each of the C
positions separately, that candidate i's features decide logit i. :class:`CandidateScorer`
instead applies one network to each ``(user, candidate)`` pair, so

* the C logits come from the same weights (C times fewer parameters to learn, and what is
  learnt about one position holds for every position), and
* the scores are *equivariant* to candidate order: permuting the candidates permutes the
  scores the same way, exactly (the same arithmetic runs on each pair).

This is the item-tower / "deep scoring" shape used by candidate-ranking policies (e.g.
Covington et al. 2016, "Deep Neural Networks for YouTube Recommendations"; Chen et al. 2019,
"Top-K Off-Policy Correction for a REINFORCE Recommender System"; Ie et al. 2019, SlateQ's
item-level values). Value heads, which must not depend on candidate order, take the user
and a pooled summary of the candidates (:func:`pool_candidates`, Zaheer et al. 2017, "Deep
Sets": a sum/mean/max over set members is permutation invariant).

Shapes: B rows (sessions), C candidates, F_u user features, F_i item features.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn


def split_observation(flat: torch.Tensor, user_dim: int, item_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split flat observations (:func:`simenv.wrappers.flatten_observation`) into their parts.

    Args:
        flat: (B, F_u + C * F_i) float features ``[user, candidate_1, ..., candidate_C]``.
        user_dim: F_u. item_dim: F_i.

    Returns:
        ``(user (B, F_u), candidates (B, C, F_i))``, views of ``flat``.

    Raises:
        ValueError: the width is not ``F_u + C * F_i`` for a whole C >= 1.
    """
    width = flat.shape[-1] - user_dim
    if flat.ndim != 2 or width <= 0 or width % item_dim:
        raise ValueError(
            f"flat observations must be (B, {user_dim} + C * {item_dim}) with C >= 1; got shape {tuple(flat.shape)}"
        )
    return flat[:, :user_dim], flat[:, user_dim:].reshape(flat.shape[0], width // item_dim, item_dim)


def pool_candidates(candidates: torch.Tensor) -> torch.Tensor:
    """Permutation-invariant summary of a candidate set: mean and max over candidates.

    Args:
        candidates: (B, C, F) candidate features or embeddings.

    Returns:
        (B, 2 F): ``[mean over C, max over C]`` (Deep Sets pooling, Zaheer et al. 2017).
    """
    return torch.cat([candidates.mean(dim=1), candidates.amax(dim=1)], dim=-1)


class CandidateScorer(nn.Module):
    """Scores each candidate from ``(user features, candidate features)`` with shared weights.

    Per pair, the input is ``[u, z, (P_u u) * (P_z z), u[:a] * z[:a]]``: the user u (F_u,), the
    candidate z (F_i,), ``interaction`` multiplicative features (learned projections of both,
    multiplied elementwise, so an affinity such as ``u^T W z`` is one layer away, as in a
    two-tower or factorisation model) and, if ``aligned`` = a > 0, the products of the first a
    user and item coordinates (for worlds whose first user features are noisy coordinates of
    the user's taste in the item embedding's first coordinates, as in :mod:`simenv`; the same
    products the linear bandits' feature map uses, :class:`agents.bandits.features.FeatureMap`).
    An MLP of widths ``hidden`` (activation after each layer) maps it to an embedding h (H,)
    and a linear head maps h to one score. The user's share of the first layer is computed
    once per row, not once per candidate.

    Args:
        user_dim: F_u >= 1.
        item_dim: F_i >= 1.
        hidden: hidden widths (each >= 1; empty = a linear score of the pair features).
        interaction: width of the multiplicative user-item features (0 = none).
        activation: the hidden layers' activation class (``nn.Tanh`` as SB3's MLP policies).
        aligned: a, products of aligned user and item coordinates (0 = none; a <= F_u, F_i).

    Attributes:
        embed_dim: H, the width of :meth:`embed`'s per-candidate embeddings (the last hidden
            width, or the pair-feature width if ``hidden`` is empty).
    """

    def __init__(
        self,
        user_dim: int,
        item_dim: int,
        hidden: Sequence[int] = (64, 64),
        interaction: int = 16,
        activation: type[nn.Module] = nn.Tanh,
        aligned: int = 0,
    ) -> None:
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if (
            user_dim < 1
            or item_dim < 1
            or interaction < 0
            or any(h < 1 for h in hidden)
            or not 0 <= aligned <= min(user_dim, item_dim)
        ):
            raise ValueError(
                "CandidateScorer needs user_dim, item_dim >= 1, interaction >= 0, hidden widths >= 1 and "
                f"0 <= aligned <= min(user_dim, item_dim); got user_dim={user_dim}, item_dim={item_dim}, "
                f"interaction={interaction}, hidden={hidden}, aligned={aligned}"
            )
        self.user_dim, self.item_dim, self.interaction, self.hidden = int(user_dim), int(item_dim), interaction, hidden
        self.aligned = int(aligned)
        self.user_proj = nn.Linear(user_dim, interaction, bias=False) if interaction else None
        self.item_proj = nn.Linear(item_dim, interaction, bias=False) if interaction else None
        item_part = item_dim + interaction + self.aligned
        pair_dim = user_dim + item_part
        if hidden:
            # first layer split into its user part (once per row) and candidate part (per pair)
            self.first_user = nn.Linear(user_dim, hidden[0], bias=False)
            self.first_item = nn.Linear(item_part, hidden[0])
            layers: list[nn.Module] = [activation()]
            for width_in, width_out in itertools.pairwise(hidden):
                layers += [nn.Linear(width_in, width_out), activation()]
            self.body = nn.Sequential(*layers)
            self.embed_dim = hidden[-1]
        else:
            self.first_user = self.first_item = None
            self.body = None
            self.embed_dim = pair_dim
        self.head = nn.Linear(self.embed_dim, 1)

    def embed(self, user: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """(B, C, H) per-candidate embeddings, equivariant to candidate order.

        Args:
            user: (B, F_u). candidates: (B, C, F_i).
        """
        parts = [candidates]
        if self.interaction:
            parts.append(self.user_proj(user).unsqueeze(1) * self.item_proj(candidates))
        if self.aligned:
            parts.append(user[:, None, : self.aligned] * candidates[..., : self.aligned])
        item_part = torch.cat(parts, dim=-1) if len(parts) > 1 else candidates
        if self.body is None:
            user_part = user.unsqueeze(1).expand(-1, candidates.shape[1], -1)
            return torch.cat([user_part, item_part], dim=-1)
        return self.body(self.first_item(item_part) + self.first_user(user).unsqueeze(1))

    def forward(self, user: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """(B, C) candidate scores (logits or Q-values): ``head(embed(user, candidates))``.

        Args:
            user: (B, F_u) user features. candidates: (B, C, F_i) candidate features.
        """
        return self.head(self.embed(user, candidates)).squeeze(-1)

    def score_flat(self, flat: torch.Tensor) -> torch.Tensor:
        """(B, C) scores of flat observations (B, F_u + C * F_i) (:func:`split_observation`)."""
        return self(*split_observation(flat, self.user_dim, self.item_dim))
