"""The type constraints of every node, checked as onnxruntime's loader checks them: each input's
element type is one its operator's schema allows, the inputs bound to one type parameter have
the same type (a zero point has its tensor's type), and the element types that flow from node
to node follow.  ONNX operators are read from ONNX's own schemas at the model's opset; the
com.microsoft operators qloom maps are written out below as onnxruntime registers them.  On
top of that, what qloom's integer circuits need: 8-bit integer codes, float32 floats."""
from dataclasses import dataclass

import onnx
from onnx import defs

from ..errors import ModelFileError, UnsupportedError, onnx_node_label

CODES = ("int8", "uint8")
FLOAT = ("float",)


@dataclass(frozen=True)
class Formal:
    """One formal input or output of an operator schema."""
    name: str
    type_str: str          # a type parameter ("T1") or a fixed type ("tensor(float)")
    option: str = "single"   # "single", "optional" or "variadic"
    homogeneous: bool = True


@dataclass(frozen=True)
class Schema:
    """An operator's formal inputs and outputs, type constraints and attributes (None: not
    checked here, the ONNX checker does)."""
    inputs: tuple
    outputs: tuple
    constraints: dict      # type parameter -> allowed "tensor(...)" strings
    attributes: dict       # name -> (AttributeProto type, required)

    @classmethod
    def from_onnx(cls, s):
        option = {defs.OpSchema.FormalParameterOption.Single: "single",
                  defs.OpSchema.FormalParameterOption.Optional: "optional",
                  defs.OpSchema.FormalParameterOption.Variadic: "variadic"}
        return cls(tuple(Formal(f.name, f.type_str, option[f.option],
                                f.is_homogeneous) for f in s.inputs),
                   tuple(Formal(f.name, f.type_str, option[f.option],
                                f.is_homogeneous) for f in s.outputs),
                   {t.type_param_str: tuple(t.allowed_type_strs) for t in s.type_constraints}, None)


def _t(*names):
    return tuple(f"tensor({n})" for n in names)


_A = onnx.AttributeProto
_Q8 = _t("uint8", "int8")
# com.microsoft operators as onnxruntime registers them
# (onnxruntime/core/graph/contrib_ops/quantization_defs.cc)
CONTRIB = {
    "QGemm": Schema(
        (Formal("A", "TA"), Formal("a_scale", "T"), Formal("a_zero_point", "TA"), Formal("B", "TB"),
         Formal("b_scale", "T"), Formal("b_zero_point", "TB"), Formal("C", "TC", "optional"),
         Formal("y_scale", "T", "optional"), Formal("y_zero_point", "TYZ", "optional")),
        (Formal("Y", "TY"),),
        {"T": _t("float"), "TA": _Q8, "TB": _Q8, "TC": _t("int32"), "TYZ": _Q8,
         "TY": _t("float", "uint8", "int8")},
        {"transA": (_A.INT, False), "transB": (_A.INT, False), "alpha": (_A.FLOAT, False)}),
    "QLinearAdd": Schema(
        (Formal("A", "T"), Formal("A_scale", "tensor(float)"),
         Formal("A_zero_point", "T", "optional"),
         Formal("B", "T"), Formal("B_scale", "tensor(float)"),
         Formal("B_zero_point", "T", "optional"),
         Formal("C_scale", "tensor(float)"), Formal("C_zero_point", "T", "optional")),
        (Formal("C", "T"),), {"T": _Q8}, {}),
    "QLinearConcat": Schema(
        (Formal("Y_scale", "TF"), Formal("Y_zero_point", "T8"),
         Formal("inputs", "TV", "variadic", False)),
        (Formal("Y", "T8"),), {"T8": _Q8, "TF": _t("float"), "TV": _t("uint8", "int8", "float")},
        {"axis": (_A.INT, True)}),
    "QLinearAveragePool": Schema(
        (Formal("X", "T"), Formal("x_scale", "tensor(float)"),
         Formal("x_zero_point", "T", "optional"),
         Formal("y_scale", "tensor(float)"), Formal("y_zero_point", "T", "optional")),
        (Formal("Y", "T"),), {"T": _Q8},
        {"kernel_shape": (_A.INTS, True), "strides": (_A.INTS, False), "pads": (_A.INTS, False),
         "auto_pad": (_A.STRING, False), "ceil_mode": (_A.INT, False),
         "channels_last": (_A.INT, False),
         "count_include_pad": (_A.INT, False)}),
    "QLinearGlobalAveragePool": Schema(
        (Formal("X", "T"), Formal("x_scale", "tensor(float)"), Formal("x_zero_point", "T"),
         Formal("y_scale", "tensor(float)"), Formal("y_zero_point", "T")),
        (Formal("Y", "T"),), {"T": _Q8}, {"channels_last": (_A.INT, False)}),
}

# What qloom computes with, stricter than ONNX: (op, formal name) -> allowed element types
QLOOM = {
    "QuantizeLinear": {"x": FLOAT, "y_scale": FLOAT, "y_zero_point": CODES, "y": CODES},
    "DequantizeLinear": {"x": CODES + ("int32",), "x_scale": FLOAT,
                         "x_zero_point": CODES + ("int32",),
                         "y": FLOAT},
    "QLinearMatMul": {"a": CODES, "a_zero_point": CODES, "b": CODES, "b_zero_point": CODES,
                      "y": CODES,
                      "y_zero_point": CODES, "a_scale": FLOAT, "b_scale": FLOAT, "y_scale": FLOAT},
}
WHY = {"float": "qloom's arithmetic is float32 (as onnxruntime's fused integer kernels are)",
       "int8": "qloom's circuits compute on 8-bit integer codes (int32 only for biases)"}


def type_name(elem_type):
    return onnx.TensorProto.DataType.Name(elem_type).lower()


def _names(type_strs):
    return ", ".join(s.removeprefix("tensor(").removesuffix(")") for s in type_strs)


def schema_of(node, opsets):
    if node.domain == "com.microsoft":
        return CONTRIB.get(node.op_type)
    domain = "" if node.domain in ("", "ai.onnx") else node.domain
    try:
        return Schema.from_onnx(defs.get_schema(node.op_type, opsets.get(domain, 1), domain))
    except defs.SchemaError:
        return None


class TypeCheck:
    """Element types of every tensor (``types``: name -> "tensor(float)" ...), checked node by
    node in graph order; each failure is a QloomError naming the node, the input and the types
    allowed."""

    def __init__(self, model, path):
        self.path = path
        g = model.graph
        self.types = {}
        for vi in (*g.value_info, *g.input, *g.output):
            if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
                self.types[vi.name] = f"tensor({type_name(vi.type.tensor_type.elem_type)})"
        self.declared_outputs = {o.name: self.types.get(o.name) for o in g.output}
        for t in g.initializer:
            self.types[t.name] = f"tensor({type_name(t.data_type)})"
        self.opsets = {("" if o.domain == "ai.onnx" else o.domain): o.version
                       for o in model.opset_import}
        for node in g.node:
            self.check(node)
        for name, declared in self.declared_outputs.items():
            got = self.types.get(name)
            if declared and got and declared != got:
                raise ModelFileError(f"{path}: graph output '{name}' is declared "
                                     f"{_names([declared])} but its producer gives "
                                     f"{_names([got])}; onnxruntime refuses such a model. Declare "
                                     "the output with the type its node produces.")

    def fail(self, node, why, cls=ModelFileError):
        raise cls(f"{onnx_node_label(node)} in {self.path}: {why}")

    def arguments(self, node, formals, args, what):
        """(formal, actual name) pairs, the arity checked as onnxruntime does."""
        pairs, i = [], 0
        for k, f in enumerate(formals):
            if f.option == "variadic":
                if i >= len(args):
                    self.fail(node, f"it has {len(args)} {what}s, none for its variadic {f.name} "
                                    f"(from number {i} on); onnxruntime refuses such a node.")
                pairs += [(f, a) for a in args[i:]]
                i = len(args)
                break
            if i < len(args):
                if f.option == "single" and not args[i]:
                    self.fail(node, f"{what} {f.name} (number {i}) is required but empty; "
                                    "onnxruntime refuses such a node. Give it the tensor its "
                                    "operator needs.")
                pairs.append((f, args[i]))
            elif f.option == "single":
                self.fail(node, f"it has {len(args)} {what}s but {node.op_type} needs {f.name} "
                                f"(number {i}); onnxruntime refuses such a node.")
            i += 1
        if i < len(args):
            self.fail(node, f"it has {len(args)} {what}s; {node.op_type} takes at most {i}.")
        return pairs

    def check(self, node):
        schema = schema_of(node, self.opsets)
        if schema is None:
            return
        if schema.attributes is not None:
            self.check_attributes(node, schema)
        bound = {}
        for f, name in self.arguments(node, schema.inputs, list(node.input), "input"):
            got = self.types.get(name) if name else None
            if got is None:
                continue
            allowed = schema.constraints.get(f.type_str, (f.type_str,))
            if got not in allowed:
                self.fail(node, f"input {f.name} '{name}' is {_names([got])}; {node.op_type} "
                                f"allows {_names(allowed)} there (ONNX type {f.type_str}), so "
                                "onnxruntime refuses the model. Export it with a type the "
                                "operator allows.")
            if f.type_str in schema.constraints and f.homogeneous:
                first = bound.setdefault(f.type_str, (f.name, name, got))
                if first[2] != got:
                    self.fail(node, f"input {f.name} '{name}' is {_names([got])} but {first[0]} "
                                    f"'{first[1]}' is {_names([first[2]])}; both have ONNX type "
                                    f"{f.type_str}, which must be one type (one of "
                                    f"{_names(allowed)}), so onnxruntime refuses the model. Give "
                                    f"{f.name} the type of {first[0]}.")
            self.check_qloom(node, f.name, name, got)
        for f, name in zip(schema.outputs, node.output):
            if not name:
                continue
            got = bound.get(f.type_str, (None, None, None))[2]
            if f.type_str.startswith("tensor("):
                got = f.type_str
            if node.op_type == "QGemm" and node.domain == "com.microsoft":
                got = bound.get("TYZ", (None, None, "tensor(float)"))[2]
            got = got or self.types.get(name)
            if got:
                self.types[name] = got
                self.check_qloom(node, f.name, name, got)

    def check_qloom(self, node, formal, name, got):
        allowed = QLOOM.get(node.op_type, {}).get(formal)
        if allowed and got.removeprefix("tensor(").removesuffix(")") not in allowed:
            why = WHY["float" if allowed == FLOAT else "int8"]
            self.fail(node, f"{formal} '{name}' is {_names([got])}; qloom supports "
                            f"{', '.join('float32' if a == 'float' else a for a in allowed)} "
                            f"there: {why}. Quantize the model to uint8/int8 codes with float32 "
                            "scales and inputs.",
                      UnsupportedError)

    def check_attributes(self, node, schema):
        given = {a.name: a for a in node.attribute}
        for name, a in given.items():
            if name not in schema.attributes:
                self.fail(node, f"attribute '{name}' is not one of {node.op_type}'s "
                                f"({', '.join(sorted(schema.attributes)) or 'it has none'}); "
                                "onnxruntime refuses such a node. Remove the attribute.")
            want = schema.attributes[name][0]
            if a.type != want:
                self.fail(node, f"attribute '{name}' is {_A.AttributeType.Name(a.type)} but "
                                f"{node.op_type} wants {_A.AttributeType.Name(want)}; onnxruntime "
                                "refuses such a node.")
        for name, (_, required) in schema.attributes.items():
            if required and name not in given:
                self.fail(node, f"the required attribute '{name}' is missing; onnxruntime refuses "
                                "such a node.")


def check(model, path):
    """Element types by tensor name ("tensor(uint8)", ...), after checking every node."""
    return TypeCheck(model, path).types
