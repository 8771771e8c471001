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
        '#include "mps_shim.h"\n'
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


def test_a_changed_signature_is_caught(tmp_path):
    """The check above can fail: one parameter type changed makes it a compile error."""
    torch_include = torch_include_dir()
    with open(os.path.join(mps_shim.include_dir(), "mps_shim.h")) as f:
        header = f.read()
    original = "uint64_t length, uint64_t group_size);"
    assert original in header
    (tmp_path / "mps_shim.h").write_text(header.replace(original, "uint64_t length, uint32_t group_size);"))
    result = compile_together(tmp_path, tmp_path, torch_include)
    assert result.returncode != 0
    assert "conflicting declaration" in result.stderr
