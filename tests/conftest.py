"""Shared set-up for the mps_shim Python tests.

The kernel cache folder is read once per process, when the first library is
compiled, so MPS_SHIM_CACHE_DIR is pointed at a private per-session folder here,
at import time, before any test module imports mps_shim. Tests that need their
own cache folder (test_cache.py, test_cli.py) run subprocesses with their own
environment through the `run_python` / `run_cli` fixtures.

pyproject.toml runs pytest with --import-mode=importlib, so test modules cannot
import this file: helpers are exposed as fixtures.
"""
import atexit
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if "MPS_SHIM_CACHE_DIR" in os.environ:
    SESSION_CACHE_DIR = os.environ["MPS_SHIM_CACHE_DIR"]
else:
    SESSION_CACHE_DIR = tempfile.mkdtemp(prefix="mps_shim-pytest-cache-")
    os.environ["MPS_SHIM_CACHE_DIR"] = SESSION_CACHE_DIR
    atexit.register(shutil.rmtree, SESSION_CACHE_DIR, True)

# `pytest` (unlike `python -m pytest`) does not put the working directory on
# sys.path; an in-place build lives in the repository root.
if importlib.util.find_spec("mps_shim") is None:
    sys.path.insert(0, REPO_ROOT)

# Shared test helpers (torch_convert.py): importable by name from test modules.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

_spec = importlib.util.find_spec("mps_shim")
# The folder holding the mps_shim package this session imports; subprocesses get it on PYTHONPATH.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(_spec.origin)) if _spec and _spec.origin else REPO_ROOT


def subprocess_env(env=None):
    """os.environ plus `env` (a value of None removes the variable), with mps_shim importable."""
    out = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = str(value)
    out["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, out.get("PYTHONPATH", "")) if p)
    return out


# Children start outside the repository: `python -c` puts its working directory
# first on sys.path, where the unbuilt source package would shadow the installed one.
NEUTRAL_CWD = tempfile.gettempdir()


def _run(argv, env=None, cwd=None, timeout=120):
    return subprocess.run(argv, env=subprocess_env(env), cwd=cwd or NEUTRAL_CWD, capture_output=True, text=True,
                          timeout=timeout, check=False)


def run_python(code, env=None, cwd=None, timeout=120):
    """Runs `python -c code` in a fresh interpreter; returns the CompletedProcess (text mode)."""
    return _run([sys.executable, "-c", code], env=env, cwd=cwd, timeout=timeout)


def start_python(code, env=None, cwd=None):
    """Starts `python -c code` without waiting; returns the Popen (text mode, pipes)."""
    return subprocess.Popen([sys.executable, "-c", code], env=subprocess_env(env), cwd=cwd or NEUTRAL_CWD,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_cli(*args, env=None, cwd=None, timeout=120):
    """Runs `python -m mps_shim.cli ARGS`; returns the CompletedProcess (text mode)."""
    return _run([sys.executable, "-m", "mps_shim.cli", *[str(a) for a in args]], env=env, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="session", autouse=True)
def session_cache_dir():
    """The kernel cache folder of this test process (set before mps_shim was imported)."""
    assert os.environ.get("MPS_SHIM_CACHE_DIR") == SESSION_CACHE_DIR
    return SESSION_CACHE_DIR


@pytest.fixture(scope="session", name="run_python")
def run_python_fixture():
    return run_python


@pytest.fixture(scope="session", name="start_python")
def start_python_fixture():
    return start_python


@pytest.fixture(scope="session", name="run_cli")
def run_cli_fixture():
    return run_cli


@pytest.fixture(scope="session")
def examples_dir():
    import mps_shim

    return os.path.join(os.path.dirname(os.path.abspath(mps_shim.__file__)), "examples")


@pytest.fixture(autouse=True)
def no_failure_left_pending():
    """Every failure the Python layer raises counts as read: none may be left pending after a test.

    Tests that make failing C calls without check() take the pending failure themselves.
    """
    import mps_shim
    from mps_shim._native import lib

    lib.mps_shim_take_pending_error()
    yield
    if lib.mps_shim_take_pending_error():
        pytest.fail(f"a failure was left pending (not raised by check()): {mps_shim.errors.last_error()}")


# ---- engine cross-check ----------------------------------------------------------------------------------------------
# Kernels that reach a barrier or SIMD-group function run as lane loops (a
# translation of the kernel) or on fibers (the kernel as written). With
# MPS_SHIM_CROSSCHECK=1 every lane-loop dispatch also runs on fibers and fails
# unless both give the same bytes (csrc/runtime/crosscheck.cpp). It is on for
# every test (kernels on other engines are not affected), so each threadgroup
# kernel of the suite checks the lane-loop translation. A test whose kernels
# legitimately differ between engines (a race, atomics whose order shows,
# deadlocks, expected failures) is marked
# `@pytest.mark.engine_specific(reason=...)`. `pytest --crosscheck=off` skips
# the check everywhere (to time the suite, or to bisect).

def pytest_addoption(parser):
    parser.addoption("--crosscheck", choices=("on", "off"), default="on",
                     help="run every lane-loop dispatch on fibers too and require identical bytes "
                          "(MPS_SHIM_CROSSCHECK=1) in tests not marked engine_specific (default: on)")
    parser.addoption("--cuda-check", choices=("auto", "on", "off"), default="auto",
                     help="translate every library the tests create to CUDA and compile it with NVRTC "
                          "(MPS_SHIM_COMPILE_CHECK=cuda); auto: where NVRTC and libcu++'s headers are installed "
                          "(pip install nvidia-cuda-nvrtc-cu12 nvidia-cuda-cccl-cu12)")


def _nvrtc_missing():
    """Why the cuda backend's compile check cannot run here, or None."""
    import mps_shim
    try:
        mps_shim.compile_check("kernel void k(device int* x, uint i [[thread_position_in_grid]]) { x[i] = 1; }")
    except mps_shim.EngineError as e:
        return str(e)
    return None


def pytest_configure(config):
    config.addinivalue_line("markers", "engine_specific(reason): the test's kernels legitimately differ between "
                                       "lane loops and fibers; MPS_SHIM_CROSSCHECK stays off")
    config.addinivalue_line("markers", "no_cuda_check(reason): the test's libraries do not compile for CUDA yet "
                                       "(the reason says why); MPS_SHIM_COMPILE_CHECK stays off")
    config.addinivalue_line("markers", "host_engine(reason): the test inspects what the host engine does (its "
                                       "module cache, lane loops, host memory); skipped on other backends")
    config.addinivalue_line("markers", "checked_reports(reason): the test's kernels do on purpose what checked "
                                       "mode reports (they test mps_shim's answer to Metal's undefined "
                                       "behaviour); under MPS_SHIM_CHECKED=1 they run warn-only")
    # On the host backend, every library a test creates is also compiled for CUDA (a translation
    # that does not compile fails the test at the Metal line), unless a fixture opts out
    # (third_party.without_cuda_check: the whole MLX and ggml libraries).
    mode = config.getoption("--cuda-check")
    if mode == "off" or os.environ.get("MPS_SHIM_BACKEND", "host") != "host":
        return
    missing = _nvrtc_missing()
    if missing is None:
        os.environ.setdefault("MPS_SHIM_COMPILE_CHECK", "cuda")
    elif mode == "on":
        raise pytest.UsageError(f"--cuda-check=on: {missing}")


def _marker_reason(request, name):
    """The reason a test's `name` marker gives, or None when the test is not marked; a marker without
    a reason fails the test (each says why the test is an exception)."""
    marker = request.node.get_closest_marker(name)
    if marker is None:
        return None
    reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else None)
    if not reason:
        pytest.fail(f"@pytest.mark.{name} needs a reason")
    return reason


@pytest.fixture(autouse=True)
def host_engine_only(request):
    """Tests marked host_engine skip where MPS_SHIM_BACKEND names another backend."""
    reason = _marker_reason(request, "host_engine")
    backend = os.environ.get("MPS_SHIM_BACKEND", "host")
    if reason is not None and backend != "host":
        pytest.skip(f"host engine only ({reason}); this is {backend}")


@pytest.fixture(autouse=True)
def cuda_compile_check(request, monkeypatch):
    """No CUDA compile check for the libraries a test marked no_cuda_check creates (the marker names why)."""
    if _marker_reason(request, "no_cuda_check") is not None:
        monkeypatch.delenv("MPS_SHIM_COMPILE_CHECK", raising=False)


@pytest.fixture(autouse=True)
def checked_mode_reports(request):
    """Under MPS_SHIM_CHECKED=1 (the CI's checked run), tests marked checked_reports run warn-only."""
    if _marker_reason(request, "checked_reports") is None:
        yield
        return
    import mps_shim

    previous = mps_shim.checked_mode()
    if previous == "on":
        mps_shim.set_checked_mode("warn")
    yield
    mps_shim.set_checked_mode(previous)


@pytest.fixture(autouse=True)
def engine_crosscheck(request, monkeypatch):
    """MPS_SHIM_CROSSCHECK=1 for the test (read by each dispatch), unless it is marked engine_specific."""
    specific = _marker_reason(request, "engine_specific")
    if specific is None and request.config.getoption("--crosscheck") == "on":
        monkeypatch.setenv("MPS_SHIM_CROSSCHECK", "1")
    else:
        monkeypatch.delenv("MPS_SHIM_CROSSCHECK", raising=False)
    yield
