"""What a model takes and returns, recorded at export time and checked at every call.

Stored as JSON: `model.so.json` beside a model.so, `mps_shim.json` inside a
package. A tensor is {"name", "dtype", "shape"}; a shape entry is an int, or
the name of a dynamic dimension ("s0") whose allowed range is in "dims". A bare
model.so without metadata is still checked for the number of inputs, which the
container API reports.
"""
import json
import os

import numpy as np

FORMAT = 1
SIDECAR_SUFFIX = ".json"
PACKAGE_ENTRY = "mps_shim.json"


class InputError(ValueError):
    """An input does not match what the model was exported for."""


def sidecar_path(so_path):
    return so_path + SIDECAR_SUFFIX


def read_sidecar(so_path):
    path = sidecar_path(so_path)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return parse(f.read(), path)


def parse(text, where):
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"[mps_shim.aoti] {where}: not valid JSON metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"[mps_shim.aoti] {where}: unknown metadata format {meta.get('format')!r}"
                         if isinstance(meta, dict) else f"[mps_shim.aoti] {where}: metadata is not an object")
    return meta


def dumps(meta):
    return json.dumps(meta, indent=1)


def write_sidecar(so_path, meta):
    tmp = sidecar_path(so_path) + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(dumps(meta))
    os.replace(tmp, sidecar_path(so_path))


# --- built from an ExportedProgram (torch needed) ---------------------------------------------------

def _dim(d):
    import torch

    if isinstance(d, torch.SymInt):
        expr = d.node.expr
        return int(expr) if expr.is_number else str(expr)
    return int(d)


def _tensor(name, value):
    return {"name": name, "dtype": str(value.dtype).replace("torch.", ""), "shape": [_dim(d) for d in value.shape]}


def from_exported_program(ep, how, num_constants):
    """Inputs, outputs and dynamic dimension ranges of `ep`'s user-facing signature."""
    placeholders = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    inputs = []
    for spec in ep.graph_signature.input_specs:
        if spec.kind.name != "USER_INPUT":
            continue
        val = placeholders[spec.arg.name].meta.get("val")
        if val is None or not hasattr(val, "dtype"):
            continue  # a non-tensor input is specialised away
        inputs.append(_tensor(spec.arg.name, val))
    output_node = next(n for n in ep.graph.nodes if n.op == "output")
    outputs = []
    for i, (spec, node) in enumerate(zip(ep.graph_signature.output_specs, output_node.args[0])):
        if spec.kind.name != "USER_OUTPUT":
            continue
        val = node.meta.get("val") if hasattr(node, "meta") else None
        if val is not None and hasattr(val, "dtype"):
            outputs.append(_tensor(spec.arg.name if hasattr(spec.arg, "name") else f"output{i}", val))
    dims = {}
    for symbol, vr in ep.range_constraints.items():
        lo, hi = vr.lower, vr.upper
        dims[str(symbol)] = [int(lo) if lo.is_finite else None, int(hi) if hi.is_finite else None]
    import torch

    return {"format": FORMAT, "torch": torch.__version__, "built": how, "inputs": inputs, "outputs": outputs,
            "dims": dims, "constants": num_constants}


# --- checking inputs (numpy only) ----------------------------------------------------------------

def describe(t):
    shape = "x".join(str(d) for d in t["shape"]) or "scalar"
    return f"{t['name']}: {t['dtype']}[{shape}]"


def check_inputs(meta, arrays):
    """Raises InputError naming the first input whose dtype or shape does not match."""
    specs = meta.get("inputs")
    if specs is None:
        return
    if len(arrays) != len(specs):
        raise InputError(f"the model takes {len(specs)} input(s) ({', '.join(describe(s) for s in specs)}), "
                         f"got {len(arrays)}")
    bound = {}
    ranges = meta.get("dims", {})
    for i, (spec, (dtype, shape)) in enumerate(zip(specs, arrays)):
        where = f"input {i} ({spec['name']})"
        if dtype != spec["dtype"]:
            raise InputError(f"{where}: expected dtype {spec['dtype']}, got {dtype}")
        want = spec["shape"]
        if len(shape) != len(want):
            raise InputError(f"{where}: expected {len(want)} dimension(s) {_shape_text(want)}, "
                             f"got shape {tuple(shape)}")
        for axis, (w, got) in enumerate(zip(want, shape)):
            if isinstance(w, int):
                if w != got:
                    raise InputError(f"{where}: dimension {axis} must be {w} (shape {_shape_text(want)}), "
                                     f"got shape {tuple(shape)}")
                continue
            lo, hi = ranges.get(w, [None, None])
            if (lo is not None and got < lo) or (hi is not None and got > hi):
                raise InputError(f"{where}: dynamic dimension {axis} ({w}) must be in "
                                 f"[{lo}, {'inf' if hi is None else hi}], got {got}")
            if w in bound and bound[w][0] != got:
                raise InputError(f"{where}: dimension {axis} ({w}) is {got}, but {bound[w][1]} gave {w} = "
                                 f"{bound[w][0]}")
            bound.setdefault(w, (got, where))


def _shape_text(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"


def numpy_dtype_name(dtype):
    dtype = np.dtype(dtype)
    return "bool" if dtype == np.bool_ else dtype.name
