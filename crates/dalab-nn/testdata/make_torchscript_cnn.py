"""Writes a tiny TorchScript CNN with BatchNorm, without PyTorch: the archive a `torch.jit.script(m).save(path)` would
write (a zip: `version`, `code/__torch__.py` with the TorchScript source of the class, `data.pkl` with the module's
attributes pickled as libtorch's unpickler reads them, the tensors' storages under `data/`, `constants.pkl`).

    python3 make_torchscript_cnn.py OUT.pt [--buffers]

The test that runs it (crates/dalab-nn/src/backbone.rs, `torchscript_cnn_trains_freezes_and_switches_batchnorm`)
loads it through libtorch, so a file libtorch could not read fails there. The module maps [n, 3, H, W] to [n, 4]:
conv 3x3 (3 -> 4 channels, padding 1), BatchNorm (momentum 0.1, eps 1e-5; batch statistics in training mode and
the running ones, updated in place, in evaluation mode), ReLU, global average pooling.
conv weight[o, i, ky, kx] = 0.05 (o + 1) - 0.02 i + 0.01 (ky - kx), conv bias[o] = 0.1 o, BN weight 1 + 0.5 o,
BN bias -0.1 o, running mean 0.2 o, running var 1 + o. The running statistics are parameters that need no gradient
(as the export recipe of docs/datasets.md makes them, so that they are saved with the model); with `--buffers`
they are buffers, as `torch.nn.BatchNorm2d` has them (dalab refuses such a file, naming them).

Why not PyTorch: the Python wheel this project installs is the CUDA build without its CUDA libraries (libtorch is
linked from it), so `import torch` fails on a machine without them; this script needs only the standard library.
"""
import io
import struct
import sys
import zipfile

NAME = "tiny_cnn"
BUFFERS = "--buffers" in sys.argv[2:]
CODE = ('''class TinyCNN(Module):
  __parameters__ = ["conv_w", "conv_b", "bn_w", "bn_b", ]
  __buffers__ = ["bn_mean", "bn_var", ]
''' if BUFFERS else '''class TinyCNN(Module):
  __parameters__ = ["conv_w", "conv_b", "bn_w", "bn_b", "bn_mean", "bn_var", ]
  __buffers__ = []
''') + '''  conv_w : Tensor
  conv_b : Tensor
  bn_w : Tensor
  bn_b : Tensor
  bn_mean : Tensor
  bn_var : Tensor
  training : bool
  def forward(self: __torch__.TinyCNN,
    x: Tensor) -> Tensor:
    y = torch.conv2d(x, self.conv_w, self.conv_b, [1, 1], [1, 1], [1, 1], 1)
    y0 = torch.batch_norm(y, self.bn_w, self.bn_b, self.bn_mean, self.bn_var, self.training, 0.1, 1.0000000000000001e-05, False)
    y1 = torch.relu(y0)
    y2 = torch.adaptive_avg_pool2d(y1, [1, 1])
    return torch.flatten(y2, 1)
'''


def conv_w():
    return [0.05 * (o + 1) - 0.02 * i + 0.01 * (ky - kx) for o in range(4) for i in range(3) for ky in range(3) for kx in range(3)]


TENSORS = [  # name, values, shape, is a parameter
    ("conv_w", conv_w(), (4, 3, 3, 3), True),
    ("conv_b", [0.1 * o for o in range(4)], (4,), True),
    ("bn_w", [1 + 0.5 * o for o in range(4)], (4,), True),
    ("bn_b", [-0.1 * o for o in range(4)], (4,), True),
    ("bn_mean", [0.2 * o for o in range(4)], (4,), False),
    ("bn_var", [1.0 + o for o in range(4)], (4,), False),
]


class Pickle:
    """The pickle opcodes (protocol 2) libtorch's unpickler reads, written by hand."""

    def __init__(self):
        self.b = io.BytesIO()
        self.b.write(b"\x80\x02")  # PROTO 2

    def op(self, code):
        self.b.write(code)

    def glob(self, module, name):
        self.b.write(b"c" + module.encode() + b"\n" + name.encode() + b"\n")  # GLOBAL

    def string(self, s):
        data = s.encode()
        self.b.write(b"X" + struct.pack("<I", len(data)) + data)  # BINUNICODE

    def int(self, v):
        self.b.write(b"J" + struct.pack("<i", v))  # BININT

    def tuple(self, items):
        self.b.write(b"(")  # MARK
        for it in items:
            self.int(it)
        self.b.write(b"t")  # TUPLE

    def tensor(self, key, shape, numel, requires_grad):
        self.glob("torch._utils", "_rebuild_tensor_v2")
        self.b.write(b"(")  # MARK: the arguments
        self.b.write(b"(")  # MARK: the persistent id
        self.string("storage")
        self.glob("torch", "FloatStorage")
        self.string(key)
        self.string("cpu")
        self.int(numel)
        self.b.write(b"t")  # TUPLE
        self.b.write(b"Q")  # BINPERSID
        self.int(0)  # storage offset
        self.tuple(shape)
        strides, acc = [], 1
        for d in reversed(shape):
            strides.insert(0, acc)
            acc *= d
        self.tuple(strides)
        self.b.write(b"\x88" if requires_grad else b"\x89")  # NEWTRUE / NEWFALSE
        self.glob("collections", "OrderedDict")
        self.b.write(b")R")  # EMPTY_TUPLE, REDUCE
        self.b.write(b"tR")  # TUPLE, REDUCE

    def bytes(self):
        return self.b.getvalue() + b"."  # STOP


def data_pkl():
    p = Pickle()
    p.glob("__torch__", "TinyCNN")
    p.op(b")\x81")  # EMPTY_TUPLE, NEWOBJ
    p.op(b"}(")  # EMPTY_DICT, MARK
    p.string("training")
    p.op(b"\x88")
    for k, (name, values, shape, param) in enumerate(TENSORS):
        p.string(name)
        p.tensor(str(k), shape, len(values), param)
    p.op(b"ub")  # SETITEMS, BUILD
    return p.bytes()


def constants_pkl():
    p = Pickle()
    p.op(b")")  # EMPTY_TUPLE
    return p.bytes()


def main(out):
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{NAME}/data.pkl", data_pkl())
        z.writestr(f"{NAME}/code/__torch__.py", CODE)
        z.writestr(f"{NAME}/constants.pkl", constants_pkl())
        for k, (_, values, _, _) in enumerate(TENSORS):
            z.writestr(f"{NAME}/data/{k}", struct.pack(f"<{len(values)}f", *values))
        z.writestr(f"{NAME}/version", "10\n")
        z.writestr(f"{NAME}/byteorder", "little")


if __name__ == "__main__":
    main(sys.argv[1])
