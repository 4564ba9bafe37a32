"""Style transfer: convscope's default optimisation against the PyTorch tutorial's recipe, same objective.

The recipe of the official tutorial "Neural Transfer Using PyTorch" is written out here
independently of convscope: a copy of the network truncated after the deepest loss
layer with out-of-place ReLUs, forward hooks on the loss layers, Gram matrices
``F Fᵀ / (C H W)``, MSE losses, style weight 1e6 summed over the style layers, content
weight 1, ``torch.optim.LBFGS`` with its defaults (lr 1, 20 iterations per step), the
pixels clamped to [0, 1] in every closure, stopped after 300 closure calls, from the
content image, at 256 px. Its final total loss is the bar.

convscope then optimises *the same objective* (same layers, same weights with
``normalize=False``, same images, same size) with its default optimisation (L-BFGS
without line search, restarted from the best point when a step diverges), and again with
a coarse-to-fine pyramid; the clock stops at the first step of
the final level whose loss is at or below the tutorial's final loss. Both objectives
are also evaluated on each other's final image by the tutorial's code, to show they
are one objective. Each way runs ``--repeats`` times, alternating; the script prints
the ratio of the medians with the spread.

For the real ImageNet SqueezeNet of ../shared the layers are convscope's defaults for it
(style features.0, 4, 7, 9, 12; content features.8); ``--model torchvision:vgg19
--weights FILE`` uses Gatys's VGG layers (the tutorial's own network) where weights are
at hand. Also printed, for the final images of both ways: each style layer's Gram loss
end/start, and the rank of the photo's class in the classifier's output (does the
network still see the content?).

Run: ``python benchmarks/bench_style.py [--repeats 3] [--pyramid 3] [--steps 300]``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from convscope.network.load import load_network
from convscope.style import default_style_layers, quality, stylise
from convscope.style.layers import resolve

SHARED = Path(__file__).resolve().parents[2] / "shared"
PHOTO = SHARED / "data" / "imagenet-sample" / "n01514668_cock.jpg"
PAINTING = SHARED / "data" / "paintings" / "starry_night.jpg"
MODEL = SHARED / "models" / "squeezenet1_0-imagenet.pth"
STYLE_WEIGHT, CONTENT_WEIGHT, CLOSURE_CALLS = 1e6, 1.0, 300


class Reached(Exception):
    """Raised from the progress callback when convscope's loss reaches the bar."""


def load(path: Path, hw: tuple[int, int]) -> torch.Tensor:
    """``(1, 3, H, W)`` in [0, 1], resized with PIL's bicubic filter."""
    image = Image.open(path).convert("RGB").resize((hw[1], hw[0]), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None].contiguous()


def fit(path: Path, size: int) -> tuple[int, int]:
    w, h = Image.open(path).size
    return round(h * size / max(w, h)), round(w * size / max(w, h))


class TutorialLoss:
    """The tutorial's objective on a truncated, out-of-place copy of ``model.features``."""

    def __init__(self, model: nn.Module, mean, std, content_layers, style_layers, content, style) -> None:
        indices = [int(name.split(".")[1]) for name in content_layers + style_layers]
        features = copy.deepcopy(model.features[: max(indices) + 1])
        for i, m in enumerate(features):
            if isinstance(m, nn.ReLU):
                features[i] = nn.ReLU(inplace=False)
        for sub in features.modules():
            if sub.__class__.__name__ == "Fire":  # SqueezeNet's Fire keeps its own in-place ReLUs
                for name, child in sub.named_children():
                    if isinstance(child, nn.ReLU):
                        setattr(sub, name, nn.ReLU(inplace=False))
        self.features = features.eval().requires_grad_(False)
        self.mean, self.std = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
        self.content_idx = [int(n.split(".")[1]) for n in content_layers]
        self.style_idx = [int(n.split(".")[1]) for n in style_layers]
        with torch.no_grad():
            f = self.outputs(content)
            self.content_targets = [f[i] for i in self.content_idx]
            f = self.outputs(style)
            self.style_targets = [self.gram(f[i]) for i in self.style_idx]

    @staticmethod
    def gram(x: torch.Tensor) -> torch.Tensor:
        a, b, c, d = x.shape
        flat = x.view(a * b, c * d)
        return flat @ flat.t() / (a * b * c * d)

    def outputs(self, img: torch.Tensor) -> dict[int, torch.Tensor]:
        x, out = (img - self.mean) / self.std, {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            out[i] = x
        return out

    def parts(self, img: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
        f = self.outputs(img)
        content = sum(F.mse_loss(f[i], t) for i, t in zip(self.content_idx, self.content_targets))
        styles = [F.mse_loss(self.gram(f[i]), t) for i, t in zip(self.style_idx, self.style_targets)]
        return CONTENT_WEIGHT * content + STYLE_WEIGHT * sum(styles), [float(s.detach()) for s in styles]

    def __call__(self, img: torch.Tensor) -> float:
        with torch.no_grad():
            return float(self.parts(img)[0])


def tutorial(objective: TutorialLoss, content: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The tutorial's loop; returns the final image and the seconds it took."""
    began = time.perf_counter()
    img = content.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([img])
    calls = [0]

    def closure() -> torch.Tensor:
        with torch.no_grad():
            img.clamp_(0, 1)
        optimizer.zero_grad()
        loss = objective.parts(img)[0]
        loss.backward()
        calls[0] += 1
        return loss

    while calls[0] < CLOSURE_CALLS:
        optimizer.step(closure)
    with torch.no_grad():
        img.clamp_(0, 1)
    return img.detach(), time.perf_counter() - began


def convscope_until(network, content_layers, style_layers, bar: float, steps: int, pyramid: int, size: int):
    """convscope's default optimisation of the same objective, stopped when its loss reaches ``bar``."""
    began = time.perf_counter()
    final_from = (pyramid - 1) * steps
    reached = {}

    def progress(step: int, losses) -> None:
        if step > final_from and losses.total <= bar:
            reached["seconds"], reached["step"] = time.perf_counter() - began, step
            raise Reached

    try:
        result = stylise(
            network, PHOTO, PAINTING, content_layers=content_layers, style_layers=style_layers, normalize=False,
            content_weight=CONTENT_WEIGHT, style_weight=STYLE_WEIGHT * len(style_layers), size=size,
            steps=steps, pyramid=pyramid, progress=progress,
        )
        return result.image, None, None, time.perf_counter() - began
    except Reached:
        return None, reached["step"], reached["seconds"], None


def class_rank(model: nn.Module, mean, std, img: torch.Tensor, label: int) -> int:
    with torch.no_grad():
        x = F.interpolate(img, size=(224, 224), mode="bilinear", align_corners=False)
        logits = model(((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)))
    return int((logits[0] > logits[0, label]).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="torchvision:squeezenet1_0")
    parser.add_argument("--weights", default=str(MODEL))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300, help="convscope steps per pyramid level (an upper bound: it stops at the bar)")
    parser.add_argument("--pyramid", type=int, default=3, help="levels of the pyramid configuration measured beside the default (1)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not PHOTO.exists() or not Path(args.weights).exists():
        raise SystemExit(f"needs ../shared ({PHOTO}) and the weights {args.weights}")
    torch.set_num_threads(2)
    network = load_network(args.model, args.weights)
    model, pre = network.model.eval(), network.preprocess
    hw = fit(PHOTO, args.size)
    content_layers, style_layers = default_style_layers(model, hw)
    content_layers, style_layers = resolve(model, content_layers), resolve(model, style_layers)
    print(f"{args.model}: content {content_layers}, style {style_layers}, {hw[0]}x{hw[1]} px, torch threads {torch.get_num_threads()}")
    objective = TutorialLoss(model, pre.mean, pre.std, content_layers, style_layers, load(PHOTO, hw), load(PAINTING, fit(PAINTING, args.size)))
    content = load(PHOTO, hw)
    start = objective(content)

    configs = {"default": (args.steps, 1), f"pyramid {args.pyramid}": (args.steps, args.pyramid)}
    times_tutorial, times_ours = [], {name: [] for name in configs}
    for repeat in range(args.repeats):
        final, seconds = tutorial(objective, content)
        bar = objective(final)
        times_tutorial.append(seconds)
        print(f"repeat {repeat}: tutorial {seconds:.1f} s from loss {start:.4g} to {bar:.4g}")
        for name, (steps, pyramid) in configs.items():
            _, step, reached, full = convscope_until(network, content_layers, style_layers, bar, steps, pyramid, args.size)
            times_ours[name].append(reached if reached is not None else float("inf"))
            print(f"  convscope {name}: " + (f"reached it at step {step} in {reached:.2f} s" if reached is not None else f"did not reach it in {pyramid} x {steps} steps ({full:.1f} s)"))

    for name, times in times_ours.items():
        each = [o / t for o, t in zip(times, times_tutorial)]
        ratio = statistics.median(times) / statistics.median(times_tutorial)
        print(f"convscope {name} / tutorial, time to the tutorial's final loss: {ratio:.3f} (median; per repeat {min(each):.3f}-{max(each):.3f}); target <= 0.333")

    run = stylise(
        network, PHOTO, PAINTING, content_layers=content_layers, style_layers=style_layers, normalize=False,
        content_weight=CONTENT_WEIGHT, style_weight=STYLE_WEIGHT * len(style_layers), size=args.size, steps=0,
    )
    print(f"one objective: on the photo the tutorial's code gives {start:.6g}, convscope's {run.start.total:.6g}")

    # The product's own defaults (normalised losses), judged by its quality record and by the classifier.
    label = sorted(p.name.split("_")[0] for p in PHOTO.parent.glob("*.jpg")).index(PHOTO.name.split("_")[0])
    began = time.perf_counter()
    default = stylise(network, PHOTO, PAINTING, size=args.size, steps=args.steps)
    seconds = time.perf_counter() - began
    check = quality(default)
    pixels = torch.from_numpy(default.image.astype(np.float32) / 255).permute(2, 0, 1)[None]
    print(f"convscope defaults ({args.steps} steps, {seconds:.1f} s): " + "; ".join(check.lines()))
    print(f"  style end/start {', '.join(f'{k} {v:.4f}' for k, v in check.style.items())}")
    print(f"  style floor/start (the painting at the result's shape) {', '.join(f'{k} {v:.4f}' for k, v in check.floor.items())}")
    print(f"  rank of the photo's class: photo {class_rank(model, pre.mean, pre.std, content, label)}, "
          f"tutorial result {class_rank(model, pre.mean, pre.std, final, label)}, convscope result {class_rank(model, pre.mean, pre.std, pixels, label)} (0 = top-1)")


if __name__ == "__main__":
    main()
