"""The course's data- and input-level detectors beside IBM ART's, on the same models and data.

For each attack (BadNets, blended) at 5 % poison and each seed, the cached backdoored model of
`cu.train_model` and the training set it saw are given to
- Activation Clustering: `detect.activation_clustering_remove` (the course's rule and the paper's
  relative-size rule) and ART's `ActivationDefence` (its defaults: PCA to 10 dims, 2-means,
  "smaller" cluster analysis, activations of the last layer);
- Spectral Signatures: `detect.spectral_signatures_remove` (course and paper rule) and ART's
  `SpectralSignatureDefense` with expected_pp_poison = the true poison rate (a generous epsilon);
- STRIP on test inputs (clean and triggered, the second half of each; the first half of the clean
  ones calibrates the course's threshold at 5 % FRR, n = 8), and ART's `STRIP` (its defaults: 20
  overlays, 1 % false-acceptance rate fitted on the defender's 400 clean images). ART's STRIP takes
  the entropy of the model's outputs and fails with "non-finite values" on logits, so it is given
  the model followed by a softmax (`Probabilities`).

Each row: method, implementation, attack, seed, removed, precision, recall, AUROC (None where
the implementation gives no score for every sample) and seconds. `python -m course_tools.art_compare`
prints the table and writes results/art-compare-cpu.{json,md}. Needs adversarial-robustness-toolbox
(requirements-dev.txt).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import course_utils as cu
from course_utils import detect

ATTACKS = ("badnets", "blended")


class Probabilities(nn.Module):
    """The model followed by a softmax: what ART's STRIP expects from `predict` (it takes entropies of it)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).softmax(1)


def art_classifier(model: nn.Module, input_shape, num_classes: int):
    """An ART PyTorchClassifier around a course model (inputs float in [0, 1])."""
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(input_shape),
                             nb_classes=num_classes, clip_values=(0.0, 1.0), device_type="cpu")


def _row(method, implementation, attack, seed, removed, truth, seconds, scores=None) -> dict:
    precision, recall = detect.precision_recall(removed, truth)
    auroc = None if scores is None else detect.roc(scores, truth)[2]
    return {"method": method, "implementation": implementation, "attack": attack, "seed": seed,
            "removed": int(removed.sum()), "precision": precision, "recall": recall, "auroc": auroc,
            "seconds": seconds}


def _timed(fn, *args, **kwargs):
    """(fn(*args, **kwargs), seconds it took)."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def data_level_rows(model, pset, attack: str, seed: int, rate: float, num_classes: int) -> list[dict]:
    """AC and SS: the course's two rules each, and ART's defence, on one poisoned training set."""
    from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense

    truth, rows = pset.poisoned, []
    feats, t_feats = _timed(lambda: detect.layer_features(model, pset.x))
    for rule in ("course", "paper"):
        removed, t = _timed(detect.activation_clustering_remove, model, pset.x, pset.y, rule=rule, features=feats)
        scores = detect.activation_clustering_scores(model, pset.x, pset.y, features=feats,
                                                     rule="silhouette" if rule == "course" else "size")
        rows.append(_row("activation clustering", f"course, {rule} rule", attack, seed, removed, truth, t + t_feats, scores))
        removed, t = _timed(detect.spectral_signatures_remove, model, pset.x, pset.y, rule=rule, epsilon=rate,
                              features=feats)
        scores = detect.spectral_signature_scores(model, pset.x, pset.y, features=feats,
                                                  normalize="mad" if rule == "course" else None)
        rows.append(_row("spectral signatures", f"course, {rule} rule", attack, seed, removed, truth, t + t_feats, scores))
    x = cu.as_float(pset.x).numpy()
    onehot = np.eye(num_classes, dtype=np.float32)[pset.y.numpy()]
    classifier = art_classifier(model, pset.x.shape[1:], num_classes)
    for method, make in [("activation clustering", lambda: ActivationDefence(classifier, x, onehot)),
                         ("spectral signatures", lambda: SpectralSignatureDefense(
                             classifier, x, onehot, expected_pp_poison=rate, batch_size=256))]:
        (_, is_clean), t = _timed(lambda m=make: m().detect_poison())
        removed = torch.from_numpy(np.asarray(is_clean) == 0)
        rows.append(_row(method, "ART 1.20", attack, seed, removed, truth, t))
    return rows


def strip_rows(model, attack_obj, attack: str, seed: int, x_inputs, x_defender) -> list[dict]:
    """STRIP, course (n = 8, 5 % FRR, one-tailed as the paper) and ART (defaults), on the same test inputs."""
    from art.defences.transformer.poisoning import STRIP

    half = len(x_inputs) // 2
    x_trig = attack_obj.apply(x_inputs)
    truth = torch.cat([torch.zeros(len(x_inputs) - half, dtype=torch.bool), torch.ones(len(x_inputs) - half, dtype=torch.bool)])

    def course():
        h_c = detect.strip_entropy(model, x_inputs, x_defender, seed=1)
        h_t = detect.strip_entropy(model, x_trig, x_defender, seed=2)
        thresholds = detect.strip_thresholds(h_c[:half], 0.05)
        h = torch.cat([h_c[half:], h_t[half:]])
        return detect.strip_reject(h, thresholds), -h

    (removed, scores), t = _timed(course)
    rows = [_row("STRIP", "course, paper rule", attack, seed, removed, truth, t, scores)]

    def art():
        np.random.seed(seed)  # ART draws its overlays with numpy's global generator
        defended = STRIP(art_classifier(Probabilities(model).eval(), x_inputs.shape[1:], 10))()
        defended.mitigate(cu.as_float(x_defender).numpy())
        x_test = torch.cat([cu.as_float(x_inputs[half:]), x_trig[half:]]).numpy()
        return torch.from_numpy(defended.predict(x_test).sum(1) == 0)  # an abstention is an all-zero row

    removed, t = _timed(art)
    rows.append(_row("STRIP", "ART 1.20", attack, seed, removed, truth, t))
    return rows


def compare(seeds=(0, 1, 2), attacks=ATTACKS, rate: float = 0.05, data=None, progress: bool = False) -> list[dict]:
    """All rows for every attack and seed (models from the course's cache, trained if missing)."""
    data = data or cu.load_data()
    x_defender = data.x_test[:400]
    x_inputs = data.x_test[400:][data.y_test[400:] != 0]
    rows = []
    for attack in attacks:
        attack_obj = cu.make_attack(attack)
        for seed in seeds:
            model = cu.train_model(data, attack_obj, rate, seed=seed, progress=progress)
            pset = attack_obj.poison(data.x_train, data.y_train, rate, seed=seed)
            rows += data_level_rows(model, pset, attack, seed, rate, data.num_classes)
            rows += strip_rows(model, attack_obj, attack, seed, x_inputs, x_defender)
    return rows


def _pm(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1) if len(values) > 1 else 0.0:.2f}"


def markdown_table(rows: list[dict]) -> str:
    """One line per (attack, method, implementation): mean ± std over seeds of each figure."""
    keys = list(dict.fromkeys((r["attack"], r["method"], r["implementation"]) for r in rows))
    lines = ["| attack | method | implementation | seeds | removed | precision | recall | AUROC | seconds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for attack, method, impl in keys:
        group = [r for r in rows if (r["attack"], r["method"], r["implementation"]) == (attack, method, impl)]
        lines.append(f"| {attack} | {method} | {impl} | {len(group)} | {np.mean([r['removed'] for r in group]):.0f} | "
                     f"{_pm([r['precision'] for r in group])} | {_pm([r['recall'] for r in group])} | "
                     f"{_pm([r['auroc'] for r in group])} | {_pm([r['seconds'] for r in group])} |")
    return "\n".join(lines)


def main(out_dir: str | Path = "results") -> str:
    """Run the comparison (3 seeds), print the table, write art-compare-cpu.{json,md} into `out_dir`."""
    cu.seed_everything(0)
    rows = compare()
    table = markdown_table(rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "art-compare-cpu.json").write_text(json.dumps(rows, indent=1))
    note = ("Course detectors and IBM ART 1.20 on the same models and data (5 % poison, seeds 0-2, CPU). "
            "Precision and recall of each one's own removal rule; STRIP counts rejected test inputs (half "
            "clean, half triggered). ART's STRIP is given softmax outputs (on logits it fails with "
            "'non-finite values'); ART's Spectral Signatures gets expected_pp_poison = the true rate.\n\n")
    (out / "art-compare-cpu.md").write_text("# Detectors beside IBM ART\n\n" + note + table + "\n")
    print(table)
    return table


if __name__ == "__main__":
    main()
