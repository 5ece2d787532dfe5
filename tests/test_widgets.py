"""The explorers: a static view headless (no widget is created), live controls otherwise."""

import pytest
import torch

from course_utils import make_model, widgets


@pytest.fixture
def shown(monkeypatch):
    """Everything the explorers pass to IPython's display(), in order."""
    import IPython.display

    seen = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, *a, **k: seen.append(obj))
    return seen


def _calls():
    model = make_model("small-cnn", seed=0).eval()
    images = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 3])
    clean, triggered = 1.0 + torch.arange(100) / 100, torch.tensor([0.1, 0.2, 1.5, 0.3])
    return [lambda: widgets.trigger_explorer(model, images, labels),
            lambda: widgets.blend_explorer(model, images, labels),
            lambda: widgets.strip_explorer(clean, triggered)]


@pytest.mark.parametrize("value, expected", [("1", True), ("yes", True), ("0", False), ("", False), (None, False)])
def test_headless_reads_the_environment(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(widgets.HEADLESS_ENV, raising=False)
    else:
        monkeypatch.setenv(widgets.HEADLESS_ENV, value)
    assert widgets.headless() is expected


def test_headless_explorers_draw_one_static_figure_and_no_widget(monkeypatch, shown, capsys):
    import ipywidgets
    import matplotlib.pyplot as plt

    monkeypatch.setenv(widgets.HEADLESS_ENV, "1")
    plt.close("all")  # figures other tests left open
    # Creating any widget headless would send a comm message nobody answers: make it fail loudly.
    monkeypatch.setattr(ipywidgets.Widget, "__init__", lambda *a, **k: pytest.fail("a widget was created headless"))
    for call in _calls():
        assert call() is None  # nothing for the cell to print after the view (issue: the function's repr)
    out = capsys.readouterr().out
    assert out.count("Static view (headless run)") == 3
    assert "classified as 0" in out and "SSIM" in out and "threshold" in out
    assert [type(obj).__name__ for obj in shown] == ["Figure"] * 3
    assert not plt.get_fignums()  # every figure was closed after it was shown


def test_live_explorers_display_an_interactive_widget(monkeypatch, shown):
    import ipywidgets

    monkeypatch.setenv(widgets.HEADLESS_ENV, "0")
    for call in _calls():
        assert call() is None
    live = [obj for obj in shown if isinstance(obj, ipywidgets.interactive)]
    assert len(live) == 3
    names = [sorted(w.description for w in box.kwargs_widgets) for box in live]
    assert names == [["position", "size"], ["alpha"], ["FRR"]]
