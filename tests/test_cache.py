"""The on-disk kernel cache (DESIGN.md §4): a per-user folder only the user can write,
content-addressed entries written by atomic rename, corrupt entries rebuilt, unsafe
folders refused (compilation still works from a private temporary folder).

Each test runs fresh interpreters with MPS_SHIM_CACHE_DIR pointing at its own folder:
the cache folder is read once per process.
"""
import json
import os
import stat
import textwrap
import uuid

import pytest

CHILD = textwrap.dedent(r"""
    import json, numpy as np, mps_shim
    src = ("#include <metal_stdlib>\nusing namespace metal;\n"
           "kernel void k_TAG(device float* out, constant float* a, uint i [[thread_position_in_grid]]) {\n"
           "    out[i] = a[i] * 3.0f + 1.0f;\n}\n")
    lib = mps_shim.compile_shader(src)
    a = np.arange(1000, dtype=np.float32)
    out = np.zeros_like(a)
    lib.k_TAG(out, a)
    assert np.array_equal(out, a * 3 + 1), "wrong kernel result"
    info = mps_shim.runtime_info()
    print(json.dumps({"cache_dir": info["cache_dir"], "reason": info["cache_disabled_reason"]}))
""")


def child_code(tag):
    return CHILD.replace("TAG", tag)


def new_tag():
    return uuid.uuid4().hex[:12]


def run_child(run_python, cache_dir, tag, **env):
    env = {"MPS_SHIM_CACHE_DIR": str(cache_dir), **env}
    r = run_python(child_code(tag), env=env)
    assert r.returncode == 0, f"child failed:\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def entries(cache_dir):
    """The cache entries: <64 hex digits>.so files directly in the folder."""
    names = [n for n in os.listdir(cache_dir) if n.endswith(".so")]
    for n in names:
        assert len(n) == 67 and all(c in "0123456789abcdef" for c in n[:64]), n
    return sorted(os.path.join(cache_dir, n) for n in names)


def snapshot(cache_dir):
    """Every path under the folder with (mtime_ns, inode, size), except the precompiled
    header, which a detached background job writes whenever it is ready (so folders,
    whose mtime and size change with it, count by inode only)."""
    out = {}
    for root, dirs, files in os.walk(cache_dir):
        for name in dirs + files:
            if ".gch" in name:
                continue
            p = os.path.join(root, name)
            st = os.lstat(p)
            folder = stat.S_ISDIR(st.st_mode)
            out[os.path.relpath(p, cache_dir)] = (0 if folder else st.st_mtime_ns, st.st_ino, 0 if folder else st.st_size)
    return out


def leftovers(cache_dir):
    """Temporary files and build folders that should not survive a compilation."""
    found = []
    for root, dirs, files in os.walk(cache_dir):
        for name in dirs + files:
            if ".tmp." in name or name.startswith(".build-") or name.startswith(".include-"):
                found.append(os.path.join(root, name))
    return found


def is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def test_cache_folder_is_created_private(run_python, tmp_path):
    cache = tmp_path / "a" / "b" / "cache"
    info = run_child(run_python, cache, new_tag())
    assert info == {"cache_dir": str(cache), "reason": ""}
    for folder in (tmp_path / "a", tmp_path / "a" / "b", cache):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700, folder
    [entry] = entries(cache)
    assert is_elf(entry)
    assert stat.S_IMODE(os.stat(entry).st_mode) & 0o022 == 0, "entry writable by others"
    assert leftovers(cache) == []


def test_second_process_hits_the_cache(run_python, tmp_path):
    cache = tmp_path / "cache"
    tag = new_tag()
    run_child(run_python, cache, tag)
    [entry] = entries(cache)
    before = snapshot(cache)
    run_child(run_python, cache, tag)  # same source: loads the entry, writes nothing
    assert entries(cache) == [entry]
    assert snapshot(cache) == before
    run_child(run_python, cache, new_tag())  # a different source: a second entry
    assert len(entries(cache)) == 2


def test_concurrent_processes_compiling_the_same_source(start_python, tmp_path):
    cache = tmp_path / "cache"
    code = child_code(new_tag())
    procs = [start_python(code, env={"MPS_SHIM_CACHE_DIR": str(cache)}) for _ in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["cache_dir"] == str(cache)
    [entry] = entries(cache)
    assert is_elf(entry)
    assert leftovers(cache) == []


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage"])
def test_corrupt_entry_is_detected_and_rebuilt(run_python, tmp_path, damage):
    cache = tmp_path / "cache"
    tag = new_tag()
    run_child(run_python, cache, tag)
    [entry] = entries(cache)
    with open(entry, "rb") as f:
        good = f.read()
    if damage == "truncate":
        bad = good[: len(good) // 2]
    elif damage == "flip":
        middle = len(good) // 2
        bad = good[:middle] + bytes(b ^ 0xFF for b in good[middle:middle + 64]) + good[middle + 64:]
    elif damage == "empty":
        bad = b""
    else:
        bad = b"\x7fELF" + os.urandom(len(good) - 4)
    with open(entry, "wb") as f:
        f.write(bad)
    run_child(run_python, cache, tag)  # asserts the kernel still computes the right values
    assert entries(cache) == [entry]
    with open(entry, "rb") as f:
        rebuilt = f.read()
    assert rebuilt != bad and is_elf(entry) and len(rebuilt) > len(good) // 2
    after = snapshot(cache)
    run_child(run_python, cache, tag)  # the rebuilt entry is valid: reused untouched
    assert snapshot(cache) == after


def test_group_or_other_writable_folder_is_refused(run_python, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # refused even for root: a writable cache is code execution
    scratch = tmp_path / "tmp"
    scratch.mkdir(mode=0o700)
    info = run_child(run_python, shared, new_tag(), TMPDIR=str(scratch))
    assert "writable by other users" in info["reason"] and str(shared) in info["reason"]
    assert info["cache_dir"] == ""
    assert os.listdir(shared) == [], "nothing may be written to a refused folder"
    os.chmod(shared, 0o775)  # group-writable is refused too
    info = run_child(run_python, shared, new_tag(), TMPDIR=str(scratch))
    assert "writable by other users" in info["reason"]
    assert os.listdir(shared) == []


def test_a_file_instead_of_a_folder_is_refused(run_python, tmp_path):
    path = tmp_path / "not-a-folder"
    path.write_text("x")
    scratch = tmp_path / "tmp"
    scratch.mkdir(mode=0o700)
    info = run_child(run_python, path, new_tag(), TMPDIR=str(scratch))
    assert "is not a folder" in info["reason"]
    assert path.read_text() == "x"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand a folder to another user")
def test_folder_of_another_user_is_refused(run_python, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, 65534, 65534)
    scratch = tmp_path / "tmp"
    scratch.mkdir(mode=0o700)
    info = run_child(run_python, foreign, new_tag(), TMPDIR=str(scratch))
    assert "belongs to another user" in info["reason"]
    assert os.listdir(foreign) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write a 0500 folder")
def test_unwritable_folder_falls_back(run_python, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        scratch = tmp_path / "tmp"
        scratch.mkdir(mode=0o700)
        info = run_child(run_python, ro, new_tag(), TMPDIR=str(scratch))
        assert "not writable" in info["reason"]
        assert os.listdir(ro) == []
    finally:
        os.chmod(ro, 0o700)


def test_default_folder_follows_xdg_cache_home(run_python, tmp_path):
    xdg = tmp_path / "xdg"
    r = run_python(child_code(new_tag()), env={"MPS_SHIM_CACHE_DIR": None, "XDG_CACHE_HOME": str(xdg)})
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info == {"cache_dir": str(xdg / "mps_shim"), "reason": ""}
    assert len(entries(xdg / "mps_shim")) == 1


def test_the_first_compile_precompiles_the_engine_header(run_python, tmp_path):
    """A detached job builds mps_host_metal.h.gch beside the embedded headers (later compiles load it)."""
    import glob
    import time

    cache = tmp_path / "cache"
    run_child(run_python, cache, new_tag())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not glob.glob(str(cache / "include-*" / "mps_host_metal.h.gch")):
        if not glob.glob(str(cache / "include-*" / "*.building")):  # the job ended without a header
            break
        time.sleep(0.5)
    assert glob.glob(str(cache / "include-*" / "mps_host_metal.h.gch")), os.listdir(next(cache.glob("include-*")))


def test_keep_cxx_writes_each_translation_into_a_folder(run_python, tmp_path):
    """MPS_SHIM_KEEP_CXX=dir/ keeps every library's C++ (named by its source's hash), for engine developers."""
    keep = tmp_path / "keep"
    keep.mkdir()
    run_child(run_python, tmp_path / "cache", new_tag(), MPS_SHIM_KEEP_CXX=str(keep) + "/")
    kept = list(keep.glob("*.cpp"))
    assert len(kept) == 1 and len(kept[0].stem) == 16, kept
    assert "mps_shim_entry_0" in kept[0].read_text()
