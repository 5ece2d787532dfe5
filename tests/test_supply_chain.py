import pytest
import torch

from course_utils import make_model, supply_chain


def test_linear_probe_learns_a_new_task(digits):
    from course_utils import fit

    model = fit(make_model("small-cnn", seed=0), digits.x_train, digits.y_train, epochs=2, progress=False)
    new_y = (digits.y_train >= 5).long()
    probe = supply_chain.linear_probe(model, digits.x_train[:1000], new_y[:1000])
    preds = supply_chain.probe_predict(model, probe, digits.x_test)
    assert preds.dtype == torch.int64 and set(preds.unique().tolist()) <= {0, 1}
    assert (preds == (digits.y_test >= 5).long()).float().mean() > 0.85


def test_probe_length_mismatch(digits):
    with pytest.raises(ValueError, match="length"):
        supply_chain.linear_probe(make_model("small-cnn").eval(), digits.x_train[:10], digits.y_train[:9])
