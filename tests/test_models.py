import pytest
import torch

from course_utils import models


def test_small_cnn_interface():
    m = models.make_model("small-cnn", seed=0).eval()
    x = torch.rand(2, 1, 28, 28)
    assert m(x).shape == (2, 10)
    maps = m.feature_maps(x)
    assert len(maps) == 3 and maps[-1].shape[1] == m.channel_mask.numel()
    assert m.embed(x).shape == (2, 128)


def test_channel_mask_prunes():
    m = models.make_model("small-cnn", seed=0).eval()
    x = torch.rand(2, 1, 28, 28)
    m.channel_mask.zero_()
    assert (m.feature_maps(x)[-1] == 0).all()


def test_seeded_init_is_reproducible():
    a, b = models.make_model("small-cnn", seed=1), models.make_model("small-cnn", seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_resnet18_on_cifar_shaped_tensors():
    m = models.make_model("resnet18", in_shape=(3, 32, 32), seed=0).eval()
    x = torch.rand(2, 3, 32, 32)
    assert m(x).shape == (2, 10) and m.embed(x).shape == (2, 512)
    assert len(m.feature_maps(x)) == 5


def test_bad_inputs_get_clear_errors():
    m = models.make_model("small-cnn").eval()
    with pytest.raises(ValueError, match="unsqueeze"):
        m(torch.rand(1, 28, 28))
    with pytest.raises(TypeError, match="as_float"):
        m(torch.zeros(1, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="choose one of"):
        models.make_model("vgg")


def test_embeddings_in_batches():
    from course_utils import embeddings

    m = models.make_model("small-cnn", seed=0).eval()
    x = torch.rand(5, 1, 28, 28)
    assert torch.allclose(embeddings(m, x, batch_size=2), m.embed(x), atol=1e-5)
    with pytest.raises(RuntimeError, match="eval"):
        embeddings(m.train(), x)
