"""cocotb test module that streams frames through the emitted Verilog.

Configured by the JSON file named in QLOOM_SIM_CONFIG (written by qloom.simulate):
input beats as lane codes, lanes and widths of both ports, the random idle/backpressure
probabilities and seed, and the words of the design's load stream (weights in SPRAM), sent
from the start with the input's idle cycles.  Writes output beats (lane codes) and the cycle of every accepted
input and output beat."""
import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge


def pack(lanes, bits):
    word = 0
    for k, v in enumerate(lanes):
        word |= (int(v) & ((1 << bits) - 1)) << (k * bits)
    return word


def unpack(word, lanes, bits, signed):
    out = []
    for k in range(lanes):
        v = (word >> (k * bits)) & ((1 << bits) - 1)
        out.append(v - (1 << bits) if signed and v >> (bits - 1) else v)
    return out


@cocotb.test()
async def stream_frames(dut):
    with open(os.environ["QLOOM_SIM_CONFIG"]) as f:
        cfg = json.load(f)
    beats = np.load(cfg["inputs"])
    words = [pack(b, cfg["bits_in"]) for b in beats]
    rng = random.Random(cfg["seed"])
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    load = [int(w) for w in np.load(cfg["load"])] if cfg.get("load") else []
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    if load:
        dut.load__valid.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0

    out, in_cycles, out_cycles = [], [], []
    index, presenting, cycle = 0, False, 0
    loaded, loading = 0, False
    while len(out) < cfg["n_out"]:
        await RisingEdge(dut.clk)
        cycle += 1
        if cycle > cfg["max_cycles"]:
            raise TimeoutError(f"{len(out)} of {cfg['n_out']} output beats after {cycle} cycles: the design stalls")
        if not presenting and index < len(words) and rng.random() >= cfg["gap"]:
            presenting = True
            dut.i__payload.value = words[index]
        dut.i__valid.value = int(presenting)
        if not loading and loaded < len(load) and rng.random() >= cfg["gap"]:
            loading = True
            dut.load__payload.value = load[loaded]
        if load:
            dut.load__valid.value = int(loading)
        ready = rng.random() >= cfg["stall"]
        dut.o__ready.value = int(ready)
        await ReadOnly()
        if presenting and dut.i__ready.value:
            in_cycles.append(cycle)
            index += 1
            presenting = False
        if loading and dut.load__ready.value:
            loaded += 1
            loading = False
        if ready and dut.o__valid.value:
            out.append(unpack(int(dut.o__payload.value), cfg["lanes_out"], cfg["bits_out"], cfg["signed_out"]))
            out_cycles.append(cycle)
    np.save(cfg["outputs"], np.array(out, dtype=np.int64).reshape(len(out), cfg["lanes_out"]))
    with open(cfg["cycles"], "w") as f:
        json.dump({"in": in_cycles, "out": out_cycles}, f)
