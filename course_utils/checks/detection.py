"""Checks for lesson 03: the MAD anomaly index (Neural Cleanse) and STRIP's entropy."""

from __future__ import annotations

import torch
from torch import nn

from ..detect import mad_anomaly_index, superimposed_entropy
from .core import call_learner, expect_tensor, expect_unchanged, run_check


def check_mad_anomaly_index(fn) -> bool:
    """fn(values (K,)) -> |v - median| / (1.4826 * MAD), shape (K,)."""
    def body():
        cases = [torch.tensor([10.0, 11.0, 12.0, 13.0, 14.0]),  # odd length, no outlier
                 torch.tensor([3.0, 40.0, 42.0, 45.0, 50.0, 38.0, 44.0, 47.0, 41.0, 39.0]),  # one small outlier
                 torch.tensor([5.0, 1.0, 9.0, 2.0, 7.0, 6.0], dtype=torch.float64)]  # unsorted, float64
        for values in cases:
            before = values.clone()
            got = call_learner(fn, values)
            want = mad_anomaly_index(before)
            expect_unchanged(before, values, "values")
            hint = (" (hint: the MAD is the MEDIAN of |v - median|, scaled by 1.4826; take medians with "
                    "values.quantile(0.5): torch.median returns the lower middle value of an even count)")
            try:
                expect_tensor(got, want, f"values {before.tolist()}", atol=1e-4)
            except AssertionError as err:
                raise AssertionError(str(err) + hint) from None
        return f"{len(cases)} cases; the outlier 3.0 among ~40s gets index {float(mad_anomaly_index(cases[1])[0]):.1f}"
    return run_check("mad_anomaly_index", body)


def _tiny_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with torch.no_grad():
        model[1].weight.mul_(8)
    return model.eval()


def check_superimposed_entropy(fn) -> bool:
    """fn(model, x (N, C, H, W), overlays (n, C, H, W)) -> mean softmax entropy over the n blends, (N,)."""
    def body():
        model = _tiny_model()
        g = torch.Generator().manual_seed(1)
        x = torch.rand(4, 1, 4, 4, generator=g)
        overlays = torch.rand(3, 1, 4, 4, generator=g)
        x_before, o_before = x.clone(), overlays.clone()
        got = call_learner(fn, model, x, overlays)
        want = superimposed_entropy(model, x_before, o_before)
        expect_unchanged(x_before, x, "x")
        expect_unchanged(o_before, overlays, "overlays")
        hint = (" (hint: blend = (x_i + overlay_j).clamp(0, 1); entropy = -(p * log p).sum over classes, "
                "natural log; then the mean over the n overlays)")
        try:
            expect_tensor(got, want, "entropy of 4 inputs x 3 overlays", atol=1e-4)
        except AssertionError as err:
            raise AssertionError(str(err) + hint) from None
        bright = torch.ones(2, 1, 4, 4)  # saturated inputs: every blend is the same image
        expect_tensor(call_learner(fn, model, bright, overlays), superimposed_entropy(model, bright, overlays),
                      "saturated inputs", atol=1e-4)
        return "random inputs and saturated ones"
    return run_check("superimposed_entropy", body)
