"""AOTInductor models end to end: a GPT-2 block and a ResNet basic block, exported for `mps`,
run by mps_shim's host engine, against torch eager on the CPU in the same process.

Prints per model the eager time, the mps_shim time and the ratio eager / mps_shim (>= 1 means
faster than torch), plus the time to load the cached model.so. Needs torch 2.13.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import best_time  # noqa: E402


def models(torch):
    nn = torch.nn

    class GPT2Block(nn.Module):
        def __init__(self, d=768, heads=12):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
            self.heads = heads

        def forward(self, x):
            b, t, d = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
            q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
            y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
            return x + self.out(nn.functional.gelu(self.fc(self.ln2(x))))

    class BasicBlock(nn.Module):
        def __init__(self, c=64):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
            self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(x + self.bn2(self.conv2(y)))

    return {
        "GPT-2 block (seq 128, d 768)": (GPT2Block().eval(), (torch.randn(1, 128, 768),)),
        "ResNet basic block (64ch, 56x56)": (BasicBlock().eval(), (torch.randn(1, 64, 56, 56),)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print("torch is not installed; nothing to measure")
        return 0
    import mps_shim.aoti

    torch.manual_seed(0)
    folder = tempfile.mkdtemp(prefix="mps_shim-bench-aoti-")
    print(f"{'model':<34} {'eager ms':>9} {'mps_shim ms':>12} {'ratio':>7} {'load s':>7}")
    for name, (model, inputs) in models(torch).items():
        path = os.path.join(folder, name.split()[0].lower() + ".so")
        mps_shim.aoti.export(model, inputs, path)
        mps_shim.aoti.load(path)  # first load may compile kernels into the cache
        t0 = time.perf_counter()
        compiled = mps_shim.aoti.load(path)
        load_s = time.perf_counter() - t0
        arrays = [x.numpy() for x in inputs]
        with torch.no_grad():
            eager = best_time(lambda: model(*inputs), repeat=args.repeat)
            expected = model(*inputs).numpy()
        ours = best_time(lambda: compiled(*arrays), repeat=args.repeat)
        got = compiled(*arrays)
        got = got[0] if isinstance(got, (list, tuple)) else got
        err = float(np.max(np.abs(got - expected)))
        print(f"{name:<34} {eager * 1e3:9.2f} {ours * 1e3:12.2f} {eager / ours:7.2f} {load_s:7.3f}   max |err| {err:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
