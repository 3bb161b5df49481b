"""Streams through a component in amaranth.sim: a driver with random idle cycles, a monitor
with random backpressure, both seeded; the caller supplies the model and checks."""
import random

from amaranth.sim import Simulator


def run(dut, beats_in, n_beats_out, *, seed=0, gap=0.0, stall=0.0, max_cycles=200_000, load=()):
    """Feed ``beats_in`` (lists of lane values) to ``dut.i``, and ``load`` (words) to
    ``dut.load`` from the start (hdl.spram.Loaded), both with idle cycles; collect
    ``n_beats_out`` beats from ``dut.o``.  Returns (beats_out, cycle at which each output beat
    was accepted)."""
    out, when = [], []
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def driver(ctx):
        rng = random.Random(seed)
        for beat in beats_in:
            while rng.random() < gap:
                await ctx.tick()
            ctx.set(dut.i.payload, beat)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def monitor(ctx):
        rng = random.Random(seed + 1)
        cycle = 0
        lanes = dut.o.payload.shape().length
        while len(out) < n_beats_out:
            ready = rng.random() >= stall
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            cycle += 1
            if ready and valid:
                out.append([payload[k] for k in range(lanes)])
                when.append(cycle)
            if cycle > max_cycles:
                raise TimeoutError(f"{len(out)} of {n_beats_out} beats after {max_cycles} cycles")

    async def loader(ctx):
        rng = random.Random(seed + 2)
        for word in load:
            while rng.random() < gap:
                await ctx.tick()
            ctx.set(dut.load.payload, word)
            ctx.set(dut.load.valid, 1)
            await ctx.tick().until(dut.load.ready)
            ctx.set(dut.load.valid, 0)

    sim.add_testbench(driver, background=True)
    if load:
        sim.add_testbench(loader, background=True)
    sim.add_testbench(monitor)
    sim.run()
    return out, when
