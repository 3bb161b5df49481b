"""The requantization planning pass: for every Requant node of a QGraph, the proven plan
(requant.plan: the cheapest integer circuit shown equal to the node's target on the layer's
whole accumulator range), and for every Add its proven line (requant.plan_add).  Refuses a
graph beyond limits.CHANNELS or limits.PLANNER_STEPS before any proof; a report may instead
ask for the layers over the bounds to be marked NotProven."""
from dataclasses import dataclass

import numpy as np

from . import limits, qgraph as qg
from .numeric import signed_bits
from .requant import plan, plan_add


@dataclass(frozen=True, eq=False)
class NotProven:
    """A layer a report leaves unproven: beyond limits.CHANNELS, or past what is left of
    limits.PLANNER_STEPS (``why``)."""
    acc_lo: np.ndarray
    acc_hi: np.ndarray
    why: str
    impl = None

    @property
    def kind(self):
        return f"not proven ({self.why})"

    @property
    def acc_bits(self):
        return signed_bits(self.acc_lo, self.acc_hi)


def plans(graph, partial=False):
    """The proven requantization plan of every Requant node and the line of every Add, by name.
    Refused (limits.LimitError) before any proof beyond limits.CHANNELS or limits.PLANNER_STEPS;
    with ``partial`` (a report) such layers get a NotProven instead, and the proofs made stay
    within PLANNER_STEPS in all."""
    jobs = {job[0].name: job for job in limits.planner_jobs(graph)}
    if not partial:
        for error in limits.planner_violations(graph, jobs=jobs.values()):
            raise error
    budget = limits.PLANNER_STEPS.value
    result = {}
    for node in graph.nodes:
        if isinstance(node, qg.Add):
            result[node.name] = plan_add(node, graph.code_range(node.inputs[0]),
                                         graph.code_range(node.inputs[1]))
        elif isinstance(node, qg.Requant):
            _, _, acc_lo, acc_hi = jobs[node.name]
            if partial:
                steps = limits.planner_steps(node.target, acc_lo, acc_hi) \
                    if node.channels <= limits.CHANNELS.value else None
                if steps is None or steps > budget:
                    why = (f"{node.channels:,} channels, over {limits.CHANNELS.value:,}"
                           if steps is None else f"{steps:,} steps, over the {budget:,} left")
                    result[node.name] = NotProven(acc_lo, acc_hi, why)
                    continue
                budget -= steps
            result[node.name] = plan(node.target, acc_lo, acc_hi, label=node.label)
    return result
