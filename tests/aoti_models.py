"""Small real models for the AOTInductor tests (test_aoti.py): each CASES entry builds a model and its inputs.

Sizes are small so that exporting and running stay quick on 2 cores; the
shapes still exercise what matters (reductions over rows, several channels,
heads, a causal mask). Everything is seeded: build(name) is deterministic.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class EmbedLayerNorm(nn.Module):
    def __init__(self, vocab=50, dim=32):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(8, dim) * 0.1)
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids):
        return self.norm(self.emb(ids) + self.pos[: ids.shape[1]])


class GroupNormSiLU(nn.Module):
    def __init__(self, channels=16, groups=4):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)

    def forward(self, x):
        return F.silu(self.norm(x))


class Upsample(nn.Module):
    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode="nearest") + F.interpolate(
            x, scale_factor=2, mode="bilinear", align_corners=False)


class LayerNormWeightsAsInputs(nn.Module):
    """Embedding + LayerNorm with every weight an argument: the model.so holds no constants."""

    def forward(self, ids, table, weight, bias):
        return F.layer_norm(F.embedding(ids, table), (table.shape[1],), weight, bias)


class MLP(nn.Module):
    def __init__(self, d_in=32, hidden=64, d_out=10):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d_in, hidden), nn.Linear(hidden, d_out)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


class CNNBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        return F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)


class ResNetBlock(nn.Module):
    def __init__(self, c=8):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class MobileNetBlock(nn.Module):
    def __init__(self, c_in=8, c_out=16):
        super().__init__()
        self.dw, self.bn1 = nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False), nn.BatchNorm2d(c_in)
        self.pw, self.bn2 = nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out)

    def forward(self, x):
        return F.relu6(self.bn2(self.pw(F.relu6(self.bn1(self.dw(x))))))


class UNetUpBlock(nn.Module):
    def __init__(self, c_in=16, c_out=8):
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_out, 2, stride=2)
        self.conv = nn.Conv2d(2 * c_out, c_out, 3, padding=1)
        self.norm = nn.GroupNorm(4, c_out)

    def forward(self, x, skip):
        return F.silu(self.norm(self.conv(torch.cat([self.up(x), skip], dim=1))))


class GPT2Block(nn.Module):
    def __init__(self, dim=32, heads=4, sdpa=True):
        super().__init__()
        self.heads, self.sdpa = heads, sdpa
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc, self.out = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def attention(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
            y = att.masked_fill(~mask, float("-inf")).softmax(dim=-1) @ v
        return self.proj(y.transpose(1, 2).reshape(b, t, d))

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GRUCellModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.cell = nn.GRUCell(16, 32)

    def forward(self, x, h):
        return self.cell(x, h)


class LSTMCellModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.cell = nn.LSTMCell(16, 32)

    def forward(self, x, h, c):
        return self.cell(x, (h, c))


class EmbeddingHead(nn.Module):
    """Token embedding and a tied output head (logits = h @ E^T)."""

    def __init__(self, vocab=64, dim=32):
        super().__init__()
        self.emb, self.norm = nn.Embedding(vocab, dim), nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, ids):
        return self.head(self.norm(self.emb(ids)))


class CrossEntropy(nn.Module):
    def __init__(self, dim=32, classes=10):
        super().__init__()
        self.fc = nn.Linear(dim, classes)

    def forward(self, x, target):
        return F.cross_entropy(self.fc(x), target)


class WeightsAsInputs(nn.Module):
    """`model` with its parameters and buffers as inputs, after the model's own (torch.func.functional_call).

    The wrapped model is a plain attribute, not a submodule, so export lifts
    nothing of it into constants: the model.so holds no weights. Tied weights
    are one input (named_parameters lists each tensor once; functional_call
    ties them again).
    """

    def __init__(self, model):
        super().__init__()
        self.__dict__["wrapped"] = model
        self.names = [n for n, _ in model.named_parameters()] + [n for n, _ in model.named_buffers()]

    def state(self):
        named = dict(self.wrapped.named_parameters())
        named.update(self.wrapped.named_buffers())
        return tuple(named[n].detach().clone() for n in self.names)

    def forward(self, *args):
        n = len(args) - len(self.names)
        return torch.func.functional_call(self.wrapped, dict(zip(self.names, args[n:])), args[:n])


def _randn(*shape):
    return torch.randn(*shape)


def _randomise_norms(model):
    """BatchNorm statistics and norm affine parameters that are not the identity, so they are tested."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
            if isinstance(m, (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)) and m.weight is not None:
                m.weight.normal_(1.0, 0.2)
                m.bias.normal_(0.0, 0.2)
    return model


def _weights_as_inputs():
    table, w, b = _randn(50, 32), torch.randn(32) * 0.2 + 1, torch.randn(32) * 0.2
    return LayerNormWeightsAsInputs(), (torch.randint(0, 50, (2, 8)), table, w, b)


# name -> () -> (module, example inputs). All float32 unless the name says otherwise.
CASES = {
    "embed_layernorm": lambda: (EmbedLayerNorm(), (torch.randint(0, 50, (2, 8)),)),
    "groupnorm_silu": lambda: (GroupNormSiLU(), (_randn(2, 16, 8, 8),)),
    "upsample": lambda: (Upsample(), (_randn(1, 4, 8, 8),)),
    "layernorm_weights_as_inputs": _weights_as_inputs,
    "mlp": lambda: (MLP(), (_randn(4, 32),)),
    "cnn_batchnorm": lambda: (CNNBatchNorm(), (_randn(2, 3, 16, 16),)),
    "resnet_block": lambda: (ResNetBlock(), (_randn(2, 8, 16, 16),)),
    "mobilenet_block": lambda: (MobileNetBlock(), (_randn(2, 8, 16, 16),)),
    "unet_up_block": lambda: (UNetUpBlock(), (_randn(1, 16, 8, 8), _randn(1, 8, 16, 16))),
    "transformer_encoder_layer": lambda: (
        nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.0, batch_first=True), (_randn(2, 8, 32),)),
    "gpt2_block_sdpa": lambda: (GPT2Block(sdpa=True), (_randn(2, 8, 32),)),
    "gpt2_block_decomposed": lambda: (GPT2Block(sdpa=False), (_randn(2, 8, 32),)),
    "gru_cell": lambda: (GRUCellModel(), (_randn(4, 16), _randn(4, 32))),
    "lstm_cell": lambda: (LSTMCellModel(), (_randn(4, 16), _randn(4, 32), _randn(4, 32))),
    "embedding_head": lambda: (EmbeddingHead(), (torch.randint(0, 64, (2, 8)),)),
    "cross_entropy": lambda: (CrossEntropy(), (_randn(8, 32), torch.randint(0, 10, (8,)))),
}

# Half-precision variants: the float32 case converted (model and floating inputs).
HALF_CASES = {f"{base}_{dt}": (base, getattr(torch, dt))
              for base in ("groupnorm_silu", "mlp", "gpt2_block_sdpa", "cnn_batchnorm", "transformer_encoder_layer",
                           "resnet_block", "lstm_cell")
              for dt in ("float16", "bfloat16")}

# Every float32 case that has weights, with its weights as inputs (WeightsAsInputs).
WEIGHTS_AS_INPUTS_CASES = {f"{base}_weights_as_inputs": base for base in CASES
                           if base not in ("layernorm_weights_as_inputs", "upsample")}


def build(name):
    """(eval-mode module, example inputs) for a CASES, HALF_CASES or WEIGHTS_AS_INPUTS_CASES name, seeded."""
    torch.manual_seed(0)
    if name in WEIGHTS_AS_INPUTS_CASES:
        model, inputs = build(WEIGHTS_AS_INPUTS_CASES[name])
        wrapper = WeightsAsInputs(model).eval()
        return wrapper, inputs + wrapper.state()
    if name in HALF_CASES:
        base, dtype = HALF_CASES[name]
        model, inputs = build(base)
        return model.to(dtype), tuple(x.to(dtype) if x.is_floating_point() else x for x in inputs)
    model, inputs = CASES[name]()
    return _randomise_norms(model).eval(), inputs
