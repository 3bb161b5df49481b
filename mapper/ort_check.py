"""Running onnxruntime the way the numeric contract demands (DESIGN.md §2):
ORT_ENABLE_ALL, int8 QDQ fusion allowed, and a check on the optimized model
that no float matrix product is left (its results would not be reproducible)."""
import os
import tempfile

import numpy as np
import onnx

FLOAT_PRODUCTS = {"MatMul", "Gemm", "Conv", "FusedConv", "FusedMatMul", "FusedGemm",
                  "MatMulIntegerToFloat", "ConvTranspose"}


def _options(optimized_path=None):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.qdqisint8allowed", "1")
    so.log_severity_level = 3
    if optimized_path:
        so.optimized_model_filepath = optimized_path
    return so


def session(model_path):
    import onnxruntime as ort
    return ort.InferenceSession(str(model_path), _options(), providers=["CPUExecutionProvider"])


def float_products_left(model_path):
    """Names of float MatMul/Gemm/Conv nodes ORT leaves in the optimized model."""
    import onnxruntime as ort
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "optimized.onnx")
        ort.InferenceSession(str(model_path), _options(out), providers=["CPUExecutionProvider"])
        optimized = onnx.load(out)
    return [f"{n.op_type} '{n.name}'" for n in optimized.graph.node if n.op_type in FLOAT_PRODUCTS]


def run(model_path, x, sess=None):
    """Outputs of the model for a batch ``x`` (one frame at a time if the batch is fixed to 1)."""
    sess = sess or session(model_path)
    inp = sess.get_inputs()[0]
    batch = inp.shape[0]
    if isinstance(batch, int) and batch == 1 and len(x) != 1:
        outs = [sess.run(None, {inp.name: x[i:i + 1]}) for i in range(len(x))]
        return [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]
    return sess.run(None, {inp.name: x})


def calibration_frames(input_name, x):
    """An onnxruntime.quantization CalibrationDataReader giving the frames of ``x`` one by one."""
    from onnxruntime.quantization import CalibrationDataReader

    class Frames(CalibrationDataReader):
        def __init__(self):
            self.rows = iter([{input_name: x[i:i + 1]} for i in range(len(x))])

        def get_next(self):
            return next(self.rows, None)
    return Frames()
