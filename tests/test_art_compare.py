"""course_tools.art_compare on a tiny case: an untrained model, 200 training images, 40 test inputs."""

import pytest
import torch

pytest.importorskip("art", reason="adversarial-robustness-toolbox is not installed (pip install -r requirements-dev.txt)")

from course_tools import art_compare  # noqa: E402
from course_utils import load_data, make_attack, make_model  # noqa: E402

KEYS = {"method", "implementation", "attack", "seed", "removed", "precision", "recall", "auroc", "seconds"}


@pytest.fixture(scope="module")
def tiny():
    data = load_data()
    attack = make_attack("badnets")
    model = make_model(in_shape=data.image_shape, num_classes=data.num_classes, seed=0).eval()
    pset = attack.poison(data.x_train[:200], data.y_train[:200], 0.1, seed=0)
    return data, attack, model, pset


def test_rows_for_both_implementations(tiny):
    data, attack, model, pset = tiny
    rows = art_compare.data_level_rows(model, pset, "badnets", 0, 0.1, data.num_classes)
    rows += art_compare.strip_rows(model, attack, "badnets", 0, data.x_test[100:140], data.x_test[:30])
    assert all(set(r) == KEYS for r in rows)
    impls = {(r["method"], r["implementation"]) for r in rows}
    for method in ("activation clustering", "spectral signatures", "STRIP"):
        assert (method, "ART 1.20") in impls
    assert ("activation clustering", "course, course rule") in impls
    for r in rows:
        assert 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1 and r["seconds"] >= 0
        assert (r["auroc"] is None) == (r["implementation"] == "ART 1.20")
    table = art_compare.markdown_table(rows)
    assert table.startswith("| attack | method | implementation |")
    assert len(table.splitlines()) == 2 + len(impls)


def test_probabilities_wrapper_sums_to_one(tiny):
    _, _, model, pset = tiny
    p = art_compare.Probabilities(model).eval()(pset.x[:5].float() / 255)
    assert torch.allclose(p.sum(1), torch.ones(5), atol=1e-5) and (p >= 0).all()
