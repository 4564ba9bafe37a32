"""Feature visualisation on tiny hand-built units whose preferred pattern is known."""

import contextlib

import numpy as np
import pytest
import torch
from torch import nn

from convscope.errors import LayerError
from convscope.featurevis import Robustness, colour_matrix, visualise
from convscope.featurevis import optimise as optimise_module
from convscope.network.load import Network
from convscope.network.preprocess import Preprocess

EDGE = torch.tensor([[-1.0, -1.0, 0.0, 1.0, 1.0]] * 5)  # a vertical edge, dark left, bright right


def net(model: nn.Module, size: int = 32) -> Network:
    return Network(model=model.eval(), source="tiny", preprocess=Preprocess(input_size=(size, size), resize=None, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)))


def edge_and_colour() -> nn.Module:
    """Unit 0: a grey vertical-edge filter (5x5); unit 1: red minus green (at the centre tap); unit 2: silent behind a ReLU."""
    conv = nn.Conv2d(3, 3, 5, padding=2)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[0] = EDGE / 3
        conv.weight[1, 0, 2, 2], conv.weight[1, 1, 2, 2] = 1.0, -1.0
        conv.weight[2, :, 2, 2] = 0.1
        conv.bias[2] = -0.25  # -0.25 on mid-grey (0 after normalisation), where the optimisation starts; up to +0.05 on white
    return nn.Sequential(conv, nn.ReLU())


def hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_the_optimised_image_shows_the_units_pattern():
    vis = visualise(net(edge_and_colour()), "1", [0, 1], steps=96, seed=0)
    assert vis.images.shape == (2, 32, 32, 3) and vis.images.dtype == np.uint8
    centre = vis.images[:, 14:19, 14:19].astype(np.float64) / 255  # the 5x5 field of the centre position
    grey = centre[0].mean(axis=2)
    corr = np.corrcoef(grey.ravel(), EDGE.numpy().ravel())[0, 1]
    # The maximum of a linear filter over pixels in [0, 1] is the filter's sign pattern (correlation 1
    # over the ±1 columns); random shifts and rotations during the optimisation blur it a little.
    assert corr > 0.8, corr
    r, g = centre[1, 2, 2, 0], centre[1, 2, 2, 1]
    assert r > 0.8 and g < 0.2, (r, g)  # red, not green, where the colour-opponent unit looks


def test_a_unit_silent_behind_a_relu_is_brought_to_life(monkeypatch):
    model = edge_and_colour()
    live = visualise(net(model), "1", [2], steps=64)
    assert live.reached[0] > 0.01
    # Without the redirected ReLU the gradient is zero from the first step: the unit stays at exactly zero.
    monkeypatch.setattr(optimise_module, "modified_relus", lambda model, rule: contextlib.nullcontext())
    dead = visualise(net(model), "1", [2], steps=64)
    assert dead.reached[0] == 0


def test_negative_objective_finds_the_opposite_edge():
    model = nn.Sequential(edge_and_colour()[0])  # no ReLU: the filter's output can go negative
    high = visualise(net(model), "0", [0], steps=64)
    low = visualise(net(model), "0", [0], steps=64, negative=True)
    assert high.objective[0] > 0 and low.objective[0] > 0  # the objective carries the sign
    grey = low.images[0, 14:19, 14:19].astype(np.float64).mean(axis=2)
    assert np.corrcoef(grey.ravel(), EDGE.numpy().ravel())[0, 1] < -0.8


def test_diversity_pushes_images_of_one_unit_apart():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))
    plain = visualise(net(model), "2", [0], per_unit=2, steps=48, seed=3, where="map")
    diverse = visualise(net(model), "2", [0], per_unit=2, steps=48, seed=3, where="map", diversity_weight=5.0)

    def gram_cosine(vis):
        x = torch.from_numpy(vis.images).permute(0, 3, 1, 2).float() / 255
        with torch.no_grad():
            f = model[:1]((x - 0.5) / 0.5).flatten(2)
        g = torch.bmm(f, f.transpose(1, 2)).flatten(1)
        return float(torch.nn.functional.cosine_similarity(g[0], g[1], dim=0))

    assert gram_cosine(diverse) < gram_cosine(plain)
    assert vis_units(diverse) == [0, 0]


def vis_units(vis):
    return vis.units.tolist()


def test_seeded_runs_are_identical_and_seeds_differ():
    model = edge_and_colour()
    a = visualise(net(model), "1", [0, 1], steps=8, seed=4)
    b = visualise(net(model), "1", [0, 1], steps=8, seed=4)
    c = visualise(net(model), "1", [0, 1], steps=8, seed=5)
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)


def test_transforms_are_drawn_per_image():
    x = torch.rand(1, 3, 16, 16).expand(4, 3, 16, 16).contiguous()
    moved = Robustness().apply(x, torch.Generator().manual_seed(0))
    assert not torch.allclose(moved[0], moved[1])  # the same image, moved differently


def test_hooks_and_mode_are_restored_after_success_and_after_an_exception():
    model = edge_and_colour().train()
    visualise(Network(model, "tiny", Preprocess(input_size=(32, 32), resize=None)), "1", [0], steps=2)
    assert hooks(model) == 0 and model.training and all(p.requires_grad for p in model.parameters())

    def boom(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        visualise(Network(model, "tiny", Preprocess(input_size=(32, 32), resize=None)), "1", [0], steps=5, progress=boom)
    assert hooks(model) == 0 and model.training and all(p.requires_grad for p in model.parameters())
    assert torch.relu(torch.tensor([-1.0], requires_grad=True)).sum().grad_fn is not None  # no leftover mode


def test_bad_input_gives_one_clear_error():
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(2 * 30 * 30, 2))
    network = net(model)
    with pytest.raises(LayerError, match="no layer named 'nope'"):
        visualise(network, "nope", [0])
    with pytest.raises(LayerError, match="has 2 units; no unit 5"):
        visualise(network, "0", [5])
    with pytest.raises(LayerError, match="spatial map"):
        visualise(network, "2", [0], steps=1)


def test_colour_matrix_from_images_is_the_root_of_their_covariance():
    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
    m = colour_matrix(pixels).double()
    flat = np.concatenate([p.reshape(-1, 3) / 255 for p in pixels])
    cov = torch.from_numpy(np.cov(flat, rowvar=False))
    scale = cov.trace() / (m @ m.T).trace()  # m is the root up to the normalisation of its largest column
    assert torch.allclose(m @ m.T * scale, cov, atol=1e-6)
