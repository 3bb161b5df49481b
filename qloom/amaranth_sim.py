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

    def driver(port, beats, rng):
        async def drive(ctx):
            for beat in beats:
                while rng.random() < gap:
                    await ctx.tick()
                ctx.set(port.payload, beat)
                ctx.set(port.valid, 1)
                await ctx.tick().until(port.ready)
                ctx.set(port.valid, 0)
        return drive

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

    sim.add_testbench(driver(dut.i, beats_in, random.Random(seed)), background=True)
    if load:
        sim.add_testbench(driver(dut.load, load, random.Random(seed + 2)), background=True)
    sim.add_testbench(monitor)
    sim.run()
    return out, when
