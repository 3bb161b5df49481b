"""The Dataflow graph's kernels, one module per family beside its twin in hdl/ (DESIGN.md §3):
every kernel implements the protocol of ``base.Kernel``."""
from .base import Kernel, chain_beat_times, flat, paced, path_needs, produced
from .join import AddKernel, ConcatKernel, Join, ResidualKernel
from .mvu import DepthwiseKernel, MVUKernel, dsp_slices, fifo_depth, mvu_latency, mvu_tree_stages
from .requant import RequantKernel, adder_levels, requant_latency
from .streams import FifoKernel, IOFormat, WidthConverterKernel
from .window import (FloatSumKernel, MaxPoolKernel, SumPoolKernel, WindowKernel, row_schedule,
                     window_schedule, window_timing)

__all__ = ["AddKernel", "ConcatKernel", "DepthwiseKernel", "FifoKernel", "FloatSumKernel",
           "IOFormat", "Join", "Kernel", "MVUKernel", "MaxPoolKernel", "RequantKernel",
           "ResidualKernel", "SumPoolKernel", "WidthConverterKernel", "WindowKernel",
           "adder_levels", "chain_beat_times", "dsp_slices", "fifo_depth", "flat", "mvu_latency",
           "mvu_tree_stages", "paced", "path_needs", "produced", "requant_latency", "row_schedule",
           "window_schedule", "window_timing"]
