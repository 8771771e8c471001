"""The mps-shim command: list kernels, run one on .npy files, run AOTInductor models, show the runtime, run the demo."""
import argparse
import json
import sys

import numpy as np


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def cmd_kernels(args):
    from .shader import compile_shader

    lib = compile_shader(_read(args.file), args.include_dir).library
    for name in lib.kernel_names:
        info = lib.kernels[name]
        memory = f", {info['threadgroup_memory']} bytes of threadgroup memory" if info["threadgroup_memory"] else ""
        runs = ("not compiled yet: runs as lane loops or fibers" if info["execution"] == "undecided" else
                f"runs as {info['execution'].replace('_', ' ')}")
        print(f"{name}  (line {info['line']}, max {info['max_threads']} threads per threadgroup{memory}, {runs})")
        if info["execution_note"]:
            print(f"    on fibers because: {info['execution_note']}")
        for p in info["params"]:
            where = f"buffer({p['binding']})" if p["kind"] != "thread_position" else f"[[{p['attribute']}]]"
            print(f"    {where:<34} {p['kind']:<15} {p['type']} {p['name']}")
        if info["function_constants"]:
            print(f"    reads function constants: {', '.join(info['function_constants'])}")
    for c in sorted(lib.function_constants.values(), key=lambda c: c["index"]):
        optional = "optional" if not c["required"] else "required where read"
        print(f"function constant {c['name']}  ({c['type']}, index {c['index']}, line {c['line']}, {optional})")
    return 0


def _parse_arg(text):
    """FILE.npy, zeros:SHAPE:DTYPE, int:N, float:X, or a bare number."""
    if text.endswith(".npy"):
        return np.load(text)
    kind, _, rest = text.partition(":")
    if kind == "zeros":
        shape, _, dtype = rest.partition(":")
        return np.zeros(tuple(int(s) for s in shape.split("x")), dtype or "float32")
    if kind == "int":
        return int(rest)
    if kind == "float":
        return float(rest)
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise SystemExit(f"mps-shim run: cannot understand argument {text!r} "
                             "(use FILE.npy, zeros:SHAPE:DTYPE, int:N, float:X)") from None


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _ints(text):
    return [int(v) for v in text.split(",")] if text else None


def cmd_run(args):
    from .shader import compile_shader

    lib = compile_shader(_read(args.file), args.include_dir)
    values = [_parse_arg(a) for a in args.args]
    threads = _ints(args.threads)
    group = _ints(args.group_size)
    getattr(lib, args.kernel)(*values, threads=threads if threads is None or len(threads) > 1 else threads[0],
                              group_size=group if group is None or len(group) > 1 else group[0])
    for spec in args.output:
        index, _, path = spec.partition("=")
        value = values[int(index)]
        if not isinstance(value, np.ndarray):
            raise SystemExit(f"mps-shim run: argument {index} is not an array")
        np.save(path, value)
        print(f"wrote argument {index} {value.shape} {value.dtype} to {path}")
    return 0


def cmd_info(args):
    from . import runtime_info

    info = runtime_info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            if key == "backends":  # name: "available" or why not
                value = ", ".join(f"{name} ({state})" for name, state in value.items())
            print(f"{key:>22}: {value}")
    return 0


def _tensor_text(t):
    if t.get("dtype") is None:
        return f"{t['name']}"
    shape = ", ".join(str(d) for d in t["shape"])
    return f"{t['name']:<24} {t['dtype']:<9} ({shape})"


def cmd_aoti_info(args):
    from . import aoti

    model = aoti.load(args.path)
    meta = model.metadata
    constants = model.constants()
    print(f"model: {args.path}" + (f" (built: {model.path})" if model.path != args.path else ""))
    print(f"built: {meta['built']}, torch {meta['torch']}" if meta else
          "built: unknown (a bare model.so: no metadata beside it, only input and output counts are checked)")
    print(f"inputs ({model.num_inputs}):")
    for t in model.inputs:
        print(f"    {_tensor_text(t)}")
    print(f"outputs ({model.num_outputs}):")
    for t in model.outputs:
        print(f"    {_tensor_text(t)}")
    if meta and meta.get("dims"):
        ranges = ", ".join(f"{k} in [{lo}, {'inf' if hi is None else hi}]" for k, (lo, hi) in meta["dims"].items())
        print(f"dynamic dimensions: {ranges}")
    total = sum(size for *_, size in constants)
    print(f"constants: {len(constants)} ({total} bytes)")
    print(f"weights: {model.weights}")
    return 0


def cmd_aoti_run(args):
    from . import aoti

    model = aoti.load(args.path)
    inputs = [np.load(p) for p in args.inputs]
    outputs = model(*inputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    if len(args.output) > len(outputs):
        raise ValueError(f"{len(args.output)} -o paths given, but the model has {len(outputs)} output(s)")
    for i, value in enumerate(outputs):
        if i < len(args.output):
            np.save(args.output[i], value)
            print(f"wrote output {i} {value.shape} {value.dtype} to {args.output[i]}")
        else:
            print(f"output {i}: {value.shape} {value.dtype} (not saved: give -o FILE.npy)")
    return 0


def cmd_demo(args):
    from .demo import run_demo

    failures = run_demo()
    print("demo: all kernels match numpy" if not failures else f"demo: {failures} check(s) FAILED")
    return 1 if failures else 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="mps-shim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    include = argparse.ArgumentParser(add_help=False)
    include.add_argument("-I", "--include-dir", action="append", default=[], metavar="DIR",
                         help="a folder #include searches (repeatable; torch's c10/metal headers are found without it)")
    p = sub.add_parser("kernels", parents=[include],
                       help="list the kernels of a Metal file with their parameters and bindings")
    p.add_argument("file")
    p.set_defaults(fn=cmd_kernels)
    p = sub.add_parser("run", parents=[include], help="run one kernel on .npy inputs and write .npy outputs")
    p.add_argument("file")
    p.add_argument("--kernel", required=True)
    p.add_argument("args", nargs="*", help="arguments in buffer order: FILE.npy, zeros:SHAPE:DTYPE (SHAPE like "
                                           "4x8), int:N, float:X")
    p.add_argument("--threads", help="grid size: N or X,Y[,Z] (default: the first array's size)")
    p.add_argument("--group-size", help="threadgroup size: N or X,Y[,Z]")
    p.add_argument("--output", "-o", action="append", default=[], metavar="INDEX=FILE.npy",
                   help="after the run, save argument INDEX to FILE.npy (repeatable)")
    p.set_defaults(fn=cmd_run)
    p = sub.add_parser("info", help="show the backend, compiler and kernel cache")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_info)
    p = sub.add_parser("aoti", help="AOTInductor models: show a model.so or .pt2 package, run it on .npy files")
    aoti_sub = p.add_subparsers(dest="aoti_command", required=True)
    q = aoti_sub.add_parser("info", help="inputs and outputs (dtypes, shapes), constants, where the weights live, "
                                        "how it was built")
    q.add_argument("path", help="model.so or a package_cpp_only .pt2")
    q.set_defaults(fn=cmd_aoti_info)
    q = aoti_sub.add_parser("run", help="run the model on .npy inputs and save its outputs")
    q.add_argument("path", help="model.so or a package_cpp_only .pt2")
    q.add_argument("inputs", nargs="*", metavar="INPUT.npy", help="inputs in order")
    q.add_argument("--output", "-o", action="append", default=[], metavar="FILE.npy",
                   help="save output i to the i-th FILE.npy (repeatable)")
    q.set_defaults(fn=cmd_aoti_run)
    p = sub.add_parser("demo", help="run bundled example kernels and check them against numpy")
    p.set_defaults(fn=cmd_demo)
    args, extra = parser.parse_known_args(argv)
    if extra:  # `run`'s kernel arguments may come after its options
        if args.command not in ("run", "aoti") or any(e.startswith("-") and not _is_number(e) for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if args.command == "aoti":
            args.inputs += extra
        else:
            args.args += extra
    from .errors import MpsShimError

    try:
        return args.fn(args)
    except (MpsShimError, OSError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        print(f"mps-shim {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
