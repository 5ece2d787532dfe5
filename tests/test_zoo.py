import numpy as np
import pytest
import torch

from course_utils import zoo
from course_utils.checks.hunt import _toys


def test_zoo_is_big_enough_and_mixed():
    ids = zoo.model_ids()
    assert len(ids) >= 12 and len(set(ids)) == len(ids)
    truth = zoo._labels(ids)
    assert 0.35 <= truth.mean() <= 0.65  # about half trojaned
    kinds = {zoo._spec(m).attack for m in ids if zoo._spec(m).attack}
    targets = {zoo._spec(m).target for m in ids if zoo._spec(m).attack}
    assert len(kinds) >= 3 and len(targets) >= 5
    assert len({zoo._spec(m).seed for m in ids}) == len(ids)
    assert truth[:6].tolist() != sorted(truth[:6].tolist())  # shuffled, not trojans first


def test_score_detector_and_flag_report():
    ids = zoo.model_ids()
    truth = zoo._labels(ids)
    perfect = {m: float(t) for m, t in zip(ids, truth)}
    assert zoo.score_detector(perfect).auroc == 1.0
    worst = {m: -v for m, v in perfect.items()}
    result = zoo.score_detector(worst)
    assert result.auroc == 0.0 and result.n_trojaned + result.n_clean == len(ids)
    assert result.fpr[0] == 0 and result.tpr[-1] == 1
    report = zoo.flag_report(perfect, 0.5)
    assert report["detected"] == report["trojaned"] == truth.sum() and report["false_alarms"] == 0
    assert zoo.flag_report(perfect, -1)["false_alarms"] == report["clean"]


def test_score_detector_bad_input():
    ids = zoo.model_ids()
    with pytest.raises(ValueError, match="missing"):
        zoo.score_detector({ids[0]: 1.0})
    with pytest.raises(ValueError, match="unknown"):
        zoo.score_detector({**{m: 0.0 for m in ids}, "model-99": 1.0})
    with pytest.raises(ValueError, match="finite"):
        zoo.score_detector({**{m: 0.0 for m in ids}, ids[0]: float("nan")})
    with pytest.raises(TypeError, match="dict"):
        zoo.score_detector([0.0] * len(ids))
    with pytest.raises(KeyError, match="no model"):
        zoo.load_model(None, "model-99")


def test_patch_grid_and_masks_cover_the_image():
    corners = zoo.patch_grid((28, 28), size=4, stride=3)
    assert corners[0] == (0, 0) and corners[-1] == (24, 24)
    masks = zoo.patch_masks((28, 28), size=4, stride=3)
    assert masks.shape == (len(corners), 28, 28) and (masks.sum(dim=(1, 2)) == 16).all()
    assert masks.any(0).all()  # every pixel is under some patch
    with pytest.raises(ValueError, match="size"):
        zoo.patch_grid((8, 8), size=9)


def test_patch_scan_finds_the_toy_trojan():
    clean, trojan, x = _toys()
    assert zoo.patch_scan_score(trojan, x, size=3, stride=3) == 1.0
    assert zoo.patch_scan_score(clean, x, size=3, stride=3) < 1.0
    assert zoo.patch_scan_score(trojan, (x * 255).to(torch.uint8), size=3, stride=3) == 1.0
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        zoo.patch_scan_score(trojan, x[0])


def test_load_model_and_score_all(digits, monkeypatch):
    monkeypatch.setattr(zoo, "ZOO_EPOCHS", 1)
    mid = zoo.model_ids()[0]
    model = zoo.load_model(digits, mid)
    assert not model.training
    again = zoo.load_model(digits, mid)  # from the cache
    assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), again.state_dict().values()))
    scores = zoo.score_all({mid: model}, lambda m, x: zoo.patch_scan_score(m, x), digits.x_test[:20], progress=False)
    assert list(scores) == [mid] and np.isfinite(scores[mid])


def test_lesson07_checks():
    from course_utils import checks

    assert checks.check_patch_scan(zoo.patch_scan_score)
    assert checks.check_detector(lambda m, x: zoo.patch_scan_score(m, x, size=3))

    def own_class_too(model, x, size=4, stride=3, color=1.0):  # counts images that were already in the class
        from course_utils import predict

        masks = zoo.patch_masks(tuple(x.shape[-2:]), size, stride)[:, None, None]
        pred = predict(model, torch.where(masks, torch.tensor(color), x.unsqueeze(0)).flatten(0, 1))
        return torch.bincount(pred.view(len(masks), -1)[0]).max().item() / len(x)

    with pytest.raises(AssertionError, match="expected"):
        checks.check_patch_scan(own_class_too)
    with pytest.raises(AssertionError, match="reproduced"):
        checks.check_detector(lambda m, x: float(torch.rand(1)))
    with pytest.raises(AssertionError, match="finite"):
        checks.check_detector(lambda m, x: float("nan"))
    with pytest.raises(AssertionError, match="number"):
        checks.check_detector(lambda m, x: "high")

    def trains(model, x):
        model.train()
        return 0.0

    with pytest.raises(AssertionError, match="training mode"):
        checks.check_detector(trains)


def test_universal_trigger_success_shapes_and_side_effects():
    clean, trojan, x = _toys()
    x = torch.cat([x, x])  # 32 images: 24 to optimise on, 8 held out
    before = {k: v.clone() for k, v in clean.state_dict().items()}
    s = zoo.universal_trigger_success(clean, x, radius=2.0, steps=3, batch_size=4)
    assert s.shape == (5,) and s.dtype == torch.float32 and (s >= 0).all() and (s <= 1).all()
    assert torch.equal(s, zoo.universal_trigger_success(clean, x, radius=2.0, steps=3, batch_size=4))
    assert all(torch.equal(before[k], v) for k, v in clean.state_dict().items())
    assert all(p.requires_grad for p in clean.parameters())
    assert zoo.universal_trigger_score(clean, x, steps=3) == pytest.approx(
        zoo.universal_trigger_success(clean, x, steps=3).max().item())
    assert zoo.reference_detector(trojan, x) >= zoo.patch_scan_score(trojan, x[:100])
    with pytest.raises(ValueError, match="at least 8"):
        zoo.universal_trigger_success(clean, x[:4])
    with pytest.raises(ValueError, match="radius"):
        zoo.universal_trigger_success(clean, x, radius=0)
