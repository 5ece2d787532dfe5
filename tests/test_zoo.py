import dataclasses

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
    from course_utils import runtime

    monkeypatch.setitem(runtime.PROFILES, "cpu", dataclasses.replace(runtime.PROFILES["cpu"], zoo_epochs=1))
    mid = zoo.model_ids()[0]
    model = zoo.load_model(digits, mid)
    assert not model.training
    again = zoo.load_model(digits, mid)  # from the cache
    assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), again.state_dict().values()))
    scores = zoo.score_all({mid: model}, lambda m, x: zoo.patch_scan_score(m, x), digits.x_test[:20], progress=False)
    assert list(scores) == [mid] and np.isfinite(scores[mid])


def test_mapping_score_sees_all_to_all_and_bounds_the_scan():
    clean, trojan, x = _toys()
    for model in (clean, trojan):
        assert zoo.patch_mapping_score(model, x, size=3, stride=3) >= zoo.patch_scan_score(model, x, size=3, stride=3)

    class AllToAll(torch.nn.Module):  # own class from the top row's brightness; the toy trigger sends c to c + 1
        num_classes = 5

        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

        def forward(self, images):
            own = (images[:, 0, 0].mean(1) * 40).long() % 5
            hit = (images[:, :, 6:9, 6:9].amin(dim=(1, 2, 3)) > 0.9).long()
            return self.scale * torch.nn.functional.one_hot((own + hit) % 5, 5).float()

    a2a = AllToAll().eval()
    assert zoo.patch_mapping_score(a2a, x, size=3, stride=3) == 1.0
    assert zoo.patch_scan_score(a2a, x, size=3, stride=3) < 1.0


def test_calibration_and_probability():
    scores = {"a": 0.1, "b": 0.2, "c": 0.8, "d": 0.9}
    slope, intercept = zoo.fit_calibration(scores, {"a": 0, "b": 0, "c": 1, "d": 1})
    assert slope > 0 and np.isfinite(intercept)  # finite although the scores separate perfectly
    p = {m: zoo.to_probability(s, (slope, intercept)) for m, s in scores.items()}
    assert p["a"] < 0.5 < p["d"] and 0.5 < p["d"] < 1  # Platt's soft targets: never certain
    assert zoo.to_probability(0.5, (2.0, -1.0)) == pytest.approx(0.5)
    assert 0 < zoo.to_probability(0.0) < zoo.to_probability(1.0) < 1


def test_trojai_score_uses_the_hidden_truth():
    ids = zoo.model_ids()
    truth = zoo._labels(ids)
    result = zoo.trojai_score({m: 0.2 + 0.6 * t for m, t in zip(ids, truth)}, n_boot=50)
    assert result["auroc"] == 1.0 and result["cross_entropy"] == pytest.approx(-np.log(0.8))
    with pytest.raises(ValueError, match="missing"):
        zoo.trojai_score({ids[0]: 0.5})


def test_universal_trigger_success_shapes_and_side_effects():
    clean, trojan, x = _toys()
    x = torch.cat([x, x])  # 32 images: 24 to optimise on, 8 held out
    before = {k: v.clone() for k, v in clean.state_dict().items()}
    s = zoo.universal_trigger_success(clean, x, radius=2.0, steps=3, batch_size=4)
    assert s.shape == (5,) and s.dtype == torch.float32 and (s >= 0).all() and (s <= 1).all()
    # reproducible: the same search again, as a learner's function (never cached), finds the same triggers
    assert torch.equal(s, zoo.universal_trigger_success(clean, x, radius=2.0, steps=3, batch_size=4,
                                                        invert=lambda *a, **k: zoo.invert_triggers(*a, **k)))
    assert all(torch.equal(before[k], v) for k, v in clean.state_dict().items())
    assert all(p.requires_grad for p in clean.parameters())
    assert zoo.universal_trigger_score(clean, x, steps=3) == pytest.approx(
        zoo.universal_trigger_success(clean, x, steps=3).max().item())
    comps = zoo.reference_components(trojan, x)
    assert set(comps) == {"patch", "mapping", "universal", "warp"} and comps["patch"] == zoo.patch_scan_score(trojan, x)
    assert zoo.reference_detector(trojan, x) == pytest.approx(zoo.to_probability(zoo.reference_score(comps)))
    assert torch.equal(zoo.invert_triggers(clean, x[:24], steps=3, batch_size=4),
                       zoo.invert_triggers(clean, x[:24], steps=3, batch_size=4))
    with pytest.raises(ValueError, match="at least 8"):
        zoo.universal_trigger_success(clean, x[:4])
    with pytest.raises(ValueError, match="radius"):
        zoo.universal_trigger_success(clean, x, radius=0)


def test_held_out_report_reads_the_measured_file(tmp_path):
    import json

    assert zoo.held_out_report(tmp_path / "missing.json") == []
    row = {"zoo": "test seed 1 (held out)", "detector": "reference", "models": "all", "n_models": 4, "n_trojaned": 2,
           "auroc": 0.75, "cross_entropy": 0.5, "clean_flagged_at_90pct": 1, "flagged_at_90pct": 3,
           "families": {"patch": {"n": 2, "auroc": 0.75}},
           "neural_cleanse": {"threshold": 2.0, "by_epochs": {"3": {"clean": [1.0, 2.5], "trojaned": [4.0]}}}}
    practice = dict(row, zoo="practice (in-sample)")
    path = tmp_path / "heldout.json"
    path.write_text(json.dumps([practice, row]))
    lines = zoo.held_out_report(path)
    assert len(lines) == 3 and lines[0].startswith("test seed 1 (held out)") and "AUROC 0.750" in lines[0]
    assert "patch 0.75 (n=2)" in lines[1] and "3 epochs 1 of 2" in lines[2]
    assert zoo.HELD_OUT_RESULTS.exists(), "the measured held-out file ships with the course"


class _ShiftTrojan(torch.nn.Module):
    """A toy warp backdoor: `base`, except that an image whose bright column has moved one pixel right
    (column `col` + 1 brighter than column `col`) goes to `target`; soft, so that gradients reach it."""

    def __init__(self, base, col: int, target: int):
        super().__init__()
        self.base, self.col, self.target = base, col, target

    @property
    def num_classes(self) -> int:
        return self.base.num_classes

    def forward(self, x):
        moved = x[..., self.col + 1].mean((1, 2)) - x[..., self.col].mean((1, 2))
        bonus = 50 * torch.sigmoid(20 * (moved - 0.3))[:, None]
        return self.base(x) + bonus * torch.nn.functional.one_hot(torch.tensor(self.target), self.num_classes)


def test_warp_inversion_finds_a_one_pixel_warp_backdoor_and_leaves_the_model_alone():
    import copy

    clean, _, x = _toys()
    x = 0.3 * torch.cat([x, x])  # 32 images: 24 to optimise on, 8 held out; a bright column 5 in each
    x[..., 5] = 0.9
    trojan = _ShiftTrojan(copy.deepcopy(clean), col=5, target=2).eval()
    before = {k: v.clone() for k, v in clean.state_dict().items()}
    clean_success = zoo.warp_trigger_success(clean, x, batch_size=8)
    trojan_success = zoo.warp_trigger_success(trojan, x, batch_size=8)
    assert clean_success.shape == (5,) and (clean_success >= 0).all() and (clean_success <= 1).all()
    assert trojan_success[2] == 1.0 and clean_success.max() < 0.5  # a one-pixel bend reaches the backdoor only
    assert zoo.warp_trigger_score(trojan, x, batch_size=8) == trojan_success.max().item()
    assert all(torch.equal(before[k], v) for k, v in clean.state_dict().items())
    assert all(p.requires_grad for p in clean.parameters())
    grids = zoo.invert_warps(trojan, x[:24], radius_px=1.0, batch_size=8)
    assert grids.shape == (5, 12, 12, 2) and torch.equal(grids, zoo.invert_warps(trojan, x[:24], radius_px=1.0, batch_size=8))
    rows, cols = torch.meshgrid(torch.linspace(-1, 1, 12), torch.linspace(-1, 1, 12), indexing="ij")
    moved_px = (grids - torch.stack((cols, rows), -1)).abs().max() * 11 / 2
    assert moved_px <= 1.0 + 1e-5  # no pixel moves further than radius_px
    with pytest.raises(ValueError, match="radius_px"):
        zoo.invert_warps(clean, x, radius_px=0)
    with pytest.raises(ValueError, match="at least 8"):
        zoo.warp_trigger_success(clean, x[:4])


def test_the_course_searches_are_cached_and_a_learners_always_runs(monkeypatch):
    import course_utils as cu

    clean, trojan, x = _toys()
    x = torch.cat([x, x])
    calls = []

    def counted(name, search):
        def run(*args, **kwargs):
            calls.append(name)
            return search(*args, **kwargs)
        return run

    original_warps = zoo.invert_warps
    monkeypatch.setattr(zoo, "invert_triggers", counted("additive", zoo.invert_triggers))
    monkeypatch.setattr(zoo, "invert_warps", counted("warp", zoo.invert_warps))
    with cu.cost_timer() as first:
        a = zoo.reference_components(trojan, x)
    assert sorted(calls) == ["additive", "warp"]
    with cu.cost_timer() as second:
        b = zoo.reference_components(trojan, x)  # every search loaded from the results cache
    assert a == b and sorted(calls) == ["additive", "warp"]
    # the loads cost almost nothing, but the timer counts each search at what it cost when it ran
    assert second.seconds == pytest.approx(first.seconds, rel=0.5)
    zoo.universal_trigger_score(clean, x)  # another model: its own search
    assert calls.count("additive") == 2
    zoo.universal_trigger_success(trojan, x, steps=5)  # other settings: searched again
    assert calls.count("additive") == 3
    learner = counted("learner", lambda *a, **k: torch.zeros(5, 1, 12, 12))
    zoo.universal_trigger_success(trojan, x, invert=learner)
    zoo.universal_trigger_success(trojan, x, invert=learner)
    zoo.warp_trigger_success(trojan, x, invert=counted("learner", original_warps))
    assert calls.count("learner") == 3
