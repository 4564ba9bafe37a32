"""Contract test over a representative set of timm ConvNets (random weights, reduced input sizes).

Each model is built by name through convscope's own ``timm:NAME`` source (random weights: no
download, the test refuses network connections) and meets the contract of
:func:`zoo_contract.check_contract`: listed shapes against a hooked forward, sampled receptive
fields against the input-gradient support on a float64 averaging copy, atlas boxes equal to the
units' own fields. Every model must have at least one default layer with a local field, so the
field check never passes vacuously.

One model per family people scan, the smallest variant timm has, plus the timm-specific layers the
geometry engine must follow: TF 'same' padding (``Conv2dSame``, asymmetric ``F.pad``), MixNet's
``MixedConv2d`` (channel split, kernels per group, cat), weight-standardised convs (NFNet's
``ScaledStdConv2d``, BiT's ``StdConv2d``), GhostNet's cat-then-slice, ReXNet's partial-channel
shortcut, re-parameterisable training-time branches (RepVGG, MobileOne, FastViT), DenseNet and
DPN's per-unit fields, HRNet's parallel branches, split attention (ResNeSt, SKNet).

timm has no SqueezeNet, ShuffleNet or GoogLeNet (the torchvision zoo test covers them);
Inception-v3 stands for the Inception family. Left out on purpose: transformer and attention
hybrids (ViT, Swin, MaxViT, EfficientViT, MobileViT, CoAtNet, LeViT) are not local ConvNets.

Where a field is not known (UNKNOWN) the contract checks only what is listed, by design: HRNet's
nearest upsampling in its fuse layers (a position's field depends on its row parity), and the
reflect padding of BlurPool2d (anti-aliased ResNet) inside a zero-padded stack.
"""

from __future__ import annotations

import socket
import warnings

import pytest

from convscope.network.load import load_network
from convscope.network.preprocess import Preprocess
from oracles import need_module
from tiny_models import write_images
from zoo_contract import check_contract

pytestmark = pytest.mark.slow
need_module("timm")

#: name -> input size (96 px unless the model needs more).
MODELS = {
    "resnet18": 96,  # ResNet
    "resnext26ts": 96,  # ResNeXt (ByobNet)
    "efficientnet_b0": 96,  # EfficientNet
    "tf_efficientnetv2_b0": 96,  # EfficientNetV2 with TF 'same' padding (Conv2dSame)
    "mobilenetv3_small_100": 96,  # MobileNetV3
    "mobilenetv4_conv_small": 96,  # MobileNetV4 (universal inverted residual)
    "convnext_atto": 96,  # ConvNeXt (LayerNorm2d, 7x7 depthwise)
    "regnetx_002": 96,  # RegNet
    "densenet121": 96,  # DenseNet (per-unit fields after concatenations)
    "inception_v3": 128,  # Inception (the smallest input with a 2 x 2 map at its last block)
    "vgg11": 96,  # VGG (its head is a 7x7 conv MLP over the map)
    "mnasnet_100": 96,  # MNASNet
    "ghostnet_100": 96,  # GhostNet (cat, then the first channels)
    "repvgg_a0": 96,  # RepVGG (training-time branches)
    "mobileone_s0": 96,  # MobileOne (training-time branches)
    "cspresnet50": 96,  # CSPNet (cross-stage split)
    "cs3darknet_s": 96,  # CSP DarkNet
    "dla34": 96,  # DLA (tree aggregation)
    "hrnet_w18_small": 96,  # HRNet (parallel branches, nearest upsampling)
    "res2net50_14w_8s": 96,  # Res2Net (hierarchical channel splits)
    "mixnet_s": 96,  # MixNet (MixedConv2d)
    "rexnet_100": 96,  # ReXNet (shortcut over the first channels only)
    "lcnet_050": 96,  # PP-LCNet
    "fastvit_t8": 96,  # FastViT (RepMixer: conv token mixing)
    "nf_resnet26": 96,  # NF-ResNet (ScaledStdConv2d)
    "resnetv2_50x1_bit": 96,  # BiT (StdConv2d, GroupNorm)
    "xception41": 96,  # Xception (separable convs)
    "dpn48b": 96,  # DPN (dual paths)
    "ese_vovnet19b_dw": 96,  # VoVNet (one-shot aggregation)
    "hgnetv2_b0": 96,  # HGNetV2
    "skresnet18": 96,  # SKNet (selective kernels)
    "resnest14d": 96,  # ResNeSt (split attention)
    "resnetblur18": 96,  # anti-aliased ResNet (BlurPool2d, reflect padding)
    "pnasnet5large": 96,  # PNASNet (TF 'same' max-pools: MaxPool2dSame, ZeroPad2d shifts)
}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo-images")
    write_images(root, 4, 100, seed=7)
    return root


def _refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
    raise AssertionError("the zoo test builds timm models with random weights: nothing may be downloaded")


@pytest.mark.parametrize("name", list(MODELS))
def test_zoo_timm_model(name, images, tmp_path, monkeypatch):
    size = MODELS[name]
    with monkeypatch.context() as m, warnings.catch_warnings():
        m.setattr(socket.socket, "connect", _refuse)
        warnings.simplefilter("ignore")
        network = load_network(f"timm:{name}", preprocess=Preprocess(input_size=(size, size), resize=size))
    assert network.weights is None
    assert check_contract(network, size, images, tmp_path) > 0, f"{name}: no default layer has a local field to check"
