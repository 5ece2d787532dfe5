"""The `gpu` profile's code paths (ResNet-18, SGD + one-cycle, on-device flip-and-crop, 3-channel
triggers), run on the CPU with tiny CIFAR-shaped uint8 tensors: no CIFAR-10 and no GPU needed."""

import pytest
import torch

import course_utils as cu
from course_utils import train
from course_utils.data import CIFAR10_CLASSES


@pytest.fixture
def gpu_profile(monkeypatch):
    monkeypatch.setenv("BACKDOOR_COURSE_PROFILE", "gpu")
    return cu.get_profile()


@pytest.fixture(scope="module")
def cifar_tiny():
    """64 train / 32 test random uint8 images (3, 32, 32) with random labels: shapes, not accuracy."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (96, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (96,), generator=g)
    return cu.ImageData(x[:64], y[:64], x[64:], y[64:], name="cifar-tiny", source="random test tensors",
                        classes=CIFAR10_CLASSES)


def test_profile_builds_a_cifar_resnet(gpu_profile):
    assert (gpu_profile.name, gpu_profile.dataset, gpu_profile.model) == ("gpu", "cifar10", "resnet18")
    model = cu.make_model(seed=0).eval()
    x = torch.rand(2, 3, 32, 32)
    assert model(x).shape == (2, 10) and model.embed(x).shape == (2, 512)
    assert model.feature_maps(x)[0].shape == (2, 64, 32, 32)  # CIFAR stem: no stride, no max-pool


def test_flip_and_crop_is_a_seeded_flip_and_shift():
    x = torch.rand(8, 3, 32, 32)
    before = x.clone()
    a = train.flip_and_crop(x, torch.Generator().manual_seed(1))
    assert torch.equal(x, before), "the input must not change"
    b = train.flip_and_crop(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.dtype == x.dtype and torch.equal(a, b)
    flat = torch.full((2, 3, 32, 32), 0.25)
    assert torch.equal(train.flip_and_crop(flat, torch.Generator().manual_seed(2)), flat)  # reflect padding
    # every output image is one window of the padded (maybe flipped) input, chosen per image
    padded = {f: torch.nn.functional.pad(x.flip(3) if f else x, (4, 4, 4, 4), mode="reflect") for f in (0, 1)}
    choices = []
    for i in range(len(x)):
        found = [(f, dy, dx) for f in (0, 1) for dy in range(9) for dx in range(9)
                 if torch.equal(a[i], padded[f][i, :, dy:dy + 32, dx:dx + 32])]
        assert found, f"image {i} is not a flip-and-crop of its input"
        choices.append(found[0])
    assert len(set(choices)) > 1, "each image should get its own flip and shift"


def test_train_model_predict_and_cache(gpu_profile, cifar_tiny):
    model = cu.train_model(cifar_tiny, epochs=1, progress=False)
    assert isinstance(model, cu.CourseModel) and not model.training
    assert next(model.parameters()).device == cu.try_device()  # the gpu profile evaluates on the accelerator
    pred = cu.predict(model, cifar_tiny.x_test)
    assert pred.shape == (32,) and pred.dtype == torch.int64 and 0 <= pred.min() and pred.max() < 10
    assert 0.0 <= cu.clean_accuracy(model, cifar_tiny) <= 1.0
    again = cu.train_model(cifar_tiny, epochs=1, progress=False)  # from the cache
    assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), again.state_dict().values()))


def test_badnets_on_three_channels(gpu_profile, cifar_tiny):
    attack = cu.make_attack("badnets")
    poisoned = attack.poison(cifar_tiny.x_train, cifar_tiny.y_train, 0.1, seed=0, num_classes=10)
    assert poisoned.x.shape == (64, 3, 32, 32) and poisoned.x.dtype == torch.float32
    assert poisoned.poisoned.sum() == round(0.1 * 64) and (poisoned.y[poisoned.poisoned] == 0).all()
    patch = poisoned.x[poisoned.poisoned][:, :, -4:-1, -4:-1]  # 3x3, 1-pixel margin, bottom-right
    assert (patch == 1.0).all(), "the white square must cover all three channels"
    clean = ~poisoned.poisoned
    assert torch.equal(poisoned.x[clean], cu.as_float(cifar_tiny.x_train[clean]))
    model = cu.train_model(cifar_tiny, attack, 0.1, epochs=1, progress=False)
    assert 0.0 <= cu.attack_success_rate(model, cifar_tiny, attack) <= 1.0


def test_fit_with_a_small_batch_uses_sgd_and_augmentation(gpu_profile, cifar_tiny, monkeypatch):
    calls = []
    original = train.flip_and_crop
    monkeypatch.setattr(train, "flip_and_crop", lambda x, g: calls.append(x.shape) or original(x, g))
    model = cu.make_model(seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    cu.fit(model, cifar_tiny.x_train[:32], cifar_tiny.y_train[:32], epochs=1, batch_size=16, progress=False)
    assert calls == [(16, 3, 32, 32)] * 2, "the gpu profile augments every batch"
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not model.training


def test_mixed_precision_path_runs_on_the_cpu_too(gpu_profile, cifar_tiny, monkeypatch):
    """The CUDA-only bf16 autocast + channels_last branch of `fit`, forced on for the CPU here."""
    monkeypatch.setattr(train, "MIXED_PRECISION_DEVICES", ("cuda", "cpu"))
    model = cu.make_model(seed=0)
    cu.fit(model, cifar_tiny.x_train[:8], cifar_tiny.y_train[:8], epochs=1, batch_size=4, progress=False)
    params = list(model.parameters())
    assert all(p.dtype == torch.float32 for p in params), "autocast must leave the weights in float32"
    assert all(p.is_contiguous() for p in params), "fit hands back standard (not channels_last) weights"
    assert torch.isfinite(cu.predict_logits(model, cifar_tiny.x_test[:4])).all()
