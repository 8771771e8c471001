"""Where the public Metal libraries we test against live, when present (never committed).

MPS_SHIM_MLX_DIR / MPS_SHIM_GGML_DIR name checkouts of github.com/ml-explore/mlx and
github.com/ggml-org/ggml; /work/src/mlx and /work/src/ggml are looked at otherwise.
Tests that need one skip when it is absent.
"""
import contextlib
import os
import re

import pytest


def _checkout(env, default, marker):
    path = os.environ.get(env) or default
    return path if os.path.exists(os.path.join(path, marker)) else None


def mlx_dir():
    path = _checkout("MPS_SHIM_MLX_DIR", "/work/src/mlx", "mlx/backend/metal/kernels/utils.h")
    if path is None:
        pytest.skip("no MLX checkout (set MPS_SHIM_MLX_DIR)")
    return path


def ggml_dir():
    path = _checkout("MPS_SHIM_GGML_DIR", "/work/src/ggml", "src/ggml-metal/ggml-metal.metal")
    if path is None:
        pytest.skip("no ggml checkout (set MPS_SHIM_GGML_DIR)")
    return path


def c_structs(header_text):
    """The `typedef struct { ... } name;` declarations of a C header, for cffi's cdef
    (numeric #defines used as array sizes substituted)."""
    defines = dict(re.findall(r"^#define\s+(\w+)\s+(\d+)\s*$", header_text, re.MULTILINE))
    out = []
    for body, name in re.findall(r"typedef struct\s*\{(.*?)\}\s*(\w+)\s*;", header_text, re.DOTALL):
        body = re.sub(r"//[^\n]*", "", body)
        body = re.sub(r"\[(\w+)\]", lambda m: f"[{defines.get(m.group(1), m.group(1))}]", body)
        out.append(f"typedef struct {{{body}}} {name};")
    return "\n".join(out)


@contextlib.contextmanager
def without_cuda_check():
    """Library creation without the test session's CUDA compile check (MPS_SHIM_COMPILE_CHECK): translating
    every kernel of a whole MLX or ggml file for NVRTC takes minutes; their kernels' constructs are covered
    by our own small kernels."""
    saved = os.environ.pop("MPS_SHIM_COMPILE_CHECK", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["MPS_SHIM_COMPILE_CHECK"] = saved
