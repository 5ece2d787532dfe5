"""Backdoor detection at three levels: the model, the training data, the input at inference.

- model level: Neural Cleanse (Wang et al., IEEE S&P 2019) reverse-engineers the smallest
  trigger that sends clean images to each label; a backdoor target needs a much smaller one,
  which the MAD anomaly index flags.
- data level: Activation Clustering (Chen et al., 2018, arXiv:1811.03728) and Spectral
  Signatures (Tran, Li & Madry, NeurIPS 2018) look at the penultimate activations of the
  training set, class by class, and score each sample (higher = more suspicious).
- input level: STRIP (Gao et al., ACSAC 2019) superimposes clean images on an input; a
  triggered input keeps its (target) prediction, so its predictions have low entropy.

Every detector here is batched: no Python loop over samples, one loop over classes at most.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .cache import cached_result, fingerprint, load_or_train, training_config
from .data import ImageData, as_float
from .poison import PoisonedData
from .train import embeddings, fast_layout, predict_logits

MAD_SCALE = 1.4826  # makes the MAD a consistent estimate of the standard deviation for normal data


def _check_model(model: nn.Module) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if model.training:
        raise ValueError("the model is in training mode (BatchNorm would change it); call model.eval() first")


def _check_batch(x, what: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor of images (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{what} must have shape (N, C, H, W), got {tuple(x.shape)}")
    return as_float(x)


def _check_labels(x: torch.Tensor, y) -> None:
    if not isinstance(y, torch.Tensor) or y.ndim != 1 or len(y) != len(x) or y.dtype != torch.int64:
        raise ValueError(f"y must be an int64 tensor of shape ({len(x)},) with one label per image")


# ----------------------------------------------------------------------------- model level


def mad_anomaly_index(values: torch.Tensor) -> torch.Tensor:
    """The anomaly index of every entry: |v - median| / (1.4826 * MAD), shape and dtype of `values`.

    MAD is the median of |v - median|; 1.4826 * MAD estimates a standard deviation that one
    outlier cannot inflate. Medians as numpy's (`quantile(0.5)`: the mean of the two middle
    values for an even count; `torch.median` would return the lower one). Neural Cleanse flags a label whose trigger norm is BELOW the median
    with an index > 2 (Wang et al., 2019, section IV). If MAD is 0, entries equal to the median
    get 0 and the others inf.
    """
    if not isinstance(values, torch.Tensor) or not values.is_floating_point():
        raise TypeError("values must be a float torch.Tensor, e.g. the L1 norms of the recovered masks")
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(f"values must be 1-D with at least 2 entries (one per label), got shape {tuple(values.shape)}")
    deviation = (values - values.quantile(0.5)).abs()
    mad = deviation.quantile(0.5)
    if mad == 0:
        return torch.where(deviation == 0, torch.zeros_like(values), torch.full_like(values, float("inf")))
    return deviation / (MAD_SCALE * mad)


def apply_mask(images: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """Neural Cleanse's trigger model: ``(1 - mask) * images + mask * pattern``.

    images: float (N, C, H, W) in [0, 1]; mask: (1, H, W) or (N, 1, H, W) in [0, 1], one value
    per pixel shared by the channels; pattern: (C, H, W) or (N, C, H, W) in [0, 1].
    """
    images = _check_batch(images, "images")
    n, c, h, w = images.shape
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape[-3:]) != (1, h, w) or mask.ndim not in (3, 4):
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must have shape (1, {h}, {w}) or (N, 1, {h}, {w}) to fit these images, got {got}")
    if not isinstance(pattern, torch.Tensor) or tuple(pattern.shape[-3:]) != (c, h, w) or pattern.ndim not in (3, 4):
        got = tuple(pattern.shape) if isinstance(pattern, torch.Tensor) else type(pattern).__name__
        raise ValueError(f"pattern must have shape ({c}, {h}, {w}) or (N, {c}, {h}, {w}), got {got}")
    return (1 - mask) * images + mask * pattern


@dataclass(frozen=True)
class NeuralCleanseResult:
    """What Neural Cleanse found for one model (K labels, images C x H x W).

    masks: (K, 1, H, W) in [0, 1]; patterns: (K, C, H, W) in [0, 1]; l1_norms: (K,) mask sizes
    in pixels; success: (K,) fraction of held-out clean images the recovered trigger sends to
    each label; anomaly_index: (K,), of the norms or of their logarithms (`log_scale`);
    flagged: labels with norm below the median and index above the threshold; score: the
    largest anomaly index among labels below the median (a per-model trojan score: higher =
    more suspicious); seconds: how long the optimisation took.
    """

    masks: torch.Tensor
    patterns: torch.Tensor
    l1_norms: torch.Tensor
    success: torch.Tensor
    anomaly_index: torch.Tensor
    flagged: list[int]
    score: float
    seconds: float = 0.0
    log_scale: bool = True


def nc_objective(net: nn.Module, x: torch.Tensor, mask_logit: torch.Tensor, pattern_logit: torch.Tensor,
                 cost: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Neural Cleanse's objective for all K labels at once, on one batch: (loss (K,), success (K,)).

    x: float (B, C, H, W) clean images in [0, 1]; mask_logit: (K, 1, H, W) and pattern_logit:
    (K, C, H, W), the unconstrained parameters, mapped into [0, 1] by a sigmoid (the paper's
    tanh(a) / 2 + 0.5 is the same curve, sigmoid(2a)); cost: (K,) the lambdas; keep: bool (K, B),
    the (label, image) pairs that count (None = all), because an image the model already puts in
    class k says nothing about k's trigger. Every image goes under every candidate trigger,
    (1 - m_k) * x + m_k * p_k, in ONE forward pass of K * B images.
    loss_k = mean over kept images of CE(net(stamped), k) + cost_k * |m_k|_1 (differentiable);
    success_k = the kept share of images the net sends to k (no gradient).
    """
    k, b = len(mask_logit), len(x)
    mask, pattern = torch.sigmoid(mask_logit), torch.sigmoid(pattern_logit)
    stamped = ((1 - mask.unsqueeze(1)) * x.unsqueeze(0) + (mask * pattern).unsqueeze(1)).flatten(0, 1)
    logits = net(stamped.contiguous(memory_format=torch.channels_last)).view(k, b, -1)
    labels = torch.arange(k, device=x.device).view(k, 1).expand(k, b)
    weight = torch.ones(k, b, device=x.device) if keep is None else keep.float()
    ce = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(k, b)
    count = weight.sum(1).clamp_min(1)
    success = ((logits.argmax(2) == labels).float() * weight).sum(1).detach() / count
    return (ce * weight).sum(1) / count + cost * mask.flatten(1).sum(1), success


def nc_update_costs(costs: torch.Tensor, streak: torch.Tensor, success: torch.Tensor, *, threshold: float = 0.99,
                    patience: int = 5, up: float = 1.5, down: float = 1.5 ** 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Neural Cleanse's lambda schedule, per label: (new costs (K,), new streak (K,) int64).

    streak_k counts consecutive checks in which label k's trigger reached `threshold` success
    (positive) or missed it (negative); a check that breaks the run starts a new one at +-1.
    After `patience` successes in a row cost_k is multiplied by `up` (a smaller mask is
    affordable); after `patience` misses it is divided by `down`; either way the streak restarts
    at 0. As in the official code of Wang et al.: threshold 0.99, patience 5 epochs, up 1.5,
    down 1.5 ** 1.5. Inputs are not changed.
    """
    ok = success >= threshold
    streak = torch.where(ok, streak.clamp_min(0) + 1, streak.clamp_max(0) - 1)
    raise_, lower = streak >= patience, streak <= -patience
    costs = torch.where(raise_, costs * up, torch.where(lower, costs / down, costs))
    return costs, torch.where(raise_ | lower, torch.zeros_like(streak), streak)


def neural_cleanse(model: nn.Module, x_clean: torch.Tensor, *, steps: int = 200, lr: float = 0.1,
                   cost: float = 2e-3, batch_size: int = 16, init_mask: float = 0.12, final_lr: float = 0.1,
                   threshold: float = 2.0, log_scale: bool = True, seed: int = 0, progress: bool = False,
                   success_threshold: float = 0.95, patience: int = 1, period: int = 10,
                   objective=None, schedule=None) -> NeuralCleanseResult:
    """Neural Cleanse (Wang et al., IEEE S&P 2019), all K labels optimised at once.

    For every label k it looks for a mask m_k and pattern p_k that send clean images to k:
        minimise  CE(model((1 - m_k) x + m_k p_k), k) + cost_k * |m_k|_1
    (`nc_objective`, one forward pass of K x `batch_size` stamped images per step), with
    m = sigmoid(a), p = sigmoid(b) and Adam on (a, b), its learning rate decaying (cosine) from
    `lr` to `final_lr * lr` so the masks settle. cost_k adapts per label (`nc_update_costs`):
    every `period` steps the trigger's success over those steps is compared with
    `success_threshold`, and after `patience` such checks in a row cost_k grows by 1.5 (or
    shrinks by 1.5 ** 1.5), so every label ends near its smallest working trigger. The norms are
    then compared with `mad_anomaly_index` (see `nc_verdict`; `log_scale` compares their logarithms).

    As in the paper / here. The paper: tanh parametrisation (the same curve), Adam, lambda 1e-3
    switched on once the trigger first reaches 99 % success, then x1.5 / /1.5^1.5 after 5 epochs
    in a row above / below 99 %, many epochs per label, and the MAD index of the raw L1 norms.
    Here: a 200-step budget on a few hundred images (one "epoch" is `period` steps), so the
    defaults are 95 %, patience 1 and lambda on from the start (with patience 5 at 99 % most
    lambdas would move twice in the whole run); pass success_threshold=0.99, patience=5 for the
    paper's rule. The index of log-norms (`log_scale`) is the course's, see `nc_verdict`.

    model: in eval mode (its weights are not changed). x_clean: a few hundred clean images
    (N, C, H, W), uint8 or float; the last quarter is held out to measure `success`.
    objective, schedule: functions with the signatures of `nc_objective` and `nc_update_costs`
    (lesson 03 passes the learner's); None = those two.

    With the course's own objective and schedule, the recovered triggers are cached (`cache.cached_result`,
    keyed by the weights, the images and the settings): running it again on the same model loads them, and
    `seconds` is then how long the optimisation took when it ran. A learner's functions always run.
    """
    _check_model(model)
    x = _check_batch(x_clean, "x_clean")
    if len(x) < 8:
        raise ValueError(f"Neural Cleanse needs some clean images (a few hundred); got {len(x)}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not isinstance(patience, int) or patience < 1 or not isinstance(period, int) or period < 1:
        raise ValueError(f"patience and period must be positive ints, got {patience!r} and {period!r}")
    settings = {"steps": steps, "lr": lr, "cost": cost, "batch_size": batch_size, "init_mask": init_mask,
                "final_lr": final_lr, "seed": seed, "success_threshold": success_threshold, "patience": patience,
                "period": period}

    def run():
        return _recover_triggers(model, x, objective or nc_objective, schedule or nc_update_costs, progress, **settings)

    if objective in (None, nc_objective) and schedule in (None, nc_update_costs):
        found = cached_result("neural_cleanse", {"model": fingerprint(model), "x_clean": fingerprint(x), **settings}, run)
    else:
        found = run()
    return nc_verdict(found["masks"], found["patterns"], found["l1_norms"], found["success"], threshold,
                      found["seconds"], log_scale)


def _recover_triggers(model: nn.Module, x: torch.Tensor, objective, schedule, progress: bool, *, steps: int,
                      lr: float, cost: float, batch_size: int, init_mask: float, final_lr: float, seed: int,
                      success_threshold: float, patience: int, period: int) -> dict:
    """Neural Cleanse's optimisation (see `neural_cleanse`): {masks, patterns, l1_norms, success, seconds}."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    device = next(model.parameters()).device
    own = predict_logits(model, x).argmax(1).to(device)  # an image already of label k says nothing about k's trigger
    k = predict_logits(model, x[:1]).shape[1]
    _, c, h, w = x.shape
    n_fit = len(x) - len(x) // 4
    x_fit, x_val = x[:n_fit].to(device), x[n_fit:].to(device)
    g = torch.Generator().manual_seed(seed)
    start_logit = torch.logit(torch.tensor(float(init_mask)))
    mask_logit = (torch.randn(k, 1, h, w, generator=g) * 0.1 + start_logit).to(device).requires_grad_(True)
    pattern_logit = torch.randn(k, c, h, w, generator=g).to(device).requires_grad_(True)
    optimizer = torch.optim.Adam([mask_logit, pattern_logit], lr=lr, betas=(0.5, 0.9))
    lr_decay = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=lr * final_lr)
    costs = torch.full((k,), float(cost), device=device)
    streak = torch.zeros(k, dtype=torch.int64, device=device)
    labels = torch.arange(k, device=device).view(k, 1)
    hits, counts = torch.zeros(k, device=device), torch.zeros(k, device=device)
    # A frozen copy in channels-last layout: ~1.5x faster convolutions on CPU, and the caller's model
    # is never touched.
    net = copy.deepcopy(model).requires_grad_(False).to(memory_format=torch.channels_last)
    for step in tqdm(range(steps), desc="Neural Cleanse", disable=not progress, leave=False):
        idx = torch.randperm(n_fit, generator=g)[:batch_size].to(device)
        keep = own[idx].view(1, -1) != labels  # (K, B)
        loss, success = objective(net, x_fit[idx], mask_logit, pattern_logit, costs, keep)
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        optimizer.step()
        lr_decay.step()
        with torch.no_grad():
            hits += success.detach() * keep.sum(1)
            counts += keep.sum(1)
            if (step + 1) % period == 0:
                costs, streak = schedule(costs, streak, hits / counts.clamp_min(1),
                                         threshold=success_threshold, patience=patience)
                costs = costs.clamp(1e-5, 1.0)
                hits.zero_()
                counts.zero_()
    with torch.no_grad():
        masks, patterns = torch.sigmoid(mask_logit).detach().cpu(), torch.sigmoid(pattern_logit).detach().cpu()
        l1_norms = masks.flatten(1).sum(1)
        xv = x_val.cpu()
        stamped = (1 - masks.unsqueeze(1)) * xv.unsqueeze(0) + (masks * patterns).unsqueeze(1)
        preds = predict_logits(model, stamped.flatten(0, 1)).argmax(1).view(k, -1)
        other = own[n_fit:].cpu().view(1, -1) != torch.arange(k).view(-1, 1)
        success = ((preds == torch.arange(k).view(-1, 1)) & other).sum(1) / other.sum(1).clamp_min(1)
    return {"masks": masks, "patterns": patterns, "l1_norms": l1_norms, "success": success,
            "seconds": time.perf_counter() - start}


def nc_verdict(masks, patterns, l1_norms, success, threshold: float = 2.0, seconds: float = 0.0,
               log_scale: bool = True) -> NeuralCleanseResult:
    """The anomaly index of the mask norms, the flagged labels and the per-model score.

    log_scale=False is the paper's rule, the index of the L1 norms themselves. It assumes the
    clean labels' norms spread roughly symmetrically; on MNIST they do not (a "1" needs a far
    bigger trigger than an "8"), one huge norm inflates the MAD and the target hides. With
    log_scale=True the index is taken of log(L1), so "4x smaller than usual" counts the same
    whatever the usual size is (lesson 03 measures both).
    """
    values = l1_norms.clamp_min(1e-6).log() if log_scale else l1_norms
    index = mad_anomaly_index(values)
    below = values < values.quantile(0.5)
    flagged = [int(i) for i in torch.nonzero(below & (index > threshold)).flatten()]
    score = float(index[below].max()) if below.any() else 0.0
    return NeuralCleanseResult(masks, patterns, l1_norms, success, index, flagged, score, seconds, log_scale)


# ----------------------------------------------------------------------------- data level


@torch.inference_mode()
def layer_features(model: nn.Module, x: torch.Tensor, layer: str = "conv", batch_size: int = 1000) -> torch.Tensor:
    """The activations the data-level detectors look at, (N, D) float32 on the CPU.

    layer="conv": the last convolutional block's feature maps, flattened (64 x 7 x 7 = 3,136
    values for the small CNN); layer="embed": the 128 penultimate features after their ReLU.
    On the course's small CNN the poison separates far better in "conv" (measured in lesson 03),
    so that is the default.
    """
    _check_model(model)
    x = _check_batch(x)
    if layer == "embed":
        return embeddings(model, x, batch_size)
    if layer != "conv":
        raise ValueError(f"layer must be 'conv' or 'embed', got {layer!r}")
    device = next(model.parameters()).device
    with fast_layout(model):
        out = [model.feature_maps(x[i : i + batch_size].to(device))[-1].flatten(1).cpu()
               for i in range(0, len(x), batch_size)]
    return torch.cat(out)


def _per_class_features(model: nn.Module, x: torch.Tensor, y: torch.Tensor, layer: str, features=None):
    x = _check_batch(x)
    _check_labels(x, y)
    if features is None:
        features = layer_features(model, x, layer)
    elif not isinstance(features, torch.Tensor) or features.ndim != 2 or len(features) != len(x):
        raise ValueError(f"features must be the (N, D) output of layer_features for these {len(x)} images")
    return features.double(), [torch.nonzero(y == c).flatten() for c in torch.unique(y).tolist()]


@contextmanager
def one_thread():
    """Run small per-class linear algebra and k-means on one thread, then restore the thread settings.

    For matrices of a few hundred rows one thread is as fast as two, and on a shared machine it
    avoids the oversubscription that can make a 100 x 100 eigendecomposition take a second.
    """
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


def principal_components(r: torch.Tensor, q: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top `q` principal directions of centred rows r (n, D): (projections (n, q), directions (q, D)).

    Computed from the n x n Gram matrix r r^T (exact, deterministic, fast when n << D as here).
    """
    values, vectors = _gram_eigh(r)
    values, vectors = values[:q].clamp_min(1e-12), vectors[:, :q]
    directions = (r.T @ vectors / values.sqrt()).T
    return r @ directions.T, directions


# Lesson 03 asks several rules about the same classes' activations (AC's scores and its two removal rules,
# SS's three scores): each decomposes the same n x n Gram matrices. The latest decompositions are kept,
# keyed by the SHA-256 of the rows and the thread count (7 ms for a class of the course's data set,
# against 60 ms to decompose it), so equal inputs give the very same numbers, only sooner.
_GRAM_MEMO: OrderedDict[bytes, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
GRAM_MEMO_BYTES = 128 * 2**20  # at most this much kept (the course's classes: 2-5 MB each)


def _gram_eigh(r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """eigh(r r^T) with the largest eigenvalue first: (values (n,), vectors (n, n)); see `_GRAM_MEMO`."""
    rows = np.ascontiguousarray(r.detach().cpu().numpy())
    key = hashlib.sha256(f"{rows.dtype} {rows.shape} {torch.get_num_threads()};".encode() + rows.data).digest()
    if key in _GRAM_MEMO:
        _GRAM_MEMO.move_to_end(key)
        return _GRAM_MEMO[key]
    values, vectors = torch.linalg.eigh(r @ r.T)
    found = (values.flip(0), vectors.flip(1))
    size = found[1].numel() * found[1].element_size()
    if size <= GRAM_MEMO_BYTES // 4:
        _GRAM_MEMO[key] = found
        while sum(v.numel() * v.element_size() for _, v in _GRAM_MEMO.values()) > GRAM_MEMO_BYTES:
            _GRAM_MEMO.popitem(last=False)
    return found


def activation_clustering_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, rule: str = "silhouette",
                                 layer: str = "conv", n_components: int = 10, seed: int = 0,
                                 features: torch.Tensor | None = None, reduce: str = "pca") -> torch.Tensor:
    """Activation Clustering (Chen et al., 2018): per class, 2-means on reduced activations.

    For each label: the activations of its samples (`layer_features`) are reduced to
    `n_components` dimensions (reduce="pca", or "ica": scikit-learn's FastICA, the paper's
    choice), split by 2-means, and the smaller cluster is the suspect. A sample's score
    (higher = more suspicious), shape (N,), float32:
      rule="silhouette" (the course's score): the silhouette score of its class's split if it is
        in the smaller cluster, else 0: high when the class falls cleanly into two groups;
      rule="size" (the paper's relative-size analysis): 1 - the relative size of its cluster
        (a cluster under 35 % of its class, ART's default, scores above 0.65).
    Both assume the poison is the SMALLER part of its class: at high poison rates it is not.
    x: training images (N, C, H, W); y: their (possibly poisoned) int64 labels (N,);
    features: `layer_features(model, x, layer)` if already computed (then `model` is not used).

    As in the paper / here. Chen et al. reduce with ICA to 10 components, cluster each class
    with 2-means and judge a class by exclusionary reclassification, relative size or silhouette.
    Here PCA is the default: on the course's models ICA's unit-variance components give the
    noise directions the same weight as the poison's and the split gets worse (lesson 03
    measures both); the removal rules are in `activation_clustering_remove`.
    """
    if rule not in ("silhouette", "size"):
        raise ValueError(f"rule must be 'silhouette' or 'size', got {rule!r}")
    _check_reduce(reduce)
    return _per_class_scores(model, x, y, layer, features, 4,
                             lambda f: _ac_class(f, rule, n_components, seed, reduce))


def _check_reduce(reduce: str) -> None:
    if reduce not in ("pca", "ica"):
        raise ValueError(f"reduce must be 'pca' or 'ica' (FastICA, as in Chen et al.), got {reduce!r}")


def _per_class_scores(model, x, y, layer, features, min_size: int, score_class) -> torch.Tensor:
    """(N,) scores: `score_class(features of one class)` for every class with at least `min_size` samples, else 0."""
    feats, groups = _per_class_features(model, x, y, layer, features)
    scores = torch.zeros(len(x))
    with one_thread():
        for idx in groups:
            if len(idx) >= min_size:
                scores[idx] = score_class(feats[idx])
    return scores


def _ac_split(feats: torch.Tensor, n_components: int, seed: int, reduce: str):
    """One class's 2-means split: (reduced (n_c, q) array, cluster labels (n_c,), relative sizes (2,), silhouette)."""
    import warnings

    from sklearn.cluster import KMeans
    from sklearn.decomposition import FastICA
    from sklearn.metrics import silhouette_score

    q = min(n_components, len(feats) - 1)
    reduced = principal_components(feats - feats.mean(0), q)[0].numpy()
    if reduce == "ica":
        # FastICA first whitens onto the top-q principal components; giving it those q projections is the
        # same computation without a whitening of all D = 3,136 dimensions (minutes on a loaded CPU).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a non-converged rotation still gives usable components
            reduced = FastICA(n_components=q, whiten="unit-variance", random_state=seed, max_iter=400,
                              tol=1e-3).fit_transform(reduced)
    labels = KMeans(n_clusters=2, n_init=5, random_state=seed).fit_predict(reduced)
    sizes = np.bincount(labels, minlength=2) / len(labels)
    silhouette = float(silhouette_score(reduced, labels)) if sizes.min() > 0 else 0.0
    return reduced, labels, sizes, silhouette


def _ac_class(feats: torch.Tensor, rule: str, n_components: int, seed: int, reduce: str = "pca") -> torch.Tensor:
    """Activation Clustering scores of one class's activations (n_c, D): (n_c,) float32."""
    _, labels, sizes, silhouette = _ac_split(feats, n_components, seed, reduce)
    if rule == "size":
        return torch.from_numpy(1 - sizes[labels]).float()
    if sizes.min() == 0:
        return torch.zeros(len(feats))
    return torch.from_numpy(labels == sizes.argmin()).float() * max(silhouette, 0.0)


def activation_clustering_remove(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, rule: str = "course",
                                 size_threshold: float = 0.35, outlier_index: float = 3.0, layer: str = "conv",
                                 n_components: int = 10, seed: int = 0, reduce: str = "pca",
                                 features: torch.Tensor | None = None) -> torch.Tensor:
    """Which training samples Activation Clustering removes (bool (N,)).

    rule="paper": Chen et al.'s relative-size analysis: in every class, the smaller cluster is
      removed if it holds less than `size_threshold` of the class (0.35, ART's default). A clean
      class that happens to split unevenly loses a whole cluster.
    rule="course": the same, but only in classes whose split is unusually clean: the class's
      silhouette must lie above the median of all classes with a MAD anomaly index above
      `outlier_index` (the silhouette rule of the paper made relative, so that no fixed
      silhouette value has to be guessed). Assumes that most classes are clean.
    Other arguments as in `activation_clustering_scores`.
    """
    if rule not in ("course", "paper"):
        raise ValueError(f"rule must be 'course' or 'paper', got {rule!r}")
    _check_reduce(reduce)
    feats, groups = _per_class_features(model, x, y, layer, features)
    removed, silhouettes, smaller = torch.zeros(len(x), dtype=torch.bool), [], []
    with one_thread():
        for idx in groups:
            if len(idx) < 4:
                continue
            _, labels, sizes, silhouette = _ac_split(feats[idx], n_components, seed, reduce)
            small = idx[torch.from_numpy(labels == sizes.argmin())] if sizes.min() < size_threshold else idx[:0]
            silhouettes.append(silhouette)
            smaller.append(small)
    if rule == "course" and len(silhouettes) > 1:
        values = torch.tensor(silhouettes, dtype=torch.float64)
        outlier = (mad_anomaly_index(values) > outlier_index) & (values > values.quantile(0.5))
        smaller = [s for s, keep in zip(smaller, outlier.tolist()) if keep]
    for small in smaller:
        removed[small] = True
    return removed


def spectral_signature_class_scores(feats: torch.Tensor) -> torch.Tensor:
    """Tran et al.'s score for the samples of ONE class: (n,) in the dtype of `feats` (n, D).

    Centre the rows on their mean, take the top right singular vector v of the centred matrix,
    score each row by its squared projection (R_i - mean) . v, squared. Computed from the n x n
    Gram matrix (`principal_components`), which is the same vector and faster when n << D.
    """
    if not isinstance(feats, torch.Tensor) or feats.ndim != 2 or len(feats) < 2:
        raise ValueError("feats must be a float tensor (n, D) with n >= 2 rows, one per sample of the class")
    return principal_components(feats - feats.mean(0), 1)[0][:, 0] ** 2


def spectral_signature_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, layer: str = "conv",
                              normalize: str | None = None, features: torch.Tensor | None = None,
                              class_scores=None) -> torch.Tensor:
    """Spectral Signatures (Tran, Li & Madry, 2018): outlier scores along the top singular vector.

    Per class: centre the activations R (n_c, D) (`layer_features`) on their mean and take the
    top right singular vector v of R. Poison that is a minority of its class pulls v towards
    itself and lands far out along it. The score of sample i (higher = more suspicious):
      normalize=None: (R_i v)^2, the paper's score (`spectral_signature_class_scores`, or the
        function `class_scores` given, e.g. a learner's);
      normalize="median": (R_i v)^2 divided by the class's median score, so that classes of
        different spread share one scale;
      normalize="mad": |R_i v - median| / (1.4826 * MAD) of the class's projections, the robust
        z-score of `mad_anomaly_index`: comparable across classes, and the clean majority sets
        the centre and the scale (cf. SPECTRE, Hayase et al., 2021).
    Returns (N,), float32. features: as in `activation_clustering_scores`.

    As in the paper / here. Tran et al. rank each class on its own and remove 1.5 x epsilon of
    it, epsilon bounding the poisoned share OF THAT CLASS (`spectral_signatures_remove`,
    rule="paper"). Ranked across classes, raw scores are not comparable (a class of larger
    spread wins), hence the normalised scores and the course's rule.
    """
    if normalize not in (None, "median", "mad"):
        raise ValueError(f"normalize must be None, 'median' or 'mad', got {normalize!r}")
    return _per_class_scores(model, x, y, layer, features, 3, lambda f: _ss_class(f, normalize, class_scores))


def _ss_class(feats: torch.Tensor, normalize: str | None, class_scores=None) -> torch.Tensor:
    """Spectral Signatures scores of one class's activations (n_c, D): (n_c,) float32."""
    if normalize is None:
        return (class_scores or spectral_signature_class_scores)(feats).float()
    proj = principal_components(feats - feats.mean(0), 1)[0][:, 0]
    if normalize == "mad":
        return mad_anomaly_index(proj).float()
    return (proj**2 / (proj**2).quantile(0.5).clamp_min(1e-12)).float()


def spectral_signatures_remove(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, rule: str = "course",
                               epsilon: float = 0.05, z: float = 2.0, layer: str = "conv",
                               features: torch.Tensor | None = None) -> torch.Tensor:
    """Which training samples Spectral Signatures removes (bool (N,)).

    rule="paper" (Tran et al.): the 1.5 * epsilon * n_c highest scores of EVERY class, epsilon
      being the bound on the poisoned share of a class. A defender who sets epsilon to the
      poison rate of the whole set (5 %) under-removes in the target class (a third of it is
      poison here) and removes clean samples from all the others.
    rule="course": the robust z-score (normalize="mad") above `z` in any class: scores made
      comparable across classes, no epsilon to guess.
    """
    if rule not in ("course", "paper"):
        raise ValueError(f"rule must be 'course' or 'paper', got {rule!r}")
    if rule == "paper":
        if not 0 < epsilon <= 1 / 1.5:
            raise ValueError(f"epsilon (the bound on a class's poisoned share) must be in (0, 2/3], got {epsilon}")
        return remove_top_per_class(spectral_signature_scores(model, x, y, layer=layer, features=features), y,
                                    1.5 * epsilon)
    return remove_above(spectral_signature_scores(model, x, y, layer=layer, normalize="mad", features=features), z)


def remove_top_per_class(scores: torch.Tensor, y: torch.Tensor, fraction: float) -> torch.Tensor:
    """Which samples to remove: the `fraction` highest-scoring of EACH class (bool (N,)).

    Tran et al. remove 1.5 x the expected poison fraction of every class this way.
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    removed = torch.zeros(len(scores), dtype=torch.bool)
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        top = scores[idx].argsort(descending=True)[: round(fraction * len(idx))]
        removed[idx[top]] = True
    return removed


def remove_above(scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Which samples to remove: those scoring above `threshold` (bool (N,))."""
    return scores > threshold


def precision_recall(removed: torch.Tensor, poisoned: torch.Tensor) -> tuple[float, float]:
    """Precision (share of the removed that were poison) and recall (share of the poison removed)."""
    if removed.shape != poisoned.shape or removed.dtype != torch.bool or poisoned.dtype != torch.bool:
        raise ValueError("removed and poisoned must be bool tensors of the same shape (N,)")
    hit = (removed & poisoned).sum().item()
    precision = hit / removed.sum().item() if removed.any() else 0.0
    recall = hit / poisoned.sum().item() if poisoned.any() else 1.0
    return precision, recall


def retrain_without(data: ImageData, poisoned: PoisonedData, removed: torch.Tensor, *, seed: int = 0,
                    progress: bool = False) -> nn.Module:
    """A fresh model trained on the poisoned training set minus `removed` (cached by content)."""
    from .models import make_model
    from .runtime import get_profile
    from .train import fit

    if removed.shape != poisoned.poisoned.shape or removed.dtype != torch.bool:
        raise ValueError(f"removed must be a bool tensor of shape {tuple(poisoned.poisoned.shape)}")
    profile = get_profile()
    config = training_config(data, model=profile.model, seed=seed, epochs=profile.epochs,
                             what="retrained without removed samples",
                             content=fingerprint([poisoned.x, poisoned.y, removed]))
    keep = ~removed

    def build():
        return make_model(in_shape=data.image_shape, num_classes=data.num_classes, seed=seed)

    def train(model):
        fit(model, poisoned.x[keep], poisoned.y[keep], seed=seed, progress=progress, desc="retraining on cleaned data")

    return load_or_train(config, build, train)


# ----------------------------------------------------------------------------- input level


def superimposed_entropy(model: nn.Module, x: torch.Tensor, overlays: torch.Tensor,
                         batch_size: int | None = None) -> torch.Tensor:
    """Mean prediction entropy of each input with each overlay added on top (STRIP's statistic).

    x: float (N, C, H, W) in [0, 1]. overlays: (n, C, H, W), the same n images for every input,
    or (N, n, C, H, W), n per input. Each blend is clamp(x + overlay, 0, 1) (Gao et al. add the
    two images). Returns (N,), float32: the entropy (in nats) of the softmax, averaged over the n blends.
    """
    _check_model(model)
    x = _check_batch(x)
    overlays = as_float(overlays)
    if overlays.ndim == 4:
        overlays = overlays.unsqueeze(0).expand(len(x), *overlays.shape)
    if overlays.ndim != 5 or overlays.shape[0] != len(x) or overlays.shape[2:] != x.shape[1:]:
        raise ValueError(f"overlays must have shape (n, {', '.join(map(str, x.shape[1:]))}) or (N, n, ...), "
                         f"got {tuple(overlays.shape)}")
    n = overlays.shape[1]
    blends = (x.unsqueeze(1) + overlays).clamp(0, 1).flatten(0, 1)
    logp = F.log_softmax(predict_logits(model, blends, batch_size), dim=1)
    entropy = -(logp.exp() * logp).sum(1)
    return entropy.view(len(x), n).mean(1)


def strip_entropy(model: nn.Module, x: torch.Tensor, x_clean: torch.Tensor, n: int = 8, seed: int = 0,
                  chunk: int = 512, exclude_self: bool = True) -> torch.Tensor:
    """STRIP (Gao et al., ACSAC 2019): for each input, the mean entropy over `n` superimposed clean images.

    x: inputs to test (N, C, H, W); x_clean: a pool of clean images the defender holds. The n
    overlays are drawn at random (seeded) for each input; with `exclude_self` an overlay that is
    the input itself (when x and the pool share images, as when the defender calibrates on its
    own pool) is redrawn: x + x is just a brighter x and would fake a confident prediction.
    A trigger that dominates the prediction survives the overlay, so LOW entropy = suspicious.
    Returns (N,), float32.

    As in the paper / here. Gao et al. add the two images and use N = 100 overlays per input;
    the course uses n = 8 by default (STRIP's cost grows with n; lesson 03 measures AUROC against
    n) and, besides the paper's one-tailed rule (`strip_threshold`), a two-tailed one
    (`strip_two_tailed_score`, `strip_thresholds`) for triggers such as WaNet's that RAISE the entropy.
    """
    _check_model(model)
    x, x_clean = _check_batch(x), _check_batch(x_clean, "x_clean")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n (overlays per input) must be an int >= 2 for an entropy average to mean anything, got {n!r}")
    if len(x_clean) < n + int(exclude_self):
        raise ValueError(f"x_clean has {len(x_clean)} images, fewer than n={n} overlays per input (+1 with exclude_self)")
    g = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(x_clean), (len(x), n), generator=g)
    if exclude_self:
        picks = _avoid_self(x, x_clean, picks, g)
    out = [superimposed_entropy(model, x[i : i + chunk], x_clean[picks[i : i + chunk]]) for i in range(0, len(x), chunk)]
    return torch.cat(out) if out else torch.empty(0)


def _avoid_self(x: torch.Tensor, pool: torch.Tensor, picks: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Redraw every pick (N, n) whose pool image equals its input, until none does."""
    probe = torch.randn(x[0].numel(), generator=g, dtype=torch.float64)
    same = (x.flatten(1).double() @ probe).view(-1, 1) == (pool.flatten(1).double() @ probe).view(1, -1)  # (N, M)
    for _ in range(20):
        clash = same.gather(1, picks)
        if not clash.any():
            return picks
        shift = torch.randint(1, len(pool), picks.shape, generator=g)
        picks = torch.where(clash, (picks + shift) % len(pool), picks)
    raise ValueError("could not draw overlays different from the inputs: x_clean is (almost) only copies of x")


def strip_threshold(clean_entropy: torch.Tensor, frr: float = 0.05) -> float:
    """The entropy threshold that rejects a fraction `frr` of CLEAN inputs (the false-rejection rate).

    Gao et al. fix the threshold from clean data only, as a defender can: inputs with entropy
    below it are rejected as triggered (the paper's one-tailed rule).
    """
    if not 0 < frr < 1:
        raise ValueError(f"frr (false-rejection rate) must be in (0, 1), e.g. 0.01 or 0.05; got {frr}")
    return torch.quantile(clean_entropy.double(), frr).item()


def strip_thresholds(clean_entropy: torch.Tensor, frr: float = 0.05, two_tailed: bool = False) -> tuple[float, float]:
    """(low, high): reject inputs with entropy below low or above high; clean data sets both.

    one-tailed (the paper): low = the `frr` quantile of clean entropies, high = inf.
    two-tailed (the course's): frr / 2 on each side, which also catches triggers that make the
    prediction MORE uncertain under overlays than a clean input (WaNet's warp, lesson 03).
    """
    if not 0 < frr < 1:
        raise ValueError(f"frr (false-rejection rate) must be in (0, 1), e.g. 0.01 or 0.05; got {frr}")
    h = clean_entropy.double()
    if not two_tailed:
        return torch.quantile(h, frr).item(), float("inf")
    return torch.quantile(h, frr / 2).item(), torch.quantile(h, 1 - frr / 2).item()


def strip_reject(entropy: torch.Tensor, thresholds: tuple[float, float]) -> torch.Tensor:
    """Which inputs STRIP rejects (bool (N,)): entropy outside (low, high) from `strip_thresholds`."""
    low, high = thresholds
    return (entropy < low) | (entropy > high)


def strip_two_tailed_score(entropy: torch.Tensor, clean_entropy: torch.Tensor) -> torch.Tensor:
    """How far each entropy lies from the clean ones, either way: |h - median| / (1.4826 * MAD), (N,) float32.

    The median and MAD come from the defender's clean entropies only (a robust z-score, as in
    `mad_anomaly_index`). Higher = more suspicious; ranks both low-entropy (patch, blend) and
    high-entropy (warp) triggers above clean inputs.
    """
    ref = clean_entropy.double()
    centre = ref.quantile(0.5)
    mad = (ref - centre).abs().quantile(0.5).clamp_min(1e-12)
    return ((entropy.double() - centre).abs() / (MAD_SCALE * mad)).float()


def roc(scores: torch.Tensor, positive: torch.Tensor) -> tuple[np.ndarray, np.ndarray, float]:
    """ROC curve and AUROC (scikit-learn) of `scores` (higher = more suspicious) against bool `positive`."""
    from sklearn.metrics import roc_auc_score, roc_curve

    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    if scores.shape != positive.shape or positive.all() or not positive.any():
        raise ValueError("scores and positive must have the same shape and both classes must be present")
    fpr, tpr, _ = roc_curve(positive, scores)
    return fpr, tpr, float(roc_auc_score(positive, scores))


def plot_roc(curves: dict[str, tuple[torch.Tensor, torch.Tensor]], title: str | None = None, ax=None):
    """ROC curves, one per name: {name: (scores, positive)}; the legend shows each AUROC. Returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4))
    for name, (scores, positive) in curves.items():
        fpr, tpr, auc = roc(scores, positive)
        ax.plot(fpr, tpr, label=f"{name} (AUROC {auc:.2f})")
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return ax


def strip_overhead(model: nn.Module, x: torch.Tensor, x_clean: torch.Tensor, n: int = 8, batch_size: int = 128,
                   repeats: int = 5) -> dict[str, float]:
    """Latency per batch and throughput of plain inference and of inference with STRIP (best of `repeats`).

    Returns {"plain_ms", "strip_ms", "plain_per_s", "strip_per_s", "ratio"}; ratio = strip_ms / plain_ms.
    STRIP runs the model on n blends of every input, so expect a ratio near n.
    """
    _check_model(model)
    x = _check_batch(x)[:batch_size]

    def best(fn) -> float:
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    plain = best(lambda: predict_logits(model, x))
    strip = best(lambda: (predict_logits(model, x), strip_entropy(model, x, x_clean, n=n)))
    return {"plain_ms": 1000 * plain, "strip_ms": 1000 * strip, "plain_per_s": len(x) / plain,
            "strip_per_s": len(x) / strip, "ratio": strip / plain}
