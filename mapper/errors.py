"""The small qloom error hierarchy.  Every message names the thing, says what
is wrong and what to do; the CLI prints it as one paragraph and exits non-zero."""


class QloomError(Exception):
    """Base of every error a user can cause."""


class ModelFileError(QloomError):
    """The file is missing, malformed, truncated, or unsafe to load."""


class UnsupportedError(QloomError):
    """The model is valid ONNX but qloom cannot map part of it (yet)."""


class ShapeError(QloomError):
    """Shapes are dynamic, unknown or inconsistent."""


class NotQuantizedError(QloomError):
    """The model computes in floating point."""


class RequantError(QloomError):
    """No requantization circuit could be proven equal to onnxruntime."""


def onnx_node_label(node):
    """``Op 'name'`` for an ONNX NodeProto, for messages."""
    name = node.name or (node.output[0] if node.output else "?")
    return f"{node.op_type} node '{name}'"
