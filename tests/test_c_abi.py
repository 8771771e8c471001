"""The C ABI from C and C++: builds the programs under tests/c with the system
compilers against the installed header and library, and runs them.

- abi_test.c: drives every entry point from C99, one process per section.
- header_cxx_test.cpp / a bare #include: the header is self-contained C99 and C++17,
  with upstream's exact signatures and C linkage.
- generated_model.cpp + model_driver.c: the code shape AOTInductor's cpp_wrapper_mps
  emits, as a model .so that is not linked against libmps_shim, dlopen'ed by a driver
  that is.
"""
import os
import shutil
import subprocess

import pytest

import mps_shim

C_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c")
ABI_SECTIONS = ["misc", "kernels", "dispatch", "errors", "blocks", "tensors", "memory", "threads", "group_limits",
                "binding", "constants"]


def _compiler(env_var, default):
    path = shutil.which(os.environ.get(env_var) or default)
    if path is None:
        pytest.skip(f"no {default} compiler on PATH")
    return path


@pytest.fixture(scope="module")
def cc():
    return _compiler("CC", "cc")


@pytest.fixture(scope="module")
def cxx():
    return _compiler("CXX", "c++")


@pytest.fixture(scope="module")
def native():
    lib = mps_shim.library_path()
    include = mps_shim.include_dir()
    if not os.path.isfile(lib) or not os.path.isfile(os.path.join(include, "mps_shim.h")):
        pytest.skip("libmps_shim.so / mps_shim.h not built (python setup.py build_ext --inplace)")
    lib_dir = os.path.dirname(lib)
    return {
        "include": ["-I", include],
        "link": [f"-L{lib_dir}", "-lmps_shim", f"-Wl,-rpath,{lib_dir}"],
    }


@pytest.fixture(scope="module")
def run_env(tmp_path_factory):
    """Kernel cache in a private tmp folder, shared by this module's processes."""
    cache = tmp_path_factory.mktemp("kernel-cache")
    os.chmod(cache, 0o700)
    env = dict(os.environ)
    env["MPS_SHIM_CACHE_DIR"] = str(cache)
    return env


def _build(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"build failed:\n$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}"


def _run(cmd, env, timeout=120):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, (
        f"$ {' '.join(cmd)} exited with {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout}--- stderr ---\n{proc.stderr}"
    )
    return proc


@pytest.fixture(scope="module")
def abi_test(cc, native, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("abi") / "abi_test")
    _build([cc, "-std=c99", "-Wall", "-Werror", "-pthread", *native["include"],
            os.path.join(C_DIR, "abi_test.c"), "-o", out, *native["link"]])
    return out


@pytest.mark.parametrize("section", ABI_SECTIONS)
def test_abi_from_c(abi_test, run_env, section):
    proc = _run([abi_test, section], run_env)
    assert f"section {section} passed" in proc.stdout


@pytest.mark.parametrize("header", ["mps_shim.h", "mps_shim_aten.h"])
def test_header_is_self_contained_c99(cc, native, tmp_path, header):
    src = tmp_path / "only_header.c"
    src.write_text(f'#include "{header}"\n')
    _build([cc, "-std=c99", "-Wall", "-Werror", "-fsyntax-only", *native["include"], str(src)])
    _build([cc, "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-fsyntax-only", *native["include"], str(src)])


def test_header_compiles_as_cxx17(cxx, native, tmp_path):
    src = os.path.join(C_DIR, "header_cxx_test.cpp")
    _build([cxx, "-std=c++17", "-Wall", "-Werror", "-c", *native["include"], src, "-o", str(tmp_path / "a.o")])
    _build([cxx, "-std=c++17", "-Wall", "-Wextra", "-pedantic", "-Werror", "-c", *native["include"], src,
            "-o", str(tmp_path / "b.o")])


def _needed_libraries(path):
    readelf = shutil.which("readelf")
    if readelf is None:
        return None
    proc = subprocess.run([readelf, "-d", path], capture_output=True, text=True)
    return [line for line in proc.stdout.splitlines() if "(NEEDED)" in line]


def test_generated_model(cc, cxx, native, run_env, tmp_path):
    model = str(tmp_path / "model.so")
    driver = str(tmp_path / "model_driver")
    # No -lmps_shim: the model's aoti_torch_* symbols come from the loading process.
    _build([cxx, "-std=c++17", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", *native["include"],
            os.path.join(C_DIR, "generated_model.cpp"), "-o", model])
    needed = _needed_libraries(model)
    if needed is not None:
        assert not any("mps_shim" in line for line in needed), needed
    _build([cc, "-std=c99", "-Wall", "-Werror", *native["include"], os.path.join(C_DIR, "model_driver.c"),
            "-o", driver, *native["link"], "-ldl"])
    proc = _run([driver, model], run_env)
    assert "all checks passed" in proc.stdout


def test_error_kinds_and_pending_failures_from_cxx(cxx, native, run_env, tmp_path):
    """error_kinds_test.cpp: a host that ignores return codes sees each failure's kind at synchronize."""
    exe = str(tmp_path / "error_kinds_test")
    _build([cxx, "-std=c++17", "-Wall", "-Wextra", "-Werror", "-pthread", *native["include"],
            os.path.join(C_DIR, "error_kinds_test.cpp"), "-o", exe, *native["link"]])
    proc = _run([exe], run_env)
    assert "all checks passed" in proc.stdout
