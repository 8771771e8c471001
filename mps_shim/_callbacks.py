"""The trampoline that runs a Python callable as a run_command_block callback.

Protocol: run_command_block(func, callable) wraps a _Payload (the callable and
a slot for an exception) in ffi.new_handle and passes it as user_data. The C
library calls _mps_shim_command_block_trampoline(func, user_data) on this
thread; the trampoline calls the callable with the KernelFunction. It must not
let an exception unwind into C, so it catches BaseException, stores it on the
payload and returns. After the C call returns, the caller re-raises the stored
exception, which takes precedence over the library's error code (the library's
failure then counts as read, so it is not reported again as pending). The handle
is kept alive by the caller's frame for the duration of the C call; C never
keeps user_data after run_command_block returns.
"""
from ._native import ffi, lib
from .errors import check, mark_read


class _Payload:
    __slots__ = ("callback", "function", "error")

    def __init__(self, callback, function):
        self.callback = callback
        self.function = function
        self.error = None


@ffi.def_extern()
def _mps_shim_command_block_trampoline(func, user_data):
    payload = ffi.from_handle(user_data)
    try:
        payload.callback(payload.function)
    except BaseException as exc:  # noqa: B036 - must not unwind into C
        payload.error = exc


def run_command_block(function, callback):
    """Runs callback(function) inside a command block of `function` (a KernelFunction)."""
    payload = _Payload(callback, function)
    handle = ffi.new_handle(payload)
    code = lib.aoti_torch_mps_run_command_block(
        function._handle, lib._mps_shim_command_block_trampoline, handle
    )
    if payload.error is not None:
        if code != 0:
            mark_read()  # the block's own failure is reported as the callback's exception
        raise payload.error
    check(code)
