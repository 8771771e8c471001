"""The ABI is exactly upstream's: our header and PyTorch's shim headers compile together.

Two extern "C" declarations of one function with different signatures are a
hard error in C++, so compiling both headers in one translation unit proves
every function we declare has upstream's exact signature (and that our
handle types are upstream's). Needs torch 2.13.0's headers; skips without torch.
"""
import importlib.util
import os
import shutil
import subprocess

import pytest

import mps_shim


def torch_include_dir():
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("torch is not installed (pip install torch==2.13.0)")
    include = os.path.join(list(spec.submodule_search_locations)[0], "include")
    if not os.path.exists(os.path.join(include, "torch/csrc/inductor/aoti_torch/c/shim_mps.h")):
        pytest.skip("this torch build ships no AOTInductor MPS shim header")
    return include


def compile_together(tmp_path, header_dir, torch_include):
    cxx = shutil.which(os.environ.get("CXX", "c++"))
    if cxx is None:
        pytest.skip("no C++ compiler")
    src = tmp_path / "both.cpp"
    src.write_text(
        "#include <torch/csrc/inductor/aoti_torch/c/shim_mps.h>\n"
        "#include <torch/csrc/inductor/aoti_torch/generated/c_shim_mps.h>\n"
        '#include "mps_shim.h"\n'
        '#include "mps_shim_aten.h"\n'
        "static_assert(AOTI_TORCH_SUCCESS == 0 && AOTI_TORCH_FAILURE == 1, \"codes\");\n"
        "int main() {\n"
        "  aoti_torch_mps_command_block_callback_t cb = aoti_torch_mps_shared_callback;\n"
        "  return cb == nullptr;\n"
        "}\n")
    return subprocess.run([cxx, "-std=c++17", "-fsyntax-only", f"-I{torch_include}", f"-I{header_dir}", str(src)],
                          capture_output=True, text=True)


def test_header_matches_upstream_signatures(tmp_path):
    result = compile_together(tmp_path, mps_shim.include_dir(), torch_include_dir())
    assert result.returncode == 0, result.stderr


def test_every_declared_aten_op_is_upstreams_and_exported():
    """Each op in mps_shim_aten.h is one of torch's c_shim_mps.h functions and libmps_shim exports it."""
    import ctypes
    import re

    with open(os.path.join(torch_include_dir(), "torch/csrc/inductor/aoti_torch/generated/c_shim_mps.h")) as f:
        upstream = set(re.findall(r"AOTITorchError (aoti_torch_mps_\w+)\(", f.read()))
    with open(os.path.join(mps_shim.include_dir(), "mps_shim_aten.h")) as f:
        ours = set(re.findall(r"AOTITorchError (aoti_torch_mps_\w+)\(", f.read()))
    assert {"aoti_torch_mps_mm_out", "aoti_torch_mps_addmm_out", "aoti_torch_mps_bmm_out"} <= ours
    assert ours <= upstream, sorted(ours - upstream)
    lib = ctypes.CDLL(mps_shim.library_path())
    missing = [name for name in ours if not hasattr(lib, name)]
    assert not missing


@pytest.mark.parametrize("changed, original, replacement", [
    ("mps_shim.h", "uint64_t length, uint64_t group_size);", "uint64_t length, uint32_t group_size);"),
    ("mps_shim_aten.h", "AtenTensorHandle batch2, double beta,", "AtenTensorHandle batch2, float beta,"),
])
def test_a_changed_signature_is_caught(tmp_path, changed, original, replacement):
    """The check above can fail: one parameter type changed makes it a compile error."""
    torch_include = torch_include_dir()
    for name in ("mps_shim.h", "mps_shim_aten.h"):
        with open(os.path.join(mps_shim.include_dir(), name)) as f:
            header = f.read()
        if name == changed:
            assert original in header
            header = header.replace(original, replacement)
        (tmp_path / name).write_text(header)
    result = compile_together(tmp_path, tmp_path, torch_include)
    assert result.returncode != 0
    assert "conflicting declaration" in result.stderr
