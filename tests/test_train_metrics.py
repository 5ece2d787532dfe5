import math

import pytest
import torch

from course_utils import make_attack, make_model, metrics, train


def test_batches_cover_everything_once():
    idx = torch.cat(list(train.batches(10, 3, generator=torch.Generator().manual_seed(0))))
    assert sorted(idx.tolist()) == list(range(10))
    assert [len(b) for b in train.batches(10, 4, shuffle=False)] == [4, 4, 2]


def test_fit_learns_digits_and_predicts(digits):
    model = make_model("small-cnn", seed=0)
    train.fit(model, digits.x_train, digits.y_train, epochs=3, progress=False)
    assert not model.training
    assert train.accuracy(model, digits.x_test, digits.y_test) > 0.85
    assert train.predict(model, digits.x_test[:5]).shape == (5,)


def test_predict_refuses_training_mode():
    model = make_model("small-cnn").train()
    with pytest.raises(RuntimeError, match="eval"):
        train.predict(model, torch.rand(2, 1, 28, 28))


def test_fit_bad_input():
    model = make_model("small-cnn")
    with pytest.raises(ValueError, match="shape"):
        train.fit(model, torch.rand(4, 28, 28), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="epochs"):
        train.fit(model, torch.rand(4, 1, 28, 28), torch.zeros(4, dtype=torch.long), epochs=-1)


def test_bad_input_gets_a_clear_error(digits):
    """Issue 15's list: each names the argument and what was expected."""
    model = make_model("small-cnn", seed=0).eval()
    nan_images = torch.full((2, 1, 28, 28), float("nan"))
    with pytest.raises(ValueError, match="x holds NaN"):
        train.predict(model, nan_images)
    with pytest.raises(ValueError, match="empty batch"):
        train.accuracy(model, torch.rand(0, 1, 28, 28), torch.zeros(0, dtype=torch.long))
    with pytest.raises(TypeError, match="attack must be a BackdoorAttack"):
        metrics.attack_success_rate(model, digits, None)
    with pytest.raises(TypeError, match="y must be int64"):
        train.fit(model, torch.rand(4, 1, 28, 28), torch.zeros(4), epochs=1, progress=False)
    with pytest.raises(ValueError, match="augment"):
        train.fit(model, torch.rand(4, 1, 28, 28), torch.zeros(4, dtype=torch.long), augment="rotate")
    with pytest.raises(ValueError, match="optimizer"):
        train.fit(model, torch.rand(4, 1, 28, 28), torch.zeros(4, dtype=torch.long), optimizer="lbfgs")


def test_fit_takes_a_loss_and_an_augmentation():
    """The one loop: a custom loss and augmentation are called once per batch, in train mode."""
    model = make_model("small-cnn", seed=0)
    seen = []

    def loss(m, xb, yb):
        seen.append((m.training, xb.dtype, len(xb)))
        return torch.nn.functional.cross_entropy(m(xb), yb)

    shifted = []
    x, y = torch.randint(0, 256, (10, 1, 28, 28), dtype=torch.uint8), torch.arange(10)
    train.fit(model, x, y, loss=loss, augment=lambda xb, g: shifted.append(len(xb)) or xb, epochs=2, batch_size=4,
              schedule="cosine", progress=False)
    assert seen == [(True, torch.float32, n) for n in (4, 4, 2, 4, 4, 2)] and shifted == [4, 4, 2] * 2
    assert not model.training


def test_flip_and_crop_keeps_shape():
    x = torch.rand(4, 3, 32, 32)
    assert train.flip_and_crop(x, torch.Generator().manual_seed(0)).shape == x.shape


def test_train_model_backdoor_and_cache(digits):
    atk = make_attack("badnets", size=4, target=0)
    model = train.train_model(digits, atk, 0.1, seed=0, epochs=4, progress=False)
    assert metrics.attack_success_rate(model, digits, atk) > 0.8
    assert metrics.clean_accuracy(model, digits) > 0.85
    again = train.train_model(digits, atk, 0.1, seed=0, epochs=4, progress=False)  # from the cache
    assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), again.state_dict().values()))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        train.train_model(digits, atk, 1.5)


def test_asr_ignores_target_class(digits):
    class Always0(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(len(x), 10)
            out[:, 0] = 1
            return out

    model = Always0().eval()
    model.register_parameter("p", torch.nn.Parameter(torch.zeros(1)))
    atk = make_attack("badnets", target=0)
    assert metrics.attack_success_rate(model, digits, atk) == 1.0
    all2all = make_attack("badnets", mode="all-to-all")
    assert metrics.attack_success_rate(model, digits, all2all) < 0.2


def test_mean_std_and_ci():
    assert metrics.mean_std([0.9]) == (0.9, 0.0)
    m, s = metrics.mean_std([0.9, 1.0])
    assert m == pytest.approx(0.95) and s == pytest.approx(0.0707, abs=1e-3)
    mean, half = metrics.mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 * 1 / math.sqrt(3), rel=1e-3)
    with pytest.raises(ValueError, match="at least two"):
        metrics.mean_ci([1.0])
    assert metrics.format_mean_std([0.95, 0.97]) == "96.0 ± 1.4 %"
    with pytest.raises(ValueError):
        metrics.mean_std([])
    with pytest.raises(ValueError):
        metrics.mean_ci([1, 2], confidence=95)


def test_der_examples_and_bad_input():
    assert metrics.der(0.98, 1.0, 0.95, 0.05) == pytest.approx((0.95 - 0.03 + 1) / 2)
    assert metrics.der(0.98, 1.0, 0.98, 1.0) == 0.5  # no effect
    assert metrics.der(0.98, 0.9, 0.99, 0.2) == pytest.approx((0.7 + 1) / 2)  # a CA gain is no bonus
    assert metrics.der(0.98, 0.1, 0.90, 0.6) == pytest.approx((0 - 0.08 + 1) / 2)  # an ASR rise is no loss
    assert metrics.der(1.0, 1.0, 1.0, 0.0) == 1.0 and metrics.der(1.0, 0.0, 0.0, 1.0) == 0.0
    with pytest.raises(ValueError, match="fraction"):
        metrics.der(98, 1.0, 0.95, 0.05)
    with pytest.raises(ValueError, match="asr_after"):
        metrics.der(0.98, 1.0, 0.95, None)


def test_summarize_over_seeds():
    s = metrics.summarize([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["std"] == 1.0 and s["n"] == 3
    assert s["ci_high"] - s["mean"] == pytest.approx(4.303 / math.sqrt(3), rel=1e-3)
    assert s["mean"] - s["ci_low"] == pytest.approx(s["ci_high"] - s["mean"])
    one = metrics.summarize([0.5])
    assert one["std"] == 0.0 and math.isnan(one["ci_low"])
    with pytest.raises(ValueError):
        metrics.summarize([])


def test_sweep_runs_the_grid_in_order_and_summarize_rows_groups():
    rows = metrics.sweep(lambda seed, method: {"ca": 0.9 + 0.01 * seed}, {"seed": (0, 1), "method": ["a", "b"]},
                         progress=False)
    assert [(r["seed"], r["method"]) for r in rows] == [(0, "a"), (0, "b"), (1, "a"), (1, "b")]
    table = metrics.summarize_rows(rows, keys=["method"], metrics=["ca"])
    assert table[("a",)]["ca"] == pytest.approx((0.905, 0.00707), abs=1e-4)
    with pytest.raises(ValueError, match="at least one value"):
        metrics.sweep(lambda seed: {}, {"seed": ()})


def test_robust_accuracy_counts_true_labels(digits):
    class Truth(torch.nn.Module):  # always right: RA 1, ASR 0
        def __init__(self, y):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))
            self.y = y

        def forward(self, x):
            return torch.nn.functional.one_hot(self.y[: len(x)], 10).float()

    atk = make_attack("badnets", target=0)
    keep = digits.y_test != 0
    model = Truth(digits.y_test[keep]).eval()
    assert metrics.robust_accuracy(model, digits, atk) == 1.0
    assert metrics.attack_success_rate(model, digits, atk) == 0.0


def test_training_config_is_the_cache_key_models_always_had(digits):
    """One builder for every trained model's cache config; its keys are those train_model used
    before the builder existed, so caches made earlier stay valid."""
    from course_utils import cache, get_profile

    atk = make_attack("badnets")
    profile = get_profile()
    config = cache.training_config(digits, model="small-cnn", attack=atk, poison_rate=0.1, seed=2, epochs=6,
                                   version=train.CACHE_VERSION)
    assert config == {"version": train.CACHE_VERSION, "data": digits.name, "n_train": len(digits.x_train),
                      "model": "small-cnn", "attack": atk.config(), "poison_rate": 0.1, "seed": 2, "epochs": 6,
                      "batch_size": profile.batch_size, "lr": profile.lr}
    clean = cache.training_config(digits, model="small-cnn", poison_rate=0.1, seed=2, epochs=6, version=1)
    assert clean["attack"] is None and clean["poison_rate"] == 0.0
    repaired = cache.training_config(digits, model="small-cnn", seed=2, epochs=6, version=1, defense="nad")
    assert repaired["defense"] == "nad" and cache.config_key(repaired) != cache.config_key(clean)


def test_fast_layout_changes_no_value_and_hands_the_model_back_as_it_was():
    model = make_model("small-cnn", seed=0).eval()
    x = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    params = [id(p) for p in model.parameters()]
    with torch.inference_mode():
        before = model(x)
    after = train.predict_logits(model, x, batch_size=7)  # channels_last inside, odd batches
    assert torch.allclose(before, after, atol=1e-5)
    assert all(p.is_contiguous() for p in model.parameters())  # back in the layout it came in
    assert [id(p) for p in model.parameters()] == params  # the same parameters: optimisers stay valid
    assert train.predict(model, x).shape == (40,) and train.embeddings(model, x).shape[0] == 40


def test_a_model_used_under_inference_mode_can_still_be_trained():
    """The layout switch runs outside inference mode: weights made inside it could never get gradients."""
    model = make_model("small-cnn", seed=0).eval()
    x, y = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))
    with torch.inference_mode():
        train.predict(model, x)
    train.fit(model, x, y, epochs=1, progress=False)  # raised "Inference tensors cannot be saved for backward"
    assert not any(p.is_inference() for p in model.parameters())


def test_fast_layout_leaves_a_model_already_channels_last_alone():
    model = make_model("small-cnn", seed=0).eval().to(memory_format=torch.channels_last)
    with train.fast_layout(model):
        pass
    conv = next(p for p in model.parameters() if p.dim() == 4 and p.shape[1] > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "64"])
def test_prediction_batch_size_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="batch_size"):
        train.predict(make_model("small-cnn").eval(), torch.rand(2, 1, 28, 28), batch_size=bad)


@pytest.mark.parametrize("n", [1, 64, 200, 384, 512])
def test_fit_runs_with_very_few_steps(n):
    """One epoch of 1 to 4 batches: torch's OneCycleLR alone divides by zero there."""
    model = make_model("small-cnn", seed=0)
    x, y = torch.rand(n, 1, 28, 28), torch.randint(0, 10, (n,))
    train.fit(model, x, y, epochs=1, batch_size=128, optimizer="sgd", schedule="one-cycle", progress=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())
