"""stylise on tiny hand-built nets: losses fall, fixed points stay, seeds repeat, hooks go, bad input is refused."""

import numpy as np
import pytest
import torch

from convscope.errors import ConvscopeError, DataError, GeometryError, LayerError
from convscope.style import gram, stylise
from style_nets import network, photo, stripes, tiny_valid

STYLE = photo(32, 32, seed=5)
LAYERS = {"content_layers": ["features.5"], "style_layers": ["features.0", "features.2", "features.5"]}


def hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_losses_decrease(optimizer):
    net = network()
    result = stylise(net, photo(), STYLE, size=32, steps=10, optimizer=optimizer, lr=0.05 if optimizer == "adam" else None, **LAYERS)
    assert result.image.dtype == np.uint8 and result.image.shape == (26, 32, 3)  # long side 32, aspect of 32x40
    assert result.end.total < 0.2 * result.start.total
    assert sum(result.end.style.values()) < sum(result.start.style.values())
    assert len(result.history) == 10
    assert set(result.style_ratios()) == set(LAYERS["style_layers"])


def test_style_equal_to_content_leaves_the_image_nearly_unchanged():
    img = photo(32, 32)
    result = stylise(network(), img, img, size=32, steps=5, **LAYERS)
    assert result.start.total == pytest.approx(0.0, abs=1e-6)
    assert np.abs(result.image.astype(int) - img.astype(int)).max() <= 2


def test_floor_is_the_style_image_at_the_results_shape_against_the_target():
    net = network()
    result = stylise(net, photo(), STYLE, size=32, steps=2, **LAYERS)
    assert result.floor == result.reference.style  # one style image: the painting the content ratios use
    bare = stylise(net, photo(), [STYLE, STYLE], size=32, steps=0, **LAYERS)
    assert bare.floor == pytest.approx(result.floor)
    assert result.floor_ratios() == {k: pytest.approx(v / result.start.style[k]) for k, v in result.floor.items()}
    assert result.to_dict()["style_floor"] == result.floor
    # the style image square (32 x 32) but the result 26 x 32: the painting resized scores above zero
    assert all(v > 0 for v in result.floor.values())
    same = stylise(net, STYLE, STYLE, size=32, steps=0, **LAYERS)  # the result has the painting's own shape
    assert max(same.floor.values()) == pytest.approx(0.0, abs=1e-9)


def test_texture_from_noise_matches_the_style_grams():
    result = stylise(network(), None, STYLE, size=32, init="noise", steps=20, style_layers=["features.0", "features.2"])
    ratios = result.style_ratios()
    assert max(ratios.values()) < 0.05, ratios
    assert result.content_layers == [] or result.end.content == {}


def test_texture_gram_matches_an_independent_computation():
    net = network()
    result = stylise(net, None, STYLE, size=32, init="noise", steps=20, style_layers=["features.0"])
    conv = net.model.features[0]
    to_x = lambda im: (torch.from_numpy(im).permute(2, 0, 1)[None].float() / 255 - torch.tensor(net.preprocess.mean).view(1, 3, 1, 1)) / torch.tensor(net.preprocess.std).view(1, 3, 1, 1)  # noqa: E731
    with torch.no_grad():
        g_out, g_style = gram(conv(to_x(result.image))), gram(conv(to_x(STYLE)))
        g_noise = gram(conv(to_x(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8))))
    assert float((g_out - g_style).pow(2).mean()) < 0.1 * float((g_noise - g_style).pow(2).mean())


def test_seeded_runs_are_identical_and_seeds_differ():
    a = stylise(network(), photo(), STYLE, size=16, init="noise", seed=3, steps=2, optimizer="adam", **LAYERS)
    b = stylise(network(), photo(), STYLE, size=16, init="noise", seed=3, steps=2, optimizer="adam", **LAYERS)
    c = stylise(network(), photo(), STYLE, size=16, init="noise", seed=4, steps=2, optimizer="adam", **LAYERS)
    assert np.array_equal(a.image, b.image) and a.history == b.history
    assert not np.array_equal(a.image, c.image)


def test_hooks_are_removed_and_model_restored_after_success_and_after_an_exception():
    net = network()
    net.model.train()
    net.model.fc.weight.requires_grad_(False)
    before = hooks(net.model)
    stylise(net, photo(), stripes(), size=24, steps=2, **LAYERS)
    assert hooks(net.model) == before == 0
    assert net.model.training and net.model.features[0].weight.requires_grad and not net.model.fc.weight.requires_grad

    def fail(module, inputs, output):  # inside an optimisation forward, after our hook on features.0 ran
        if torch.is_grad_enabled():
            assert hooks(net.model) > 1  # ours were there while it ran
            raise ValueError("boom")

    net.model.features[1].register_forward_hook(fail)
    with pytest.raises(ValueError, match="boom"):
        stylise(net, photo(), stripes(), size=24, steps=3, **LAYERS)
    net.model.features[1]._forward_hooks.clear()
    assert hooks(net.model) == 0
    assert net.model.training and net.model.features[0].weight.requires_grad


def test_forward_stops_after_the_deepest_layer():
    net = network()
    ran = []
    net.model.fc.register_forward_hook(lambda *a: ran.append(1) if torch.is_grad_enabled() else None)  # not the dry runs
    stylise(net, photo(), stripes(), size=24, steps=1, content_layers=["features.2"], style_layers=["features.0"])
    assert ran == []


def test_several_style_images_and_pyramid():
    result = stylise(network(), photo(), [stripes(), photo(seed=5)], style_image_weights=[2, 1], size=32, steps=3, pyramid=2, **LAYERS)
    assert result.image.shape == (26, 32, 3) and len(result.history) == 6


def test_bad_inputs_give_one_clear_error(tmp_path):
    net = network()
    with pytest.raises(DataError, match="does not exist"):
        stylise(net, tmp_path / "missing.jpg", stripes(), size=32, **LAYERS)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read the style image"):
        stylise(net, photo(), tmp_path / "bad.png", size=32, **LAYERS)
    with pytest.raises(LayerError, match="no layer named 'features.99'"):
        stylise(net, photo(), stripes(), size=32, content_layers=["features.99"], style_layers=["features.0"])
    with pytest.raises(LayerError, match="rows and cols"):
        stylise(net, photo(), stripes(), size=32, content_layers=["features.0"], style_layers=["fc"])
    with pytest.raises(GeometryError, match="larger"):
        stylise(network(tiny_valid()), photo(), stripes(), size=8, content_layers=["2"], style_layers=["0", "2"])
    with pytest.raises(GeometryError):
        stylise(net, photo(), stripes(), size=4, **LAYERS)
    with pytest.raises(ConvscopeError, match="init"):
        stylise(net, None, stripes(), size=32, **LAYERS)
    with pytest.raises(ConvscopeError, match="optimizer"):
        stylise(net, photo(), stripes(), size=32, optimizer="sgd", **LAYERS)
    assert hooks(net.model) == 0


def test_lbfgs_recovers_from_a_diverging_step(monkeypatch):
    from convscope.style import transfer

    # A step ten times too long sends plain L-BFGS (no line search) far away for good ...
    monkeypatch.setattr(transfer, "DIVERGED", float("inf"))
    plain = stylise(network(), photo(), STYLE, size=32, steps=30, lr=10.0, **LAYERS)
    assert plain.end.total > plain.start.total
    # ... while the restart from the best point with half the step brings it down.
    monkeypatch.undo()
    guarded = stylise(network(), photo(), STYLE, size=32, steps=30, lr=10.0, **LAYERS)
    assert guarded.end.total < 0.05 * guarded.start.total
