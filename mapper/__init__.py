"""qloom.mapper: ONNX frontend, QGraph, passes, Dataflow graph, estimates, reports."""
