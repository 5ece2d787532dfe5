import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from course_utils import viz  # noqa: E402


def test_show_images_grid_and_titles():
    fig = viz.show_images(torch.zeros(5, 1, 8, 8, dtype=torch.uint8), [str(i) for i in range(5)], ncols=3)
    axes = fig.axes
    assert len(axes) == 6 and axes[4].get_title() == "4" and not axes[5].images


def test_show_images_rgb():
    fig = viz.show_images(torch.rand(2, 3, 8, 8))
    assert fig.axes[0].images[0].get_array().shape == (8, 8, 3)


def test_plot_curves_with_spread_and_log_axis():
    ax = viz.plot_curves([0.5, 1, 10], {"ASR": [0.5, 0.9, 1.0]}, "rate (%)", "ASR", spreads={"ASR": [0.1, 0.1, 0]},
                         logx=True)
    assert ax.get_xscale() == "log" and len(ax.lines) == 1
    assert list(ax.lines[0].get_ydata()) == [50, 90, 100]


def test_trigger_preview_headless():
    from course_utils import make_model, widgets

    model = make_model("small-cnn", seed=0).eval()
    fig, preds = widgets.trigger_preview(model, torch.zeros(3, 1, 28, 28, dtype=torch.uint8), size=2, position="center")
    assert preds.shape == (3,) and len(fig.axes) == 3


def test_blend_preview_headless_and_its_extremes():
    from course_utils import make_model, widgets

    model = make_model("small-cnn", seed=0).eval()
    images = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 3])
    none = widgets.blend_preview(model, images, labels, alpha=0.0, show=2)
    assert none["ssim"] == pytest.approx(1.0) and len(none["figure"].axes) == 2
    strong = widgets.blend_preview(model, images, labels, alpha=0.5)
    assert strong["ssim"] < 1 and 0 <= strong["hit_rate"] <= 1 and strong["predictions"].shape == (4,)
    with pytest.raises(ValueError, match="alpha"):
        widgets.blend_preview(model, images, labels, alpha=1.5)


def test_strip_tradeoff_counts_and_bad_input():
    from course_utils import widgets

    clean = 1.0 + torch.arange(100) / 100  # 1.00, 1.01, ... 1.99: the 10 % quantile is 1.099
    triggered = torch.tensor([0.1, 0.2, 1.5, 0.3])
    out = widgets.strip_tradeoff(clean, triggered, frr=0.10)
    assert out["threshold"] == pytest.approx(1.099, abs=1e-6)
    assert out["caught"] == pytest.approx(0.75) and out["rejected"] == pytest.approx(0.10)
    with pytest.raises(ValueError, match="frr"):
        widgets.strip_tradeoff(clean, triggered, frr=0.0)
    with pytest.raises(ValueError, match="1-D"):
        widgets.strip_tradeoff(clean.view(1, -1), triggered)


def test_hit_rate_ignores_the_target_class():
    from course_utils import widgets

    labels = torch.tensor([0, 1, 2, 3, 0])
    preds = torch.tensor([0, 0, 2, 0, 1])  # of labels 1, 2, 3: two sent to 0
    assert widgets.hit_rate(preds, labels, target=0) == pytest.approx(2 / 3)
