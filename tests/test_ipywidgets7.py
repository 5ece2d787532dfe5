"""The explorers and the progress bars work with ipywidgets 7 (Colab's preinstalled major) as well as 8.

The test installs ipywidgets 7 into a temporary folder from the package registry and builds each
explorer's live controls in a subprocess that imports it first. Without access to the registry it is
skipped, saying so.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import ipywidgets, torch
assert ipywidgets.__version__.startswith("7."), ipywidgets.__version__
import course_utils as cu
from course_utils import widgets
shown = []
widgets_display = lambda obj: shown.append(obj)
import IPython.display
IPython.display.display = widgets_display
torch.manual_seed(0)
model = cu.make_model(seed=0).eval()
x = (torch.rand(4, 1, 28, 28) * 255).to(torch.uint8)
y = torch.tensor([1, 2, 3, 4])
widgets.trigger_explorer(model, x, y, target=0)
widgets.blend_explorer(model, x, y, target=0)
widgets.strip_explorer(torch.rand(50), torch.rand(50) * 0.2)
kinds = [type(w).__name__ for w in shown]
assert kinds.count("interactive") == 3, kinds
print("ipywidgets", ipywidgets.__version__, "explorers:", kinds)
# the progress bars: tqdm.auto picks tqdm.notebook's widget bar in a notebook; it must build on 7.x too
import tqdm.notebook
tqdm.notebook.display = widgets_display
bar = tqdm.notebook.tqdm(range(3), desc="training")
for _ in bar:
    pass
bar.close()
print("progress bar:", type(bar.container).__name__, [type(c).__name__ for c in bar.container.children])
"""


@pytest.fixture(scope="module")
def ipywidgets7(tmp_path_factory):
    target = tmp_path_factory.mktemp("ipywidgets7")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
           "ipywidgets>=7.6,<8", "ipython_genutils"]
    try:
        result = subprocess.run(pip, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.skip("the package registry did not answer within 180 s: ipywidgets 7 could not be installed")
    if result.returncode != 0:
        pytest.skip(f"ipywidgets 7 could not be installed from the package registry: {result.stderr[-300:]}")
    return target


def test_explorers_build_live_controls_with_ipywidgets_7(ipywidgets7):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ipywidgets7), str(ROOT)]),
           "BACKDOOR_COURSE_HEADLESS": "0", "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "explorers: ['interactive', 'interactive', 'interactive']" in result.stdout
    assert "progress bar: TqdmHBox ['HTML', 'FloatProgress', 'HTML']" in result.stdout, result.stdout
