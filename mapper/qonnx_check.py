"""Running qonnx's executor, the oracle for QONNX models (onnxruntime cannot run ``Quant``):
``qonnx.core.onnx_exec.execute_onnx`` on each frame, after qonnx's shape inference.  When qonnx
cannot load or run a model, that is said as a QloomError."""
import numpy as np

from .errors import QloomError


class QonnxError(QloomError):
    """qonnx's executor, the oracle qloom compares QONNX models with, cannot run the model."""


def run(model_path, x):
    """The model's outputs for the frames of ``x``, one frame at a time."""
    try:
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx
        from qonnx.transformation.infer_shapes import InferShapes
    except ImportError as e:
        raise QonnxError(f"qonnx's executor, the oracle for QONNX models, is not installed ({e}); "
                         "install it with pip install qonnx==1.0.0.") from None
    try:
        model = ModelWrapper(str(model_path)).transform(InferShapes())
        name, out = model.graph.input[0].name, model.graph.output[0].name
        frames = [execute_onnx(model, {name: x[i:i + 1]})[out] for i in range(len(x))]
    except Exception as e:      # qonnx raises whatever its ops and onnxruntime raise
        raise QonnxError(f"qonnx's executor cannot run {model_path}: "
                         f"{' '.join(str(e).split()) or type(e).__name__}. qloom compares QONNX "
                         "models with it, so there is nothing to check this one against.") from None
    return [np.concatenate(frames)]
