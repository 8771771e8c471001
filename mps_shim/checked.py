"""Checked mode: Metal kernel sanitizers (memcheck, racecheck, initcheck, synccheck).

Libraries created while checked mode is on compile checked kernels (cached
apart from normal ones): every kernel runs one fiber per Metal thread, and
what a thread does wrong is reported with the kernel, the Metal source line,
the thread's positions and, for memory, the buffer and byte offset. A
dispatch with reports raises KernelCheckError listing them, unless the mode
is warn-only (then they are printed to stderr). Either way they are kept as
data: take_check_reports() returns them as a list of dicts.

    with mps_shim.checked() as c:          # or MPS_SHIM_CHECKED=1 (warn: MPS_SHIM_CHECKED=warn)
        lib = mps_shim.compile_shader(src)
        lib.my_kernel(out, x, threads=n)     # KernelCheckError if the kernel misbehaves
    c.reports                                # [{"kind": "memcheck", "line": 7, ...}, ...]
"""
import json

from ._native import ffi, lib

_MODES = {"off": lib.MPS_SHIM_CHECKED_OFF, "on": lib.MPS_SHIM_CHECKED_ON, "warn": lib.MPS_SHIM_CHECKED_WARN}
_NAMES = {v: k for k, v in _MODES.items()}


def checked_mode():
    """The mode libraries are created with now: "off", "on" or "warn"."""
    return _NAMES[lib.mps_shim_checked_mode()]


def set_checked_mode(mode):
    """Sets the mode ("off", "on", "warn", or a bool); returns the previous one."""
    if isinstance(mode, bool):
        mode = "on" if mode else "off"
    if mode not in _MODES:
        raise ValueError(f"checked mode {mode!r}: use 'off', 'on' or 'warn'")
    return _NAMES[lib.mps_shim_set_checked(_MODES[mode])]


def take_check_reports():
    """The reports of checked dispatches since the last call, as a list of dicts (then cleared)."""
    return json.loads(ffi.string(lib.mps_shim_take_check_reports()).decode("utf-8", "replace"))


class checked:
    """Context manager: checked mode on (warn=True: warn-only) for the libraries created inside it.

    `reports` lists the reports of the dispatches since the block began (also after it ended).
    """

    def __init__(self, warn=False):
        self._mode = "warn" if warn else "on"
        self._reports = []
        self._previous = None

    def __enter__(self):
        take_check_reports()  # earlier dispatches' reports are not this block's
        self._previous = set_checked_mode(self._mode)
        return self

    def __exit__(self, *exc):
        self._reports.extend(take_check_reports())
        set_checked_mode(self._previous)
        return False

    @property
    def reports(self):
        if self._previous is not None and checked_mode() == self._mode:
            self._reports.extend(take_check_reports())
        return list(self._reports)
