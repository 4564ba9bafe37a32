"""Time `convscope.explain` on the real SqueezeNet 1.0 of ../shared: one photo, default layers, top 10 with heatmaps.

Prints the median and [min, max] over repeats (the machine's load changes absolute times, ratios
less) of explain() with the layers given, with and without heatmaps, each layer's share of the
heatmaps, the layer selection (dry runs for the receptive fields, once) and one plain forward +
backward of the photo as the unit of cost.

With ``--crp`` the same job runs side by side with zennit-crp (the peer, Achtibat et al. 2023):
ours with LRP epsilon-plus-flat and with gradient x activation against zennit-crp's
``CondAttribution`` with ``EpsilonPlusFlat`` for the layers' relevances plus, per layer, one call
with the top 10 units' conditions batched (its documented form: a list of condition dicts, one
per unit, broadcast over a batch), alternating round by round in one process.

With ``--against REV`` the same explain() calls of the code at git revision REV (its ``src``
exported with ``git archive``) run too, side by side: old and new alternate in subprocesses,
round by round, and the ratio old/new is printed per round.

    .venv/bin/python benchmarks/bench_explain.py [--photo PATH] [--repeats 3] [--against HEAD~1] [--rounds 3] [--crp]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PHOTO = str(SHARED / "data/imagenet-sample/n02088364_beagle.jpg")


def spread(times: list[float]) -> str:
    return f"{statistics.median(times):.2f} s [{min(times):.2f}, {max(times):.2f}]"


def measure(photo: str, repeats: int, detail: bool) -> dict:
    """Seconds of each repeat of explain() with and without heatmaps (after one warm-up call)."""
    import torch

    from convscope import explain, load_network, select_layers
    from convscope.explain import conditional_heatmaps

    net = load_network("torchvision:squeezenet1_0", SHARED / "models/squeezenet1_0-imagenet.pth")
    start = time.perf_counter()
    infos = select_layers(net.model, None, net.preprocess.input_size)
    found = {"select": time.perf_counter() - start, "layers": [i.name for i in infos], "full": [], "light": [], "plain": [], "per_layer": {}}
    result = explain(net, photo, layers=infos, top=10)
    for _ in range(repeats):
        for key, heat in (("full", True), ("light", False)):
            start = time.perf_counter()
            explain(net, photo, layers=infos, top=10, heatmaps=heat)
            found[key].append(time.perf_counter() - start)
        xx = net.model_input(torch.from_numpy(result.image).permute(2, 0, 1)[None]).requires_grad_(True)
        start = time.perf_counter()
        net.model(xx)[0, 0].backward()
        found["plain"].append(time.perf_counter() - start)
    if detail:  # each layer's heatmaps alone, once
        from convscope.explain import class_gradients

        x = net.model_input(torch.from_numpy(result.image).permute(2, 0, 1)[None])
        grads = class_gradients(net.model, x, [i.name for i in infos], None, {i.name: i.dims for i in infos})
        for info, layer in zip(infos, result.layers):
            start = time.perf_counter()
            conditional_heatmaps(net.model, x, info.name, grads.layers[info.name].gradient, [u.unit for u in layer.units], info.dims)
            found["per_layer"][info.name] = (len(layer.units), time.perf_counter() - start)
    found["threads"] = torch.get_num_threads()
    return found


def measure_crp(photo: str, repeats: int) -> dict:
    """Seconds per repeat of ours (LRP, gradient x activation) and zennit-crp doing the same job:
    the default layers' relevances for the predicted class, the top 10 units per layer, each with
    its conditional heatmap. Alternating, after one warm-up of each; also checks they agree."""
    import torch
    from crp.attribution import CondAttribution
    from crp.concepts import ChannelConcept
    from zennit.composites import EpsilonPlusFlat

    from convscope import explain, load_network, select_layers

    net = load_network("torchvision:squeezenet1_0", SHARED / "models/squeezenet1_0-imagenet.pth")
    infos = select_layers(net.model, None, net.preprocess.input_size)
    names = [i.name for i in infos]
    attribution = CondAttribution(net.model, no_param_grad=False)  # leaves the model's parameters as they are
    concept = ChannelConcept()

    def crp() -> dict[str, tuple[list[int], torch.Tensor]]:
        from convscope.explain.api import load_image

        x = net.model_input(torch.from_numpy(load_image(photo, net)).permute(2, 0, 1)[None]).requires_grad_(True)
        with torch.no_grad():
            target = int(net.model(x).argmax())
        found = attribution(x, [{"y": [target]}], EpsilonPlusFlat(), record_layer=names)
        out = {}
        for name in names:
            shares = concept.attribute(found.relevances[name], abs_norm=True)[0]
            units = [int(u) for u in torch.argsort(shares, descending=True, stable=True)[:10]]
            heat = attribution(x, [{name: [u], "y": [target]} for u in units], EpsilonPlusFlat()).heatmap
            out[name] = (units, heat)
        return out

    def ours(method: str):
        return explain(net, photo, layers=infos, top=10, method=method)

    theirs, mine = crp(), ours("lrp")  # warm-up, and the two agree
    agree = []
    for layer in mine.layers:
        units, heat = theirs[layer.layer]
        same = [u.unit for u in layer.units] == units[: len(layer.units)]
        diff = max(float((u.heatmap - h).abs().max() / h.abs().max().clamp_min(1e-30)) for u, h in zip(layer.units, heat))
        agree.append((layer.layer, same, diff))
    ours("gradient")
    found = {"layers": names, "lrp": [], "gradient": [], "crp": [], "agree": agree, "threads": torch.get_num_threads()}
    for _ in range(repeats):
        for key, job in (("lrp", lambda: ours("lrp")), ("crp", crp), ("gradient", lambda: ours("gradient"))):
            start = time.perf_counter()
            job()
            found[key].append(time.perf_counter() - start)
    return found


def run_side(src: Path, photo: str, repeats: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    code = f"import json, sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import bench_explain as b; print(json.dumps(b.measure({photo!r}, {repeats}, False)))"
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photo", default=PHOTO)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--against", help="a git revision whose explain() runs side by side")
    parser.add_argument("--rounds", type=int, default=3, help="with --against: old/new subprocess pairs")
    parser.add_argument("--crp", action="store_true", help="side by side with zennit-crp (pip install zennit-crp)")
    args = parser.parse_args()
    if args.crp:
        found = measure_crp(args.photo, args.repeats)
        print(f"threads {found['threads']}, {len(found['layers'])} layers: {', '.join(found['layers'])}; top 10 with heatmaps")
        for layer, same, diff in found["agree"]:
            print(f"  {layer}: same top units as zennit-crp: {same}; heatmaps differ by {diff:.1e} of their max")
        crp = statistics.median(found["crp"])
        for key, label in (("lrp", "ours, LRP epsilon-plus-flat"), ("gradient", "ours, gradient x activation"), ("crp", "zennit-crp, EpsilonPlusFlat")):
            ratios = [c / t for c, t in zip(found["crp"], found[key])]
            print(f"{label:30s} {spread(found[key])}  zennit-crp / this {crp / statistics.median(found[key]):.2f}x "
                  f"(per round [{min(ratios):.2f}, {max(ratios):.2f}])")
        return
    if args.against:
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "old.tar"
            subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), args.against, "src"], check=True)
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
            rounds = [(run_side(Path(tmp) / "src", args.photo, args.repeats), run_side(ROOT / "src", args.photo, args.repeats))
                      for _ in range(args.rounds)]
        for key, label in (("full", "with heatmaps"), ("light", "without heatmaps"), ("plain", "plain forward+backward")):
            old = [t for o, _ in rounds for t in o[key]]
            new = [t for _, n in rounds for t in n[key]]
            ratios = [statistics.median(o[key]) / statistics.median(n[key]) for o, n in rounds]
            print(f"{label:24s} old ({args.against}) {spread(old)}  new {spread(new)}  "
                  f"old/new per round {statistics.median(ratios):.2f}x [{min(ratios):.2f}, {max(ratios):.2f}]")
        return
    found = measure(args.photo, args.repeats, True)
    unit = statistics.median(found["plain"])
    print(f"threads {found['threads']}, {len(found['layers'])} layers: {', '.join(found['layers'])}")
    print(f"explain, top 10 with heatmaps:      {spread(found['full'])}  ({statistics.median(found['full']) / unit:.1f}x one forward+backward)")
    print(f"explain, top 10 without heatmaps:   {spread(found['light'])}  ({statistics.median(found['light']) / unit:.1f}x)")
    print(f"one plain forward+backward:         {spread(found['plain'])}")
    print(f"select_layers (once, dry runs):     {found['select']:.2f} s")
    print("heatmaps per layer (units, seconds): " + ", ".join(f"{n} {u} {s:.2f}" for n, (u, s) in found["per_layer"].items()))


if __name__ == "__main__":
    main()
