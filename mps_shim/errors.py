"""One exception hierarchy and one gate, check(), that every C call goes through.

The C library reports failures as AOTI_TORCH_FAILURE (1) and keeps, per thread,
a message, "[function] what went wrong", and the failure's kind, an
MPS_SHIM_ERROR_* code (mps_shim.h). check() raises the class of that kind; the
message is never parsed.

Failures also stick: generated code ignores return codes, so the library keeps
the first failure since it was last reported as the process's pending failure.
raise_pending() (and mps_shim.synchronize()) raise it. A failure that check()
raises has been reported, so check() tells the library it was read, and it is
not raised a second time.
"""
from ._native import ffi, lib


class MpsShimError(RuntimeError):
    """A call into libmps_shim failed; the message is the library's own.

    `kind` is the MPS_SHIM_ERROR_* code the library reported.
    """

    kind = lib.MPS_SHIM_ERROR_RUNTIME


class CompileError(MpsShimError, SyntaxError):
    """Metal source did not compile. `diagnostics` holds the compiler's messages.

    Also a SyntaxError, as torch.mps.compile_shader raises for compile errors.
    """

    kind = lib.MPS_SHIM_ERROR_COMPILE

    def __init__(self, *args):
        super().__init__(*args)
        self.msg = args[0] if args else ""  # what traceback prints for a SyntaxError

    def __str__(self):  # SyntaxError would print only its msg/filename fields
        return self.args[0] if self.args else ""

    @property
    def diagnostics(self):
        return str(self)


class KernelNotFoundError(MpsShimError, KeyError, AttributeError):
    """No kernel of that name in the library (also an AttributeError: compile_shader's kernels are attributes)."""

    kind = lib.MPS_SHIM_ERROR_KERNEL_NOT_FOUND

    def __str__(self):  # KeyError would quote the message
        return self.args[0] if self.args else ""


class InvalidHandleError(MpsShimError):
    """A null, deleted or foreign handle (or device buffer) was passed."""

    kind = lib.MPS_SHIM_ERROR_INVALID_HANDLE


class ArgumentError(MpsShimError, ValueError):
    """A kernel argument was bound badly (wrong index, kind or size)."""

    kind = lib.MPS_SHIM_ERROR_ARGUMENT


class DispatchError(MpsShimError):
    """A dispatch was rejected or stopped (grid or threadgroup size, unbound argument, deadlock...)."""

    kind = lib.MPS_SHIM_ERROR_DISPATCH


class SizeError(DispatchError, ValueError):
    """A grid or threadgroup size out of range (also a ValueError, as in torch.mps.compile_shader)."""

    kind = lib.MPS_SHIM_ERROR_SIZE


class KernelReportedError(MpsShimError):
    """A kernel reported an error through c10's error buffer (TORCH_REPORT_ERROR); the message is the kernel's."""

    kind = lib.MPS_SHIM_ERROR_KERNEL_REPORTED


class KernelCheckError(DispatchError):
    """Checked mode (mps_shim.checked) found problems in a dispatch: the message lists them.

    The same reports, as dicts, come from mps_shim.take_check_reports() (or a checked() context's reports).
    """

    kind = lib.MPS_SHIM_ERROR_KERNEL_CHECK


class CommandBlockError(MpsShimError):
    """A command block failed because a call inside it failed."""

    kind = lib.MPS_SHIM_ERROR_COMMAND_BLOCK


class OutOfMemoryError(MpsShimError, MemoryError):
    """An allocation failed or asked for more than the device's memory."""

    kind = lib.MPS_SHIM_ERROR_OUT_OF_MEMORY


class OpError(MpsShimError):
    """An ATen fallback op rejected its arguments (shapes, dtypes, options)."""

    kind = lib.MPS_SHIM_ERROR_OP


class EngineError(MpsShimError):
    """The engine could not run a kernel as written (an engine limit, a compiled module that does not load)."""

    kind = lib.MPS_SHIM_ERROR_ENGINE


class InternalError(MpsShimError):
    """An exception that is not the library's own reached the boundary (from a C++ callback, or a bug)."""

    kind = lib.MPS_SHIM_ERROR_INTERNAL


# MPS_SHIM_ERROR_* code -> class. A code this module does not know (a newer
# library) raises the base class.
ERROR_CLASSES = {cls.kind: cls for cls in (
    MpsShimError, CompileError, KernelNotFoundError, InvalidHandleError, ArgumentError, DispatchError,
    CommandBlockError, OutOfMemoryError, OpError, EngineError, InternalError, SizeError, KernelReportedError,
    KernelCheckError)}


def last_error():
    """This thread's last error message from the library ("" if none)."""
    return ffi.string(lib.mps_shim_last_error()).decode("utf-8", "replace")


def last_error_kind():
    """This thread's last error kind, an MPS_SHIM_ERROR_* code (0 if none)."""
    return lib.mps_shim_last_error_kind()


def _last_exception():
    kind = lib.mps_shim_last_error_kind()
    exc = ERROR_CLASSES.get(kind, MpsShimError)(last_error() or "libmps_shim call failed without a message")
    exc.kind = kind
    return exc


def check(code):
    """Raises the exception for a failed call; returns None on AOTI_TORCH_SUCCESS."""
    if code != 0:
        exc = _last_exception()
        lib.mps_shim_mark_last_error_read()
        raise exc


def mark_read():
    """Tells the library that this thread's last failure was reported another way (not pending any more)."""
    lib.mps_shim_mark_last_error_read()


def raise_pending():
    """Raises the pending failure (the first one since it was last reported) as its exception, and clears it.

    Does nothing when no failure is pending. Does not wait for work; mps_shim.synchronize() does.
    """
    if lib.mps_shim_take_pending_error() != 0:
        raise _last_exception()
