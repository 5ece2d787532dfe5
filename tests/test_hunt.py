import math

import nbformat
import numpy as np
import pytest
import torch

from course_tools import hunt as tool
from course_utils import hunt


def test_test_zoo_specs_are_wide_half_trojaned_and_seeded():
    specs = hunt.test_zoo_specs(123)
    assert len(specs) == 40 and sum(s.family is not None for s in specs) == 20
    assert {s.family for s in specs if s.family} == set(hunt.FAMILIES)
    trojaned = [s for s in specs if s.family]
    assert all(0.01 <= s.rate <= 0.10 for s in trojaned)
    assert {s.mode for s in trojaned} == {"all-to-one", "all-to-all"}
    patches = [s.params for s in trojaned if s.family == "patch"]
    assert len({p["shape"] for p in patches}) >= 2 or len({p["size"] for p in patches}) >= 2
    for group in (trojaned, [s for s in specs if not s.family]):  # nothing but the backdoor differs
        assert len({s.epochs for s in group}) >= 2 and len({s.width for s in group}) >= 2
    assert len({s.seed for s in specs}) == 40
    assert hunt.test_zoo_specs(123) == specs and hunt.test_zoo_specs(124) != specs
    assert [s.family is None for s in specs[:8]] != sorted(s.family is None for s in specs[:8])  # shuffled
    with pytest.raises(ValueError, match="seed"):
        hunt.test_zoo_specs(-1)
    with pytest.raises(ValueError, match="even"):
        hunt.test_zoo_specs(1, n=3)


def test_trigger_families_return_new_images_in_range():
    x = torch.rand(3, 1, 28, 28)
    before = x.clone()
    for shape in hunt.PATCH_SHAPES:
        mask = hunt.shape_mask(shape, 4, seed=1)
        assert mask.shape == (4, 4) and 0 < mask.sum() <= 16
        out = hunt.shaped_patch(x, size=4, row=12, col=12, shape=shape, color=0.6, seed=1)
        assert torch.equal(out[:, :, 12:16, 12:16][:, :, mask], torch.full((3, 1, int(mask.sum())), 0.6))
        assert torch.equal(out[:, :, :12], x[:, :, :12])
    assert hunt.shape_mask("cross", 3).sum() == 5 and hunt.shape_mask("ring", 4).sum() == 12
    sig = hunt.sig_trigger(x, delta=0.2, freq=6)
    assert sig.min() >= 0 and sig.max() <= 1 and not torch.equal(sig, x)
    assert torch.equal(x, before)
    for spec in hunt.test_zoo_specs(5):
        if spec.family:
            out = spec.trigger()(x)
            assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1 and not torch.equal(out, x)
    with pytest.raises(ValueError, match="does not fit"):
        hunt.shaped_patch(x, size=4, row=26, col=0)
    with pytest.raises(ValueError, match="shape"):
        hunt.shape_mask("star", 3)


def test_cross_entropy_and_scores():
    y = np.array([1, 1, 0, 0])
    assert hunt.binary_cross_entropy(y, [0.5] * 4) == pytest.approx(math.log(2))
    assert hunt.binary_cross_entropy(y, [1, 1, 0, 0]) < 1e-9
    assert hunt.binary_cross_entropy(y, [0, 0, 1, 1]) == pytest.approx(-math.log(1e-12))  # clipped, finite
    s = hunt.score_probabilities(y, [0.9, 0.6, 0.4, 0.1], n_boot=200)
    assert s["auroc"] == 1.0 and s["auroc_ci"][1] == 1.0
    assert s["cross_entropy_ci"][0] <= s["cross_entropy"] <= s["cross_entropy_ci"][1]
    assert s["clean_flagged_at_90pct"] == 0 and s["flagged_at_90pct"] == 2
    flat = hunt.score_probabilities(y, [0.5] * 4, n_boot=50)
    assert flat["auroc"] == 0.5 and flat["clean_flagged_at_90pct"] == 2
    with pytest.raises(ValueError, match=r"probability in \[0, 1\]"):
        hunt.score_probabilities(y, [1.5, 0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="both"):
        hunt.score_probabilities([1, 1], [0.5, 0.5])
    fam = tool.family_scores(y, [0.9, 0.2, 0.4, 0.1], ["patch", "sig", None, None])
    assert fam == {"patch": {"n": 1, "auroc": 1.0}, "sig": {"n": 1, "auroc": 0.5}}


def _notebook(path, detector_source: str):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# a submission"),
        nbformat.v4.new_code_cell("%matplotlib inline\nimport course_utils as cu"),
        nbformat.v4.new_code_cell(detector_source),
        nbformat.v4.new_code_cell("raise RuntimeError('cells after the detector must not run')"),
    ])
    nbformat.write(nb, path)
    return path


def test_detector_cell_parses_not_greps(tmp_path):
    nb = nbformat.read(_notebook(tmp_path / "a.ipynb", "def my_detector(model, x):\n    return 0.5"), 4)
    assert tool.detector_cell(nb) == 2
    nb.cells[2].source = "# def my_detector(model, x) is below\nx = 1"
    assert tool.detector_cell(nb) is None
    nbformat.write(nb, tmp_path / "b.ipynb")
    assert tool.test_zoo_score(tmp_path / "b.ipynb", seed=1, n_models=2)["status"] == "no detector"


@pytest.fixture
def tiny_zoo(monkeypatch):
    """A 2-model test zoo trained for 1 epoch at width 8 (the real one is never trained in unit tests)."""
    monkeypatch.setattr(hunt, "EPOCHS", (1,))
    monkeypatch.setattr(hunt, "WIDTHS", (8,))


def test_test_zoo_score_runs_the_learners_detector(tmp_path, tiny_zoo):
    good = _notebook(tmp_path / "good.ipynb", "def my_detector(model, x_clean):\n"
                     "    return 0.25 + 0.5 * (cu.predict(model, x_clean[:20]) == 0).float().mean().item()")
    result = tool.test_zoo_score(good, seed=7, n_models=2)
    assert result["status"] == "ok", result["message"]
    assert result["n_models"] == 2 and 0 <= result["auroc"] <= 1 and result["cross_entropy"] > 0
    assert result["seconds_per_model"] > 0 and set(result["families"]) == {"patch"}
    stub = _notebook(tmp_path / "stub.ipynb", "def my_detector(model, x_clean):\n    raise NotImplementedError()")
    assert tool.test_zoo_score(stub, seed=7, n_models=2)["status"] == "not implemented"
    wrong = _notebook(tmp_path / "wrong.ipynb", "def my_detector(model, x_clean):\n    return 7.0")
    out = tool.test_zoo_score(wrong, seed=7, n_models=2)
    assert out["status"] == "invalid output" and "[0, 1]" in out["message"]


def test_report_table_and_families():
    row = {"zoo": "test seed 1 (held out)", "detector": "reference", "models": "all", "n_models": 4, "n_trojaned": 2,
           "auroc": 1.0, "auroc_ci": (0.9, 1.0), "cross_entropy": 0.3, "cross_entropy_ci": (0.1, 0.5),
           "clean_flagged_at_90pct": 0, "flagged_at_90pct": 2, "seconds_per_model": 1.2,
           "families": {"patch": {"n": 2, "auroc": 1.0}},
           "neural_cleanse": {"by_epochs": {3: {"clean": [1.0, 2.5], "trojaned": []}},
                              "clean_false_alarms_by_epochs": {3: 1}, "threshold": 2.0}}
    text = tool.report([row])
    assert "| test seed 1 (held out) | reference | all | 4 (2) | 1.000 [0.900, 1.000] | 0.300 [0.100, 0.500]" in text
    assert "patch 1.00 (n=2)" in text and "3 epochs: 1 of 2" in text


def test_a_trojaned_model_whose_backdoor_fails_is_retrained(monkeypatch):
    spec = hunt.ModelSpec("patch", {"size": 3, "row": 0, "col": 0}, target=1, mode="all-to-one", rate=0.01,
                          seed=5, epochs=3, width=8)
    trained = []
    monkeypatch.setattr(hunt, "load_spec_model", lambda data, s: trained.append(s) or s)
    # the backdoor takes only at the third try
    monkeypatch.setattr(hunt, "attack_success", lambda model, data, s: 0.9 if len(trained) == 3 else 0.1)
    model, final = hunt.load_working_model(None, spec)
    assert [s.rate for s in trained] == [0.01, 0.02, 0.03] and len({s.seed for s in trained}) == 3
    assert model is final and final == trained[-1]
    clean = hunt.ModelSpec(None, {}, 0, "all-to-one", 0.0, 7, 3, 8)
    trained.clear()
    assert hunt.load_working_model(None, clean)[1] == clean and trained == [clean]  # clean: never retried
