"""Operators that move codes without computing on them, in either format: Identity, MaxPool,
Transpose, Flatten, Reshape.  On Codes they give Codes, on Deq a Deq of the moved codes.  A
mixin of interpreter.Frontend."""
import numpy as np

from .. import qgraph as qg
from .values import Codes, Deq


class Layout:
    """The op_* handlers of the data-movement operators."""

    def op_Identity(self, node):
        return self.value(node, 0)

    def op_MaxPool(self, node):
        x = self.value(node, 0)
        codes = x.codes if isinstance(x, Deq) else x
        if not isinstance(codes, Codes):
            self.refuse(node, "MaxPool is supported on quantized NCHW activations.")
        self.spatial(node, len(codes.shape) - 1, "MaxPool")
        a = self.attrs(node)
        if len(node.output) > 1 and node.output[1]:
            self.refuse(node, "MaxPool with an Indices output is not supported.")
        if a.get("ceil_mode", 0) or a.get("storage_order", 0) or \
                a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            self.refuse(node, "only MaxPool with ceil_mode=0, storage_order=0 and explicit pads "
                              "is supported.")
        kernel = tuple(a["kernel_shape"])
        self.spatial(node, len(kernel), "MaxPool")
        self.check_window(node, codes.shape[1:], kernel, tuple(a.get("strides", (1, 1))),
                          tuple(a.get("pads", (0, 0, 0, 0))), tuple(a.get("dilations", (1, 1))),
                          pool=True)
        name = self.fresh("maxpool")
        p = self.emit(qg.MaxPool(name, node.name or node.output[0], (codes.tensor,), name + ".out",
                                 kernel=kernel,
                                 strides=tuple(a.get("strides", (1, 1))),
                                 pads=tuple(a.get("pads", (0, 0, 0, 0))),
                                 dilations=tuple(a.get("dilations", (1, 1)))))
        shape = (codes.shape[0],) + qg.window_out_size(codes.shape[1:], p.kernel, p.strides, p.pads,
                                                       p.dilations)
        out = self.new_codes(p, shape, codes.code, codes.scale, codes.zero_point)
        return Deq(out) if isinstance(x, Deq) else out

    def reshape(self, node, new_shape):
        x = self.value(node, 0)
        codes = x.codes if isinstance(x, Deq) else x
        if not isinstance(codes, Codes):
            self.refuse(node, "reshapes a value that is not quantized activations.")
        if int(np.prod(new_shape)) != int(np.prod(codes.shape)):
            self.refuse(node, f"cannot reshape {codes.shape} to {tuple(new_shape)}.")
        name = self.fresh("reshape")
        r = self.emit(qg.Reshape(name, node.name or node.output[0], (codes.tensor,), name + ".out",
                                 shape=tuple(new_shape)))
        out = self.new_codes(r, tuple(new_shape), codes.code, codes.scale, codes.zero_point)
        return Deq(out) if isinstance(x, Deq) else out

    def op_Transpose(self, node):
        x = self.value(node, 0)
        codes = x.codes if isinstance(x, Deq) else x
        if not isinstance(codes, Codes):
            self.refuse(node, "transposes a value that is not quantized activations.")
        perm = [int(p) for p in self.attrs(node).get("perm", range(len(codes.shape) + 1)[::-1])]
        if not perm or perm[0] != 0:
            self.refuse(node, f"perm {perm} moves the batch axis; only transposes of the other "
                              "axes are supported.")
        perm = tuple(p - 1 for p in perm[1:])
        name = self.fresh("transpose")
        t = self.emit(qg.Transpose(name, node.name or node.output[0], (codes.tensor,),
                                   name + ".out", perm=perm))
        out = self.new_codes(t, tuple(codes.shape[p] for p in perm), codes.code, codes.scale,
                             codes.zero_point)
        return Deq(out) if isinstance(x, Deq) else out

    def op_Flatten(self, node):
        if self.attrs(node).get("axis", 1) != 1:
            self.refuse(node, "only Flatten with axis=1 is supported.")
        x = self.value(node, 0)
        shape = (x.codes if isinstance(x, Deq) else x).shape if isinstance(x, (Deq, Codes)) else ()
        return self.reshape(node, (int(np.prod(shape)),))

    def op_Reshape(self, node):
        target = [int(v) for v in self.const(node, 1, "the target shape")]
        if not target or target[0] not in (1, -1, 0):
            self.refuse(node, f"reshape to {target} changes the batch dimension.")
        x = self.value(node, 0)
        shape = (x.codes if isinstance(x, Deq) else x).shape if isinstance(x, (Deq, Codes)) else ()
        rest = target[1:]
        if rest.count(-1) == 1:
            known = int(np.prod([d for d in rest if d != -1]))
            rest = [int(np.prod(shape)) // known if d == -1 else d for d in rest]
        rest = [shape[i] if d == 0 and i < len(shape) else d for i, d in enumerate(rest)]
        return self.reshape(node, tuple(rest))
