"""Linear contextual bandits in numpy, batched over users.

Registered agents (all share one feature map, :class:`FeatureMap`):

* ``linear_egreedy``: epsilon-greedy over a ridge regression of reward (Sutton & Barto 2018, ch. 2).
* ``linucb``: LinUCB with "disjoint" formulas (Li et al. 2010, Alg. 1) over one shared
  parameter vector. The *arms* are the C candidates of each user-step; they are described
  by the joint (user, item) context ``x = phi(user, item)``, so one model serves every arm
  and every user (items come and go, so per-item models would rarely see data).
* ``linucb_hybrid``: hybrid LinUCB (Li et al. 2010, Alg. 2). Shared features ``z = phi(user, item)``
  with parameters beta common to all, plus per-*user* parameters theta_a on the item
  embedding ``x = e``: here an "arm" of Li et al. is a user slot ``user_id % user_slots``, so
  the per-arm part learns each returning user's latent interest (collisions share a slot).
* ``lints``: linear Thompson sampling (Agrawal & Goyal 2013), theta ~ N(theta_hat, v^2 A^-1).
* ``discounted_linucb``: D-LinUCB for non-stationary worlds (Russac, Vernade & Cappé 2019),
  exponential forgetting with factor gamma per environment step.
* ``dp_linucb``: LinUCB on differentially private statistics (Shariff & Sheffet 2018): the
  Gram matrix of ``[x, r]`` is released through the tree-based (binary) mechanism with
  Gaussian noise calibrated to (epsilon, delta), see :class:`PrivateRidge`.

Learning signal (all agents): every shown item is one regression row; the clicked item has
the observed reward (minutes watched, or 1 for a click), the shown-but-not-clicked items
reward 0. The model therefore estimates the expected reward an item brings when shown in a
slate, which is what ranking needs, and gets k rows per decision instead of one.

Layout:

* :mod:`agents.bandits.features`: the feature map (:class:`FeatureMap`) and its factored
  per-user form (:class:`Projected`) that serving scores in;
* :mod:`agents.bandits.ridge`: ridge statistics (:class:`Ridge`), discounted
  (:class:`DiscountedRidge`) and released with differential privacy (:class:`PrivateRidge`);
* :mod:`agents.bandits.linear`: the agents over one shared model (``linear_egreedy``,
  ``linucb``, ``discounted_linucb``, ``dp_linucb``, ``lints``), ranking and propensities;
* :mod:`agents.bandits.hybrid`: ``linucb_hybrid``, with its compiled loops in
  :mod:`agents.bandits.hybrid_kernels`.

Determinism: all randomness comes from the ``rng`` passed to ``act``, except the noise of
``dp_linucb``'s mechanism, which uses its own generator seeded by its ``seed`` parameter.
"""

from agents.bandits.features import FeatureMap, Projected, served_rows
from agents.bandits.hybrid import HybridLinUCB
from agents.bandits.linear import (
    DiscountedLinUCB,
    LinearBandit,
    LinearEpsilonGreedy,
    LinTS,
    LinUCB,
    PrivateLinUCB,
    deterministic_decision,
    prefix_propensities,
    slate_propensities,
    top_k,
)
from agents.bandits.ridge import DiscountedRidge, PrivateRidge, Ridge, sherman_morrison, symmetric_gaussian, zcdp_rho

__all__ = [
    "DiscountedLinUCB",
    "DiscountedRidge",
    "FeatureMap",
    "HybridLinUCB",
    "LinTS",
    "LinUCB",
    "LinearBandit",
    "LinearEpsilonGreedy",
    "PrivateLinUCB",
    "PrivateRidge",
    "Projected",
    "Ridge",
    "deterministic_decision",
    "prefix_propensities",
    "served_rows",
    "sherman_morrison",
    "slate_propensities",
    "symmetric_gaussian",
    "top_k",
    "zcdp_rho",
]
