"""Inductor's own Metal kernels for the benchmarks, generated at run time (nothing PyTorch made is committed).

    specs = inductor_kernels(["layer_norm", "rms_norm", "sum_int64"])
    spec = specs["layer_norm"]            # a dict, or an Exception saying why it is unavailable
    launch = spec["launches"][0]          # {"lib", "kernel", "args", "threads", "group_size"}
    lib = mps_shim.compile_shader(spec["libraries"][launch["lib"]])

Each case is a small torch module exported for "mps" with mps_shim.aoti.export
(package=True, so the result is AOTInductor's C++ wrapper); the wrapper is then
read as text: the Metal sources are the raw string literals assigned to
`mps_lib_N_source` (passed to aoti_torch_mps_create_shader_library), and each
launch (a `mps_lib_N_lambda_K` encoding lambda) gives the kernel name, the
arguments bound by index (with the role of each: model input, constant, output
or temporary buffer) and the dispatch's grid and threadgroup size.

Exporting needs torch 2.13 and takes a few seconds, so it runs in a subprocess
(torch is not loaded into the timing process) and the parsed result is cached
as JSON, keyed by torch's version and this file's SPEC_VERSION, under
<mps_shim cache dir>/bench_inductor (or /tmp/mps_shim_bench_inductor).
Run this file directly to print what was extracted:
    python benchmarks/_inductor_kernels.py [case ...]
"""
import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile

SPEC_VERSION = 1
SUPPORTED_TORCH = "2.13"
ROWS, COLS = 1024, 4096


class Unavailable(Exception):
    """The kernels cannot be generated here (no torch 2.13, or export failed)."""


def _build_case(torch, name):
    """(module, example inputs) of a case; only called in the exporting subprocess."""
    torch.manual_seed(0)
    if name == "layer_norm":
        m = torch.nn.LayerNorm(COLS)
        return m, (torch.randn(ROWS, COLS),)
    if name == "rms_norm":
        m = torch.nn.RMSNorm(COLS)
        return m, (torch.randn(ROWS, COLS),)
    if name == "sum_int64":
        class RowSum(torch.nn.Module):
            def forward(self, x):
                return x.sum(1)
        return RowSum(), (torch.randint(-1000, 1000, (ROWS, COLS), dtype=torch.int64),)
    raise ValueError(f"unknown case {name!r}")


CASES = ("layer_norm", "rms_norm", "sum_int64")

_RAW = re.compile(r'R"([^()\\\s]{0,16})\((.*?)\)\1"', re.S)


def _int_list(text, where):
    values = []
    for item in text.split(","):
        item = item.strip()
        m = re.fullmatch(r"(?:static_cast<u?int64_t>\()?\s*(-?\d+)(?:LL|L|UL|ULL|U)?\s*\)?", item)
        if not m:
            raise ValueError(f"{where}: not a literal size: {item!r} (dynamic shapes are not supported here)")
        values.append(int(m.group(1)))
    return values


def parse_wrapper(wrapper):
    """The Metal libraries and kernel launches of an AOTInductor C++ wrapper (text) for "mps"."""
    libraries = {}
    for m in re.finditer(r"mps_lib_(\d+)_source\s*=\s*\(?((?:\s*R\"[^()\\\s]{0,16}\(.*?\)[^()\\\s]{0,16}\")+)",
                         wrapper, re.S):
        libraries[m.group(1)] = "".join(piece for _, piece in _RAW.findall(m.group(2)))
    if not libraries:
        raise ValueError("no mps_lib_N_source in the wrapper")
    kernel_names = dict(re.findall(
        r"get_mps_lib_(\d+)_handle\(\)\s*\{.*?aoti_torch_mps_get_kernel_function\(\s*lib_handle\s*,\s*\"(\w+)\"",
        wrapper, re.S))
    roles = {}
    for name, i in re.findall(r"auto\s+(\w+)\s*=\s*std::move\(inputs\[(\d+)\]\)", wrapper):
        roles[name] = ["input", int(i)]
    for name, i in re.findall(r"auto&\s+(\w+)\s*=\s*constants_->at\((\d+)\)", wrapper):
        roles[name] = ["constant", int(i)]
    for i, name in re.findall(r"output_handles\[(\d+)\]\s*=\s*(\w+)\.release\(\)", wrapper):
        roles[name] = ["output", int(i)]
    launches = []
    for m in re.finditer(r"auto\s+mps_lib_(\d+)_lambda_\d+\s*=\s*\[&\]\(AOTIMetalKernelFunctionHandle handle\)\s*\{"
                         r"(.*?)\n\s*\};", wrapper, re.S):
        lib, body = m.group(1), m.group(2)
        args = []
        for kind, index, value in re.findall(r"aoti_torch_mps_set_arg_(tensor|int)\(handle,\s*(\d+),\s*(.+?)\);",
                                             body):
            value = value.strip()
            if kind == "tensor":
                role, position = roles.get(value, ["temporary", None])
                args.append({"index": int(index), "kind": kind, "name": value, "role": role, "position": position})
            else:
                args.append({"index": int(index), "kind": kind, "value": _int_list(value, f"mps_lib_{lib} int")[0]})
        threads = re.search(r"threads_array\[\]\s*=\s*\{(.*?)\};", body, re.S)
        group = re.search(r"group_size_array\[\]\s*=\s*\{(.*?)\};", body, re.S)
        if threads is None:  # aoti_torch_mps_dispatch_single(_with_group_size)(handle, n[, g])
            single = re.search(r"aoti_torch_mps_dispatch_single(?:_with_group_size)?\(handle,\s*(.+?)\);", body)
            if single is None:
                raise ValueError(f"mps_lib_{lib}: no dispatch found in the launch")
            sizes = _int_list(single.group(1), f"mps_lib_{lib} dispatch")
            threads_list, group_list = sizes[:1], (sizes[1:] or None)
        else:
            threads_list = _int_list(threads.group(1), f"mps_lib_{lib} threads")
            group_list = _int_list(group.group(1), f"mps_lib_{lib} group size") if group else None
        launches.append({"lib": lib, "kernel": kernel_names.get(lib), "args": sorted(args, key=lambda a: a["index"]),
                         "threads": threads_list, "group_size": group_list})
    if not launches:
        raise ValueError("no Metal kernel launch in the wrapper")
    return {"libraries": libraries, "launches": launches}


def _export_cases(names, out_dir):
    """In the subprocess: export each case and write <out_dir>/<case>.json (or <case>.error)."""
    import torch

    import mps_shim.aoti as aoti
    from mps_shim.aoti import _package

    for name in names:
        try:
            model, inputs = _build_case(torch, name)
            with tempfile.TemporaryDirectory(prefix="mps_shim_bench_") as tmp:
                pt2 = os.path.join(tmp, f"{name}.pt2")
                aoti.export(model.eval(), inputs, pt2, package=True)
                sources, _ = _package.read(pt2)
            spec = parse_wrapper(sources["wrapper"].decode())
            spec.update(case=name, torch=torch.__version__, spec_version=SPEC_VERSION)
            with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
                json.dump(spec, f)
        except Exception as exc:  # reported by the parent, per case
            with open(os.path.join(out_dir, f"{name}.error"), "w") as f:
                f.write(f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300])


def _cache_dir():
    try:
        import mps_shim

        base = mps_shim.runtime_info().get("cache_dir") or ""
    except Exception:
        base = ""
    folder = os.path.join(base, "bench_inductor") if base else os.path.join(tempfile.gettempdir(),
                                                                               "mps_shim_bench_inductor")
    os.makedirs(folder, exist_ok=True)
    return folder


def _torch_version():
    if importlib.util.find_spec("torch") is None:
        raise Unavailable(f"needs torch {SUPPORTED_TORCH}: pip install torch=={SUPPORTED_TORCH}.0")
    version = importlib.metadata.version("torch")
    if version.split("+")[0].split(".")[:2] != SUPPORTED_TORCH.split("."):
        raise Unavailable(f"needs torch {SUPPORTED_TORCH}, this is {version}: pip install torch=={SUPPORTED_TORCH}.0")
    return version


def inductor_kernels(names=CASES):
    """{case: spec dict or Unavailable}; exports the cases not cached yet (one subprocess for all).
    MPS_SHIM_INDUCTOR_SPECS names a folder of specs exported elsewhere (`<case>-*.json`), for a machine
    whose torch is not 2.13 (a GPU machine's CUDA build)."""
    given = os.environ.get("MPS_SHIM_INDUCTOR_SPECS")
    if given:
        result = {}
        for name in names:
            found = sorted(f for f in os.listdir(given) if f.startswith(name + "-") and f.endswith(".json"))
            if found:
                with open(os.path.join(given, found[-1])) as f:
                    result[name] = json.load(f)
            else:
                result[name] = Unavailable(f"no {name}-*.json in MPS_SHIM_INDUCTOR_SPECS={given}")
        return result
    try:
        version = _torch_version()
    except Unavailable as exc:
        return {name: exc for name in names}
    folder = _cache_dir()
    key = re.sub(r"[^\w.]", "_", f"torch{version}-v{SPEC_VERSION}")
    paths = {name: os.path.join(folder, f"{name}-{key}.json") for name in names}
    result = {}
    for name in names:
        try:
            with open(paths[name]) as f:
                result[name] = json.load(f)
        except (OSError, ValueError):  # not cached yet (or a damaged file: made again)
            pass
    missing = [name for name in names if name not in result]
    if missing:
        with tempfile.TemporaryDirectory(prefix="mps_shim_bench_export_") as tmp:
            root = os.path.dirname(os.path.dirname(os.path.abspath(importlib.util.find_spec("mps_shim").origin)))
            env = dict(os.environ, PYTHONPATH=os.pathsep.join([root] + [p for p in
                                                                    [os.environ.get("PYTHONPATH")] if p]))
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--export", tmp, *missing], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name in missing:
                produced = os.path.join(tmp, f"{name}.json")
                if os.path.exists(produced):
                    with open(produced) as f:
                        result[name] = json.load(f)
                    part = paths[name] + f".{os.getpid()}.tmp"
                    with open(part, "w") as f:
                        json.dump(result[name], f)
                    os.replace(part, paths[name])
                elif os.path.exists(os.path.join(tmp, f"{name}.error")):
                    with open(os.path.join(tmp, f"{name}.error")) as f:
                        result[name] = Unavailable(f"export failed: {f.read()}")
                else:
                    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                    result[name] = Unavailable(f"export failed (exit {proc.returncode}): {tail}")
    return {name: result[name] for name in names}


def bind_args(launch, by_role):
    """The kernel's positional arguments, in binding order: by_role maps ("input", 0), ("output", 0) or a
    constant's name to the array; int arguments keep the wrapper's value."""
    args = []
    for i, a in enumerate(launch["args"]):
        if a["index"] != i:
            raise ValueError(f"{launch['kernel']}: argument indices are not 0..n-1 ({a['index']} at {i})")
        if a["kind"] == "int":
            args.append(a["value"])
        elif a["role"] == "constant":
            args.append(by_role[a["name"]])
        else:
            args.append(by_role[(a["role"], a["position"])])
    return args


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--export":
        _export_cases(sys.argv[3:], sys.argv[2])
    else:
        for case, spec in inductor_kernels(sys.argv[1:] or CASES).items():
            if isinstance(spec, Exception):
                print(f"{case}: {spec}")
                continue
            for launch in spec["launches"]:
                print(f"{case}: kernel {launch['kernel']} of mps_lib_{launch['lib']} "
                      f"({len(spec['libraries'][launch['lib']])} characters of source), threads {launch['threads']}, "
                      f"group size {launch['group_size']}, arguments "
                      + ", ".join(f"{a['index']}: {a.get('name', a.get('value'))} ({a.get('role', 'int')})"
                                  for a in launch["args"]))
