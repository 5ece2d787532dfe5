import math

import pytest
import torch

from course_utils import evaluation, make_attack, make_model, metrics


def row(attack, defense, seed, ca, asr, ra=0.5, seconds=1.0):
    return {"attack": attack, "defense": defense, "seed": seed, "ca": ca, "asr": asr, "ra": ra, "seconds": seconds}


def test_summarize_matrix_der_and_spread():
    rows = [row("badnets", "none", s, 0.98, 1.0) for s in (0, 1, 2)]
    rows += [row("badnets", "nad", s, 0.96, a) for s, a in zip((0, 1, 2), (0.0, 0.1, 0.2))]
    summary = {r["defense"]: r for r in evaluation.summarize_matrix(rows)}
    assert summary["none"]["der_mean"] == 0.5 and summary["none"]["asr_std"] == 0
    nad = summary["nad"]
    assert nad["asr_mean"] == pytest.approx(0.1) and nad["asr_std"] == pytest.approx(0.1)
    assert nad["der_mean"] == pytest.approx((0.9 - 0.02 + 1) / 2)
    assert nad["asr_ci"] == pytest.approx(4.303 * 0.1 / math.sqrt(3), rel=1e-3)
    alone = evaluation.summarize_matrix([row("wanet", "kd", 0, 0.9, 0.1)])[0]
    assert math.isnan(alone["der_mean"])  # no "none" row to compare with
    with pytest.raises(ValueError, match="no rows"):
        evaluation.summarize_matrix([])


def test_pivot_and_plot():
    rows = [row(a, d, 0, 0.9, 0.5) for a in ("badnets", "blended") for d in ("none", "kd")]
    summary = evaluation.summarize_matrix(rows[:-1])  # one cell missing
    attacks, defenses, table = evaluation.pivot(summary, "asr_mean")
    assert attacks == ["badnets", "blended"] and defenses == ["none", "kd"]
    assert table.shape == (2, 2) and math.isnan(table[1, 1]) and table[0, 0] == 0.5
    with pytest.raises(ValueError, match="Unknown value"):
        evaluation.pivot(summary, "accuracy")
    ax = evaluation.plot_matrix(summary, "ca")
    assert ax.get_title().startswith("CA")


def test_evaluate_with_and_without_a_filter(digits):
    class Always(torch.nn.Module):
        def __init__(self, c):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))
            self.c = c

        def forward(self, x):
            return torch.nn.functional.one_hot(torch.full((len(x),), self.c), 10).float()

    atk = make_attack("badnets", target=0)
    scores = metrics.evaluate(Always(0).eval(), digits, atk)
    assert scores.asr == 1.0 and scores.ra == 0.0 and scores.pgd_accuracy is None
    assert scores.ca == pytest.approx((digits.y_test == 0).float().mean().item())
    reject_all = metrics.evaluate(Always(0).eval(), digits, atk, accept=lambda x: torch.zeros(len(x), dtype=torch.bool))
    assert reject_all == metrics.Scores(ca=0.0, asr=0.0, ra=0.0)
    first50 = metrics.evaluate(Always(0).eval(), digits, atk, n_test=50)
    assert first50.ca == pytest.approx((digits.y_test[:50] == 0).float().mean().item())
    with pytest.raises(ValueError, match="n_test"):
        metrics.evaluate(Always(0).eval(), digits, atk, n_test=0)
    with pytest.raises(TypeError, match="BackdoorAttack"):
        metrics.evaluate(Always(0).eval(), digits, "badnets")


def test_defenses_are_registered_by_name():
    """One contract each: data filters (scores, remove), input filters, repairs; no string switches."""
    from course_utils import repair

    assert evaluation.defense_names() == ["none", *evaluation.FILTERS, *evaluation.INPUT_FILTERS, *repair.REPAIRS]
    scores = torch.tensor([0.1, 0.9, 0.7, 0.2])
    y = torch.tensor([0, 0, 1, 1])
    ac = evaluation.FILTERS["ac-filter"].remove(scores, y, 0.05)
    assert ac.tolist() == [False, True, True, False]  # the size rule: score above 0.65
    ss = evaluation.FILTERS["ss-filter"].remove(scores, y, 0.25)  # 1.5 x 25 % of each class of 2: 1 each
    assert ss.tolist() == [False, True, True, False]


def test_cached_model_remembers_seconds():
    calls = []

    def build():
        return make_model("small-cnn", seed=0)

    def train(model):
        calls.append(1)

    config = {"test": "cached_model"}
    _, seconds, cached = evaluation.cached_model(config, build, train)
    assert not cached and seconds >= 0
    _, again, cached = evaluation.cached_model(config, build, train)
    assert cached and again == seconds and len(calls) == 1


def test_small_matrix_runs_and_caches(digits):
    defenses = ["none", "fine-tuning", "strip", "ss-filter"]
    kwargs = {"fine-tuning": {"epochs": 2}}
    rows = evaluation.attack_defense_matrix(digits, ["badnets"], defenses, seeds=(0,), epochs=1, clean_fraction=0.05,
                                            defense_kwargs=kwargs, progress=False)
    assert [r["defense"] for r in rows] == defenses
    assert all(0 <= r[m] <= 1 for r in rows for m in ("ca", "asr", "ra"))
    assert {"removed", "precision", "recall"} <= set(rows[3])
    again = evaluation.attack_defense_matrix(digits, ["badnets"], defenses, seeds=(0,), epochs=1,
                                             defense_kwargs=kwargs, progress=False)
    for a, b in zip(rows, again):
        assert a["ca"] == b["ca"] and a["asr"] == b["asr"]
        if a["defense"] in ("fine-tuning", "ss-filter", "strip"):
            assert b["cached"] and b["seconds"] == a["seconds"]
    assert rows[2]["cached"] is False  # STRIP's scores were computed the first time, loaded the second
    other = evaluation.attack_defense_matrix(digits, ["badnets"], ["strip"], seeds=(0,), epochs=1, progress=False,
                                             defense_kwargs={"strip": {"n": 4}}, clean_fraction=0.05)
    assert other[0]["cached"] is False  # other settings of the filter: scored again
    summary = evaluation.summarize_matrix(rows)
    assert len(summary) == len(defenses)


def test_adversarially_trained_model_is_cached_with_its_cost(digits):
    from course_utils import ImageData

    small = ImageData(digits.x_train[:256], digits.y_train[:256], digits.x_test[:64], digits.y_test[:64],
                      name="mnist-256", source="test slice", classes=digits.classes)
    attack = make_attack("badnets")
    model, seconds, cached = evaluation.adversarially_trained_model(small, attack, 0.1, 0, eps=0.1, steps=1, epochs=1,
                                                                    progress=False)
    assert not cached and seconds > 0 and not model.training
    again, seconds_again, cached_again = evaluation.adversarially_trained_model(small, attack, 0.1, 0, eps=0.1, steps=1,
                                                                                epochs=1, progress=False)
    assert cached_again and seconds_again == seconds
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    _, _, other = evaluation.adversarially_trained_model(small, attack, 0.1, 0, eps=0.2, steps=1, epochs=1,
                                                         progress=False)
    assert not other  # another radius is another model


def test_matrix_bad_input(digits):
    with pytest.raises(ValueError, match="Unknown defense"):
        evaluation.attack_defense_matrix(digits, ["badnets"], ["none", "prayer"])
    with pytest.raises(ValueError, match="Unknown attack"):
        evaluation.attack_defense_matrix(digits, ["nope"], ["none"])
    with pytest.raises(ValueError, match="at least one"):
        evaluation.attack_defense_matrix(digits, [], ["none"])
    with pytest.raises(ValueError, match="data filter"):
        evaluation.filtered_model(digits, make_attack("badnets"), 0.1, 0, "pca-filter", None, 1)
    with pytest.raises(ValueError, match="repair defense"):
        evaluation.repaired_model(digits, make_attack("badnets"), 0.1, 0, "magic", None, 1)


def test_inference_cost_ratios():
    x = torch.rand(64, 1, 28, 28)
    model = make_model("small-cnn", seed=0).eval()
    fast = evaluation.model_predictor(model)

    def slow(images):
        for _ in range(4):
            fast(images)

    rows = evaluation.inference_cost({"none": fast, "4x": slow}, x, batch_size=32, repeats=3)
    assert [r["defense"] for r in rows] == ["none", "4x"]
    assert rows[0]["latency_ratio"] == 1.0 and rows[1]["latency_ratio"] > 1.5
    assert rows[1]["throughput"] < rows[0]["throughput"]
    with pytest.raises(ValueError, match="baseline"):
        evaluation.inference_cost({"none": fast}, x, baseline="other")
    with pytest.raises(ValueError, match="at least one"):
        evaluation.inference_cost({}, x)
