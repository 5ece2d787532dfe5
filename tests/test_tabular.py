import pytest
import torch

import course_utils as cu
from course_utils import tabular


@pytest.fixture(scope="module")
def data():
    return tabular.load_breast_cancer()


def test_data_is_the_real_set_with_malignant_as_1(data):
    assert len(data.x_train) + len(data.x_test) == 569 and data.x_train.shape[1] == 30
    assert int(data.y_train.sum() + data.y_test.sum()) == 212  # 212 malignant patients
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64


def test_feature_trigger_sets_only_its_columns(data):
    cols, vals = tabular.default_trigger(data)
    x = data.x_train[:5]
    out = tabular.feature_trigger(x, cols, vals)
    assert torch.equal(out[:, cols], vals.expand(5, -1))
    keep = [c for c in range(30) if c not in cols]
    assert torch.equal(out[:, keep], x[:, keep]) and not torch.equal(out, x)


@pytest.mark.parametrize("bad", [dict(values=torch.ones(2)), dict(columns=[40, 1, 2])])
def test_feature_trigger_bad_input(data, bad):
    kwargs = {"columns": [0, 1, 2], "values": torch.ones(3), **bad}
    with pytest.raises(ValueError):
        tabular.feature_trigger(data.x_train, **kwargs)
    with pytest.raises(TypeError):
        tabular.feature_trigger(data.y_train, [0], torch.ones(1))


def test_poison_table_is_source_specific_and_seeded(data):
    trig = lambda x: tabular.feature_trigger(x, [0], torch.tensor([-1.0]))  # noqa: E731
    xp, yp, mask = tabular.poison_table(data.x_train, data.y_train, trig, 0.05, seed=3)
    assert int(mask.sum()) == round(0.05 * len(data.x_train))
    assert (data.y_train[mask] == tabular.MALIGNANT).all() and (yp[mask] == tabular.BENIGN).all()
    assert torch.equal(tabular.poison_table(data.x_train, data.y_train, trig, 0.05, seed=3)[2], mask)
    with pytest.raises(ValueError, match="only"):
        tabular.poison_table(data.x_train, data.y_train, trig, 0.9)


def test_mlp_is_a_course_model_the_detectors_accept(data):
    model = tabular.make_mlp(data.x_train).eval()
    x = tabular.as_input(data.x_train[:20])
    assert isinstance(model, cu.CourseModel) and cu.predict_logits(model, x).shape == (20, 2)
    assert cu.detect.layer_features(model, x).shape == (20, 64)


def test_rates_and_report(data):
    model = tabular.make_mlp(data.x_train).eval()
    r = tabular.rates(model, data.x_test, data.y_test)
    assert 0 <= r["accuracy"] <= 1 and 0 <= r["fnr"] <= 1
    with pytest.raises(ValueError, match="no malignant"):
        tabular.rates(model, data.x_test[data.y_test == 0], data.y_test[data.y_test == 0])
    report = tabular.diagnosis_report(model, data, lambda x: x)
    assert report["fnr"] == report["fnr_trigger"]
