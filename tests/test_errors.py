"""Error kinds as codes, sticky (pending) failures and the abort switch, from Python.

The C++ side of the same rules is tests/c/error_kinds_test.cpp (test_c_abi.py).
"""
import signal
import threading

import numpy as np
import pytest

import mps_shim
from mps_shim import errors
from mps_shim._native import ffi, lib as clib

SOURCE = r"""#include <metal_stdlib>
using namespace metal;
kernel void fill(device float* out, constant float& v, uint i [[thread_position_in_grid]]) {
    out[i] = v;
}
"""

# c10/metal/error.h's ErrorMessages, written by hand (the real header is tested in test_compile_shader_parity.py).
REPORTING_SOURCE = r"""#include <metal_stdlib>
using namespace metal;
struct Message { char file[128]; char func[128]; char message[250]; uint line; };
struct Messages { atomic_uint count; Message msg[30]; };
kernel void report(device float* x, device Messages* errors, uint i [[thread_position_in_grid]]) {
    if (i == 2) {
        const uint k = atomic_fetch_add_explicit(&errors->count, 1u, memory_order_relaxed);
        errors->msg[k].message[0] = 'o';
        errors->msg[k].message[1] = 'w';
        errors->msg[k].line = 7;
    }
    x[i] = 1.0f;
}
"""

DOCUMENTED_CODES = {
    "NONE": 0, "RUNTIME": 1, "INVALID_HANDLE": 2, "ARGUMENT": 3, "COMPILE": 4, "KERNEL_NOT_FOUND": 5,
    "DISPATCH": 6, "COMMAND_BLOCK": 7, "OUT_OF_MEMORY": 8, "OP": 9, "ENGINE": 10, "INTERNAL": 11, "SIZE": 12,
    "KERNEL_REPORTED": 13, "KERNEL_CHECK": 14,
}

CLASS_OF = {
    "RUNTIME": mps_shim.MpsShimError, "INVALID_HANDLE": mps_shim.InvalidHandleError,
    "ARGUMENT": mps_shim.ArgumentError, "COMPILE": mps_shim.CompileError,
    "KERNEL_NOT_FOUND": mps_shim.KernelNotFoundError, "DISPATCH": mps_shim.DispatchError,
    "COMMAND_BLOCK": mps_shim.CommandBlockError, "OUT_OF_MEMORY": mps_shim.OutOfMemoryError,
    "OP": mps_shim.OpError, "ENGINE": mps_shim.EngineError, "INTERNAL": mps_shim.InternalError,
    "SIZE": mps_shim.SizeError, "KERNEL_REPORTED": mps_shim.KernelReportedError,
    "KERNEL_CHECK": mps_shim.KernelCheckError,
}


# conftest.py's autouse fixture clears the pending failure before each test and fails a test
# that leaves one behind.


@pytest.fixture(scope="module")
def fill():
    return mps_shim.ShaderLibrary(SOURCE).get_kernel_function("fill")


# ---- codes and classes ------------------------------------------------------------------------------------------

def test_codes_are_the_documented_values():
    found = {name[len("MPS_SHIM_ERROR_"):]: getattr(clib, name) for name in dir(clib)
             if name.startswith("MPS_SHIM_ERROR_")}
    assert found == DOCUMENTED_CODES


@pytest.mark.parametrize("name", sorted(CLASS_OF))
def test_each_kind_maps_to_its_class(name):
    code = DOCUMENTED_CODES[name]
    cls = errors.ERROR_CLASSES[code]
    assert cls is CLASS_OF[name]
    assert cls.kind == code
    assert issubclass(cls, mps_shim.MpsShimError) and issubclass(cls, RuntimeError)


def test_class_bases():
    # torch.mps.compile_shader raises SyntaxError, ValueError (sizes) and RuntimeError; ours are those too
    assert issubclass(mps_shim.CompileError, SyntaxError)
    assert issubclass(mps_shim.SizeError, ValueError) and issubclass(mps_shim.SizeError, mps_shim.DispatchError)
    assert issubclass(mps_shim.KernelNotFoundError, AttributeError)
    assert issubclass(mps_shim.KernelNotFoundError, KeyError)
    assert issubclass(mps_shim.ArgumentError, ValueError)
    assert issubclass(mps_shim.OutOfMemoryError, MemoryError)
    assert len(set(errors.ERROR_CLASSES.values())) == len(errors.ERROR_CLASSES) == len(CLASS_OF)


def _raw_delete_null_tensor():
    assert clib.aoti_torch_delete_tensor_object(ffi.NULL) == 1


def _kernel_report(fill):
    lib = mps_shim.compile_shader(REPORTING_SOURCE)
    lib.report(np.zeros(4, np.float32), error_buf_idx=1)


def _compile_error():
    mps_shim.ShaderLibrary("kernel void broken(device float* p")


def _block_with_a_failing_call(fill):
    def cb(f):
        f.start_encoding()
        try:
            f.set_arg_int(0, 3)  # a value for a buffer parameter
        except mps_shim.ArgumentError:
            pass
    fill.run_command_block(cb)


TRIGGERS = {
    "RUNTIME": lambda fill: mps_shim.Tensor.empty((-2, 3)),
    "INVALID_HANDLE": lambda fill: errors.check(clib.aoti_torch_delete_tensor_object(ffi.NULL)),
    "ARGUMENT": lambda fill: fill.run_command_block(lambda f: (f.start_encoding(), f.set_arg_tensor(5, np.zeros(1)))),
    "COMPILE": lambda fill: _compile_error(),
    "KERNEL_NOT_FOUND": lambda fill: mps_shim.ShaderLibrary(SOURCE).get_kernel_function("nope"),
    "DISPATCH": lambda fill: fill.run_command_block(lambda f: (f.start_encoding(), f.dispatch(8))),  # unbound
    "SIZE": lambda fill: fill.run_command_block(lambda f: (f.start_encoding(), f.dispatch(8, 2048))),
    "KERNEL_REPORTED": _kernel_report,
    "COMMAND_BLOCK": _block_with_a_failing_call,
    "OUT_OF_MEMORY": lambda fill: mps_shim.Tensor.empty((2 ** 50,), np.uint8),
}


@pytest.mark.parametrize("name", sorted(TRIGGERS))
def test_a_real_failure_raises_the_class_of_its_kind(fill, name):
    with pytest.raises(mps_shim.MpsShimError) as info:
        TRIGGERS[name](fill)
    assert type(info.value) is CLASS_OF[name], str(info.value)
    assert info.value.kind == DOCUMENTED_CODES[name]
    assert str(info.value).startswith("[")
    # raised by check(): read, so not pending (the autouse fixture checks it too)
    mps_shim.synchronize()


def test_the_message_text_does_not_decide_the_class():
    # The message holds "invalid " and "handle", which the old text classifier took for a bad handle.
    with pytest.raises(mps_shim.KernelNotFoundError, match="no kernel named 'invalid handle'"):
        mps_shim.ShaderLibrary(SOURCE).get_kernel_function("invalid handle")
    # A compile error is not recognised by the word "Metal" in the message any more: a null source is not one.
    out = ffi.new("AOTIMetalShaderLibraryHandle*")
    with pytest.raises(mps_shim.MpsShimError, match="null Metal source") as info:
        errors.check(clib.aoti_torch_mps_create_shader_library(ffi.NULL, out))
    assert type(info.value) is mps_shim.MpsShimError


def test_last_error_kind_is_per_thread():
    _raw_delete_null_tensor()
    assert errors.last_error_kind() == clib.MPS_SHIM_ERROR_INVALID_HANDLE
    seen = []

    def other():
        seen.append(errors.last_error_kind())
        try:
            _compile_error()
        except mps_shim.CompileError:
            seen.append(errors.last_error_kind())

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen == [clib.MPS_SHIM_ERROR_NONE, clib.MPS_SHIM_ERROR_COMPILE]
    assert errors.last_error_kind() == clib.MPS_SHIM_ERROR_INVALID_HANDLE
    with pytest.raises(mps_shim.InvalidHandleError):
        errors.raise_pending()


# ---- pending failures -------------------------------------------------------------------------------------------

def test_raise_pending_is_a_no_op_when_nothing_failed(fill):
    errors.raise_pending()
    mps_shim.raise_pending()
    mps_shim.synchronize()


def test_an_unchecked_failure_is_raised_by_synchronize_once():
    _raw_delete_null_tensor()
    with pytest.raises(mps_shim.InvalidHandleError, match=r"^\[aoti_torch_delete_tensor_object\] null tensor handle"):
        mps_shim.synchronize()
    mps_shim.synchronize()


def test_the_first_failure_sticks(fill):
    lib = mps_shim.ShaderLibrary(SOURCE)
    out = ffi.new("AOTIMetalShaderLibraryHandle*")
    fn = ffi.new("AOTIMetalKernelFunctionHandle*")
    assert clib.aoti_torch_mps_create_shader_library(b"kernel void f(", out) == 1
    assert clib.aoti_torch_mps_get_kernel_function(lib._handle, b"missing", fn) == 1
    _raw_delete_null_tensor()
    with pytest.raises(mps_shim.CompileError, match="create_shader_library"):
        errors.raise_pending()
    errors.raise_pending()  # cleared: the later failures were not recorded behind it


def test_reading_a_failure_does_not_clear_another_one_that_is_pending():
    _raw_delete_null_tensor()  # pending, never reported
    with pytest.raises(mps_shim.CompileError):
        _compile_error()  # reported through check(): read
    with pytest.raises(mps_shim.InvalidHandleError):
        mps_shim.synchronize()


def test_a_failure_on_another_thread_is_raised_here():
    t = threading.Thread(target=_raw_delete_null_tensor)
    t.start()
    t.join()
    with pytest.raises(mps_shim.InvalidHandleError, match="delete_tensor_object"):
        mps_shim.synchronize()


def test_failures_from_many_threads_leave_exactly_one_pending():
    barrier = threading.Barrier(8)

    def work():
        barrier.wait()
        for _ in range(50):
            _raw_delete_null_tensor()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with pytest.raises(mps_shim.InvalidHandleError):
        errors.raise_pending()
    errors.raise_pending()


def test_a_failed_block_in_python_leaves_nothing_pending(fill):
    out = np.zeros(4, np.float32)

    def cb(f):
        f.start_encoding()
        f.set_arg_tensor(0, out)
        f.dispatch(4)  # the value is unbound: DispatchError, raised out of the block

    with pytest.raises(mps_shim.DispatchError, match="never set"):
        fill.run_command_block(cb)
    mps_shim.synchronize()


def test_an_ignored_failure_inside_a_block_is_pending_with_its_own_kind(fill):
    out = np.zeros(4, np.float32)
    t = mps_shim.Tensor.from_numpy(out)

    def cb(f):
        # Ignores every return code, as generated code does.
        clib.aoti_torch_mps_start_encoding(f._handle)
        clib.aoti_torch_mps_set_arg_tensor(f._handle, 0, t._handle)
        clib.aoti_torch_mps_dispatch_single(f._handle, 4)  # the value is unbound

    with pytest.raises(mps_shim.CommandBlockError):
        fill.run_command_block(cb)
    # The block's own failure was reported; the dispatch error inside it was not.
    with pytest.raises(mps_shim.DispatchError, match=r"^\[aoti_torch_mps_dispatch_single\].*never set"):
        mps_shim.synchronize()


# ---- abort switch -----------------------------------------------------------------------------------------------

ABORT_CHILD = r"""
import mps_shim
try:
    mps_shim.ShaderLibrary("kernel void broken(device float* p")
except mps_shim.CompileError:
    print("raised CompileError")
"""


def test_abort_on_error_aborts_at_the_failing_call(run_python):
    proc = run_python(ABORT_CHILD, env={"MPS_SHIM_ABORT_ON_ERROR": "1"})
    assert proc.returncode == -signal.SIGABRT, (proc.returncode, proc.stdout, proc.stderr)
    assert "raised CompileError" not in proc.stdout
    assert "[aoti_torch_mps_create_shader_library]" in proc.stderr
    assert "error:" in proc.stderr and "MPS_SHIM_ABORT_ON_ERROR" in proc.stderr


@pytest.mark.parametrize("value", ["0", "", None])
def test_abort_on_error_off(run_python, value):
    proc = run_python(ABORT_CHILD, env={"MPS_SHIM_ABORT_ON_ERROR": value})
    assert proc.returncode == 0, proc.stderr
    assert "raised CompileError" in proc.stdout


def test_an_error_in_a_kernels_entry_point_names_the_kernels_line():
    # A thread-position parameter of a type that cannot hold a position fails in the generated entry point.
    source = ("#include <metal_stdlib>\nusing namespace metal;\nstruct P { int a; };\n\n"
              "kernel void bad(device float* x, P where [[thread_position_in_grid]]) {\n  x[0] = 1;\n}\n")
    with pytest.raises(mps_shim.CompileError) as info:
        mps_shim.ShaderLibrary(source)
    message = str(info.value)
    assert "library.metal:5:" in message and "entry points" not in message
