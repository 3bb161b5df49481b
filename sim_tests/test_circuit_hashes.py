"""The circuits qloom emits, pinned: the sha256 (first 16 hex digits) of top.v and of design.json
without its source path, for the shipped models, the bench models and a seeded concat network,
at 32 multipliers.  A change that is not meant to alter a circuit keeps these; one that is says
so in its commit and updates them here.  top.v is hashed without Amaranth's ``src`` attributes:
they hold the absolute path and line of the Python that made each signal, so they differ
between checkouts and move with any edit of hdl/ that alters no circuit."""
import hashlib
import json
import logging

import numpy as np
import pytest

from conftest import DIGITS
from qloom import synth
from qloom.compile import compile_model

# model: (top.v without src attributes, design.json without "source"), at 9341688; the CNNs
# since requantizers are shared over the lanes their producer hands them in turn
# (builder._Chain.shared_lanes) and the window generator's loop-end flags are registers
# (hdl/window.py), and their design.json since the window estimate was refitted to that; the
# residual CNNs and DS-CNN since a requantizer is serial only where that is the cheaper circuit;
# every top.v since RAMs carry no ram_style attribute (resources.placement); the CNNs' since
# the window generator tests a sign bit for its issue, and their design.json since the
# window estimate was refitted to that; the CNNs' top.v since the window generator can send
# several taps a beat (the same cells with one tap a beat, Yosys synth_ice40 on the digits CNN:
# its signals are named anew), and the digits residual CNN and concat network since a
# conv's simd may take taps (a faster folding at 32 multipliers), and their design.json since
# the estimate of a window of several taps a beat was fitted to Yosys; every top.v since the
# MVUs' and depthwise units' operand and product registers have no reset (datapath registers:
# Yosys's ice40_dsp then packs the weight register into SB_MAC16); those with float-emulation
# requantizers (the QOperator MLP, the residual CNN, AD) since their clamp is a stage of its own;
# every design.json since it says its load words and its estimate's SPRAMs (no top.v changed);
# ResNet-8's and AD's top.v since a serial requantizer's parameters may be 16-bit rows of one
# deeper ROM (RequantKernel.narrowed), and their and DS-CNN's design.json since a parameter
# ROM in block RAM is estimated without flip-flops for its read register (the block's own)
CIRCUITS = {
    "digits_mlp_qdq": ("57316ae71b3512a2", "827a73ab9dffb610"),
    "digits_mlp_qop": ("28c0531ef829143d", "70446e4d3763eeb8"),
    "digits_cnn_qdq": ("c59f4d74459b46e7", "52df29140584adfb"),
    "digits_resnet_qdq": ("81872b1e9e12ec31", "58fab36d82cc5ab9"),
    "concat_900_qdq": ("bac7463514e7bc27", "8725dc3fb61f3b66"),
    "ad_mlp_qdq": ("f4c1a71fe1066978", "7a3a6d3acd539e22"),
    "ds_cnn_qdq": ("2752342dbef22a3f", "7d17063c2c3b7ece"),
    "resnet8_qdq": ("b32ebafdbc1d7633", "ad29c667010cf0ce"),
}


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def model_path(name, folder):
    if name.startswith("digits_"):
        return DIGITS / f"{name}.onnx"
    if name == "concat_900_qdq":
        from conv_factory import quantize, random_concat
        rng = np.random.default_rng(900)
        model, shape = random_concat(rng, False)
        x = rng.normal(size=(4, *shape)).astype(np.float32)
        return quantize(model, folder / f"{name}.onnx", x, "QDQ", "uint8")
    from bench import models
    logging.getLogger().setLevel(logging.ERROR)      # quantize_static's pre-processing advice
    return models.make_ad_mlp(folder) if name == "ad_mlp_qdq" else models.make_cnn(name[:-4], folder)


@pytest.mark.parametrize("name", CIRCUITS)
def test_the_emitted_circuit_is_unchanged(name, tmp_path):
    design = compile_model(model_path(name, tmp_path), max_multipliers=32)
    info = design.dataflow.to_json()
    info.pop("source")
    assert (digest(synth.circuit(design.verilog)), digest(json.dumps(info, indent=2, sort_keys=True))) == CIRCUITS[name]
