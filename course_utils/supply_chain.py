"""Supply chain: what happens to a trojaned model after a user downloads and adapts it.

Transfer learning usually keeps the feature extractor and trains a new head on the user's
own task. If the backdoor lives in the features, it comes along (Gu et al., 2017, sec. 5).
"""

from __future__ import annotations

import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from .train import embeddings


def linear_probe(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> LogisticRegression:
    """A new linear head (logistic regression) trained on the frozen `model.embed` features of (x, y)."""
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
    features = embeddings(model, x).numpy()
    return LogisticRegression(max_iter=2000, random_state=seed).fit(features, y.numpy())


def probe_predict(model: nn.Module, probe: LogisticRegression, x: torch.Tensor) -> torch.Tensor:
    """Predictions of the frozen `model` features + the new `probe` head, as int64 class indices (N,)."""
    return torch.as_tensor(probe.predict(embeddings(model, x).numpy()), dtype=torch.int64)
