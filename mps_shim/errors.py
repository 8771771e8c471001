"""One exception hierarchy and one gate, check(), that every C call goes through.

The C library reports failures as AOTI_TORCH_FAILURE (1) and keeps a per-thread
message, "[function] what went wrong"; check() turns that into the matching
exception class.
"""
from ._native import ffi, lib


class MpsShimError(RuntimeError):
    """A call into libmps_shim failed; the message is the library's own."""


class CompileError(MpsShimError):
    """Metal source did not compile. `diagnostics` holds the compiler's messages."""

    @property
    def diagnostics(self):
        return str(self)


class KernelNotFoundError(MpsShimError, KeyError):
    """No kernel of that name in the library."""

    def __str__(self):  # KeyError would quote the message
        return self.args[0] if self.args else ""


class InvalidHandleError(MpsShimError):
    """A null, deleted or foreign handle was passed."""


class ArgumentError(MpsShimError, ValueError):
    """A kernel argument was bound badly (wrong index, kind or size)."""


class DispatchError(MpsShimError):
    """A dispatch was rejected (grid or threadgroup size, unbound argument...)."""


class CommandBlockError(MpsShimError):
    """A command block failed because a call inside it failed."""


def last_error():
    """This thread's last error message from the library ("" if none)."""
    return ffi.string(lib.mps_shim_last_error()).decode("utf-8", "replace")


def _classify(message):
    api = message[1:message.index("]")] if message.startswith("[") and "]" in message else ""
    if "handle" in message and ("invalid " in message or "null " in message):
        return InvalidHandleError
    if api == "aoti_torch_mps_create_shader_library" and ("Metal" in message or "error:" in message):
        return CompileError
    if api == "aoti_torch_mps_get_kernel_function" and "no kernel named" in message:
        return KernelNotFoundError
    if api == "aoti_torch_mps_run_command_block":
        return CommandBlockError
    if api.startswith("aoti_torch_mps_set_arg") or api == "mps_shim_set_arg_bytes":
        return ArgumentError
    if api.startswith("aoti_torch_mps_dispatch"):
        return DispatchError
    return MpsShimError


def check(code):
    """Raises the exception for a failed call; returns None on AOTI_TORCH_SUCCESS."""
    if code != 0:
        message = last_error()
        raise _classify(message)(message or "libmps_shim call failed without a message")
