"""Checks for lessons 00-01: integrity manifests, the patch trigger and the poisoning routine."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import torch

from ..integrity import make_manifest, sha256_file, verify_manifest
from ..poison import PoisonedData, poison_dataset
from ..triggers import stamp_patch
from .core import call_learner, differences, expect_tensor, expect_unchanged, run_check


def check_sha256_file(fn) -> bool:
    """fn(path) -> the file's SHA-256 as 64 lowercase hex characters."""
    def body():
        with tempfile.TemporaryDirectory() as tmp:
            cases = {"empty": b"", "short": b"backdoor", "3 MB": bytes(range(256)) * 12_000}
            for what, content in cases.items():
                path = Path(tmp) / "file.bin"
                path.write_bytes(content)
                got = call_learner(fn, path)
                want = sha256_file(path)
                if not isinstance(got, str):
                    raise AssertionError(f"{what} file: expected a hex string, got {type(got).__name__}"
                                         + (" (call .hexdigest(), not .digest())" if isinstance(got, bytes) else ""))
                if got != want:
                    hint = " (that is MD5, not SHA-256)" if got == hashlib.md5(content).hexdigest() else ""
                    raise AssertionError(f"{what} file: expected {want[:16]}..., got {got[:16]}...{hint}")
        return "empty, short and multi-chunk files"
    return run_check("sha256_file", body)


def _manifest_slip(got, want: list[str], manifest: dict[str, str], folder: Path) -> str:
    """Name what is wrong with a verify_manifest answer that is not `want`."""
    if not isinstance(got, list):
        why = " (a set has no order)" if isinstance(got, (set, frozenset)) else ""
        return f"expected a list of names, got {type(got).__name__}{why}: return the names as a sorted list"
    if any(not isinstance(name, str) for name in got):
        kinds = sorted({type(name).__name__ for name in got})
        return (f"expected the manifest's names as strings (e.g. {next(iter(manifest))!r}), got "
                f"{', '.join(kinds)} items: return the keys of the manifest, not paths in the folder")
    if any(name not in manifest for name in got):
        return (f"expected names as the manifest writes them ({want}), got {got}: "
                "return the manifest's keys, not the paths of the files in the folder")
    if sorted(got) == want:
        return f"expected {want}, got {got}: the right names in another order; sort them"
    intact = sorted(set(manifest) - set(want))
    if got and sorted(got) == intact:
        return (f"expected {want}, got {got}: those are the files that still match; return the ones that "
                "are missing or have another hash")
    missing = [name for name in want if not (folder / name).is_file()]
    changed = [name for name in want if name not in missing]
    if changed and sorted(got) == missing:
        return (f"expected {want}, got {got}: you missed {', '.join(changed)}, still there but no longer with the "
                "recorded hash; compare every file's SHA-256 with the manifest's")
    if missing and sorted(got) == changed:
        return (f"expected {want}, got {got}: you missed {', '.join(missing)}, which was deleted; a missing file is "
                "tampering too: report it instead of skipping it")
    return f"expected {want}, got {got}"


def check_verify_manifest(fn) -> bool:
    """fn(manifest, folder) -> sorted list of names that are missing or changed."""
    def body():
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for name, text in {"train.bin": "digits", "model.pt": "weights", "sub/readme.txt": "hi"}.items():
                (folder / name).parent.mkdir(exist_ok=True)
                (folder / name).write_text(text)
            # in reverse order of the names, so that an answer that forgets to sort shows it
            manifest = dict(reversed(make_manifest(folder).items()))
            cases = [("nothing changed", lambda: None),
                     ("model.pt rewritten", lambda: (folder / "model.pt").write_text("weightz")),
                     ("train.bin deleted as well", lambda: (folder / "train.bin").unlink())]
            for what, tamper in cases:
                tamper()
                got = call_learner(fn, dict(manifest), folder)
                want = verify_manifest(manifest, folder)
                if got != want:
                    raise AssertionError(f"{what}: {_manifest_slip(got, want, manifest, folder)}")
        return "unchanged, rewritten and deleted files"
    return run_check("verify_manifest", body)


def _square(images: torch.Tensor, size: int, row: int, col: int, color: float, add: bool = False) -> torch.Tensor:
    """A square drawn by plain slicing, as a learner would (no checks): the check's catalogue of slips."""
    out = images.clone()
    region = out[:, :, row:row + size, col:col + size]
    out[:, :, row:row + size, col:col + size] = region + color if add else color
    return out


def _name_patch_slip(got, images: torch.Tensor, size: int, row: int, col: int, color: float, want) -> str:
    """Which common slip reproduces the learner's output, or "" if none does."""
    if not (isinstance(got, torch.Tensor) and got.shape == want.shape and got.dtype == want.dtype):
        return ""  # expect_tensor names the type, shape or dtype
    if torch.allclose(got, want, atol=1e-5, rtol=0):
        return ""
    slips = [
        ("your images come back without any square: write `color` into the square of a copy and return that copy",
         images),
        (f"your square is {size + 1}x{size + 1} pixels, one too big: a slice's end is already excluded, "
         "do not add 1 to it", _square(images, size + 1, row, col, color)),
        (f"your square starts at ({row + 1}, {col + 1}), one pixel too far down and right: (row, col) is the "
         "square's own top-left pixel, and indices count from 0", _square(images, size, row + 1, col + 1, color)),
        (f"your square is at row {col}, column {row}: row and column are swapped (rows are dimension 2, H; "
         "columns dimension 3, W)", _square(images, size, col, row, color)),
        (f"your square has the value 1.0, expected color={color}: use the `color` argument",
         _square(images, size, row, col, 1.0)),
        ("you added `color` to the pixels of the square; set them to `color` instead",
         _square(images, size, row, col, color, add=True)),
        ("you added `color` to the pixels of the square and clipped; set them to `color` instead",
         _square(images, size, row, col, color, add=True).clamp(0, 1)),
    ]
    if size > 1:
        slips.insert(0, (f"your square is {size - 1}x{size - 1} pixels, one too small: a slice's end is "
                         f"excluded, so a square of {size} rows from row {row} ends before row {row + size}",
                         _square(images, size - 1, row, col, color)))
    for message, variant in slips:
        if torch.allclose(got, variant, atol=1e-5, rtol=0):
            return f"{message}; {differences(got, want)}"
    return ""


def check_patch_trigger(fn) -> bool:
    """fn(images, size, row, col, color) -> images with a size x size square of `color` at (row, col)."""
    def body():
        g = torch.Generator().manual_seed(0)
        cases = [(torch.zeros(2, 1, 8, 8), 3, 5, 5, 1.0), (torch.rand(3, 1, 10, 10, generator=g), 2, 0, 7, 1.0),
                 (torch.rand(2, 3, 6, 6, generator=g), 1, 2, 3, 0.5)]
        for images, size, row, col, color in cases:
            before = images.clone()
            got = call_learner(fn, images, size=size, row=row, col=col, color=color)
            want = stamp_patch(before, size=size, row=row, col=col, color=color)
            what = f"images {tuple(images.shape)}, size={size}, row={row}, col={col}, color={color}"
            expect_unchanged(before, images, f"{what}: `images`")
            slip = _name_patch_slip(got, before, size, row, col, color, want)
            if slip:
                raise AssertionError(f"{what}: {slip}")
            expect_tensor(got, want, what)
        return f"{len(cases)} cases"
    return run_check("add_patch_trigger", body)


def _trigger(images: torch.Tensor) -> torch.Tensor:
    """The check's trigger: a 2x2 white square in the top-left corner (float images only, like the course's)."""
    return stamp_patch(images, size=2, row=0, col=0)


def _poison_case(fn, x, y, **kw):
    """Call the learner's poisoning on (x, y); check its type and that x and y were left as they are."""
    x0, y0 = x.clone(), y.clone()
    got = call_learner(fn, x, y, _trigger, **kw)
    if not isinstance(got, PoisonedData):
        raise AssertionError(f"expected a cu.poison.PoisonedData(x, y, poisoned), got {type(got).__name__}")
    expect_unchanged(x0, x, f"x ({x.dtype})")
    expect_unchanged(y0, y, "y")
    if not (isinstance(got.poisoned, torch.Tensor) and got.poisoned.dtype == torch.bool and got.poisoned.shape == y.shape):
        raise AssertionError(f"poisoned must be a bool tensor of shape {tuple(y.shape)} (True where you poisoned), "
                             f"got {getattr(got.poisoned, 'dtype', type(got.poisoned).__name__)}")
    return got


def _compare_choice(got, want, y, kw, what) -> None:
    """Name what is wrong with the learner's choice of samples (count, candidates, draw)."""
    rate, target, mode = kw["rate"], kw["target"], kw["mode"]
    count, expected = int(got.poisoned.sum()), int(want.poisoned.sum())
    if count != expected:
        why = " (int() rounds down: use round())" if count == int(rate * len(y)) else ""
        raise AssertionError(f"{what}: you poisoned {count} samples, expected round(rate * N) = {expected}{why}")
    if mode == "all-to-one" and (y[got.poisoned] == target).any():
        raise AssertionError(f"{what}: {int((y[got.poisoned] == target).sum())} of your chosen samples already have "
                             f"the target label {target}; choose among the samples whose label is not the target")
    if mode == "all-to-all" and not (y[got.poisoned] == target).any() and (y[want.poisoned] == target).any():
        raise AssertionError(f"{what}: in all-to-all mode every sample is a candidate (each one's label changes), "
                             f"yours skipped class {target}")
    if not torch.equal(got.poisoned, want.poisoned):
        same = int((got.poisoned & want.poisoned).sum())
        raise AssertionError(
            f"{what}: your {count} samples are a valid-looking choice, but only {same} of them are the library's draw; "
            "permute the candidates (in increasing index order) with torch.randperm and a torch.Generator seeded "
            "with `seed`, and keep the first round(rate * N)")


def _compare_data(got, want, y, kw, what) -> None:
    """Name what is wrong with the poisoned images and labels."""
    if got.x.dtype == torch.uint8:
        raise AssertionError(f"{what}: x must come back as float in [0, 1]; convert uint8 images with cu.as_float")
    outside = ~want.poisoned
    if isinstance(got.x, torch.Tensor) and got.x.shape == want.x.shape and got.x.dtype == want.x.dtype:
        if not torch.equal(got.x[outside], want.x[outside]):
            raise AssertionError(f"{what}: samples you did not choose changed; apply the trigger to the chosen ones only")
    expect_tensor(got.x, want.x, f"{what}: x_poisoned (the chosen samples carry the trigger, the rest are as given)")
    if kw["mode"] == "all-to-all" and isinstance(got.y, torch.Tensor):
        top = kw["num_classes"]
        if (got.y >= top).any():
            raise AssertionError(f"{what}: a label {int(got.y.max())} appeared; class {top - 1} must wrap around to 0 "
                                 f"(k goes to (k + 1) mod num_classes)")
        if (got.y[want.poisoned] == kw["target"]).all() and not (want.y[want.poisoned] == kw["target"]).all():
            raise AssertionError(f"{what}: all-to-all sends class k to (k + 1) mod num_classes, not to the target")
    expect_tensor(got.y, want.y, f"{what}: y_poisoned (only the chosen samples change label)")


def check_poison_dataset(fn) -> bool:
    """fn(x, y, trigger, *, rate, target, mode, seed, num_classes) -> PoisonedData, as `cu.poison.poison_dataset`."""
    def body():
        g = torch.Generator().manual_seed(5)
        x8 = torch.randint(0, 256, (20, 1, 6, 6), dtype=torch.uint8, generator=g)  # uint8, as the notebook passes
        xf = torch.rand(20, 1, 6, 6, generator=g)
        y = torch.arange(20) % 5
        cases = [("uint8 images, all-to-one, rate 0.33", x8, dict(rate=0.33, target=1, mode="all-to-one", seed=3)),
                 ("float images, all-to-all, rate 0.5", xf, dict(rate=0.5, target=1, mode="all-to-all", seed=4)),
                 ("rate 0", xf, dict(rate=0.0, target=2, mode="all-to-one", seed=0)),
                 ("rate 1, all-to-all", x8, dict(rate=1.0, target=0, mode="all-to-all", seed=1))]
        for what, x, kw in cases:
            kw["num_classes"] = 5
            got = _poison_case(fn, x, y, **kw)
            again = _poison_case(fn, x, y, **kw)
            if not torch.equal(got.poisoned, again.poisoned):
                raise AssertionError(f"{what}: two calls with seed={kw['seed']} chose different samples; draw with a "
                                     "torch.Generator seeded with `seed`, not the global random state")
            want = poison_dataset(x, y, _trigger, **kw)
            _compare_choice(got, want, y, kw, what)
            _compare_data(got, want, y, kw, what)
        other = _poison_case(fn, x8, y, rate=0.33, target=1, mode="all-to-one", seed=4, num_classes=5)
        if torch.equal(other.poisoned, _poison_case(fn, x8, y, rate=0.33, target=1, mode="all-to-one", seed=3,
                                                     num_classes=5).poisoned):
            raise AssertionError("seeds 3 and 4 chose the same samples; the draw must depend on `seed`")
        try:
            call_learner(fn, x8, y, _trigger, rate=1.0, target=1, mode="all-to-one", seed=0, num_classes=5)
        except AssertionError as err:
            if not isinstance(err.__cause__, ValueError):
                raise
        else:
            raise AssertionError("all-to-one with rate 1.0 asks for more samples than there are of other classes: "
                                 "raise a ValueError that says so instead of poisoning fewer")
        return "uint8 and float, both label rules with wrap-around, rate 0 and 1, seeds, inputs untouched"
    return run_check("poison_dataset", body)
