"""Transformer encoder of wav2vec 2.0: conv relative position embedding, post-LN or pre-LN
layers with fused-QKV scaled-dot-product attention, LayerDrop, and optional hourglass levels.

Layers are kept in one flat ``layers`` list whatever the hourglass shape, so a vanilla
checkpoint loads into an hourglass model (and back) layer for layer.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from hourglass_w2v2.models.config import hourglass_num_layers
from hourglass_w2v2.models.hourglass import Shorten, Upsample


def fft_size(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n: sizes pocketfft / cuFFT transform fastest."""
    best = 1 << max(n - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


class _PaddedRfft(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, n: int) -> Tensor:  # noqa: D102
        ctx.length, ctx.n = x.shape[-1], n
        return torch.fft.rfft(x, n=n)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # noqa: D102
        # adjoint of the one-sided DFT, Re(sum_f G_f e^{+2 pi i f t / n}), through irfft, which
        # doubles the bins between DC and Nyquist: halve those first (half the memory of a
        # full-length complex inverse)
        last = grad.shape[-1] - 1 if ctx.n % 2 == 0 else grad.shape[-1]
        grad = grad.clone()
        grad[..., 1:last] *= 0.5
        return torch.fft.irfft(grad, n=ctx.n, norm="forward")[..., : ctx.length], None


def padded_rfft(x: Tensor, n: int) -> Tensor:
    """``torch.fft.rfft(x, n=n)`` (last dim, zero-padded to ``n``) that keeps nothing for
    backward: torch's keeps the padded input, ``n / length`` times the input's size, although
    its gradient needs only the sizes."""
    return _PaddedRfft.apply(x, n)


def grouped_conv1d_fft(x: Tensor, weight: Tensor, bias: Tensor | None, padding: int, groups: int):
    """``F.conv1d(x, weight, bias, padding=padding, groups=groups)`` cut to ``x``'s length,
    computed with real FFTs over time, in fp32.

    x (B, C, T), weight (C_out, C / groups, K) -> (B, C_out, T). A direct grouped conv costs
    C_out x C/groups x K multiply-adds per frame (Base's 128-tap ``pos_conv``: 4.7 M, two
    thirds of a transformer layer); in frequency space it is one (C_out/groups x C/groups)
    product per group and frequency, so the cost no longer grows with K.
    """
    batch, channels, length = x.shape
    out_channels, group_in, kernel = weight.shape
    # out[t] = sum_k w[k] x[t + k - padding] is the circular cross-correlation of x and w at
    # lag t - padding; with >= length + kernel points it never wraps into real frames
    n = fft_size(length + kernel)
    with torch.autocast(x.device.type, enabled=False):
        xf = padded_rfft(x.float(), n)  # (B, C, F)
        wf = padded_rfft(weight.float(), n).conj()  # (C_out, C/g, F)
        freqs = xf.shape[-1]
        xg = xf.view(batch, groups, group_in, freqs).permute(1, 3, 2, 0)  # (g, F, C/g, B)
        wg = wf.view(groups, out_channels // groups, group_in, freqs).permute(0, 3, 1, 2)
        yf = torch.matmul(wg, xg)  # (g, F, C_out/g, B)
        yf = yf.permute(3, 0, 2, 1).reshape(batch, out_channels, freqs)
        y = torch.fft.irfft(yf, n=n)
    y = y.roll(padding, dims=-1)[..., :length]  # lag t - padding sits at index t
    if bias is not None:
        y = y + bias.float()[None, :, None]
    return y


class PositionalConvEmbedding(nn.Module):
    """Grouped Conv1d over time with weight norm (dim=2) and GELU, fairseq's ``pos_conv``.

    With an even kernel, ``padding = kernel // 2`` yields one frame too many; like fairseq's
    ``SamePad`` and torchaudio, the last frame is dropped.

    ``impl``: ``"conv"`` (``F.conv1d``), ``"fft"`` (:func:`grouped_conv1d_fft`, the same
    function to ~1e-6) or ``"auto"``: fft on CPU, where this layer's forward+backward is 3-4x
    faster at ``tiny``'s shapes (a whole ``tiny`` pretraining step 0.95-1.18x, within the
    noise; docs/benchmarks.md), conv elsewhere (cuDNN; the GPU benchmark times both).
    """

    def __init__(self, dim: int, kernel_size: int = 128, groups: int = 16, impl: str = "auto"):
        super().__init__()
        if impl not in ("auto", "conv", "fft"):
            raise ValueError(f"pos_conv impl must be auto|conv|fft, got {impl!r}")
        conv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=groups)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.num_remove = 1 if kernel_size % 2 == 0 else 0
        self.impl = impl

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, C) -> (B, T, C)."""
        xt = x.transpose(1, 2)
        impl = self.impl
        if impl == "auto":
            impl = "fft" if x.device.type == "cpu" else "conv"
        if impl == "fft":
            conv = self.conv
            y = grouped_conv1d_fft(xt, conv.weight, conv.bias, conv.padding[0], conv.groups)
            y = y.to(x.dtype)
        else:
            y = self.conv(xt)
            if self.num_remove:
                y = y[..., : -self.num_remove]
        return F.gelu(y).transpose(1, 2)


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused QKV projection and SDPA."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} not divisible by num_heads {num_heads}")
        self.num_heads, self.dropout = num_heads, dropout
        self.qkv_proj = nn.Linear(dim, 3 * dim)  # rows: q, k, v
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, attn_mask: Tensor | None) -> Tensor:
        """x (B, T, C); attn_mask (B, 1, 1, T) bool, True = may attend, or None."""
        batch, length, dim = x.shape
        qkv = self.qkv_proj(x).view(batch, length, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, T, Dh)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(y.transpose(1, 2).reshape(batch, length, dim))


class EncoderLayer(nn.Module):
    """Transformer layer with fairseq's parameter names; ``layer_norm_first`` selects pre-LN."""

    def __init__(
        self,
        dim: int,
        ffn_dim: int,
        num_heads: int,
        dropout: float,
        attention_dropout: float,
        activation_dropout: float,
        layer_norm_first: bool,
    ):
        super().__init__()
        self.layer_norm_first = layer_norm_first
        self.self_attn = SelfAttention(dim, num_heads, attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.activation_dropout = nn.Dropout(activation_dropout)

    def _ffn(self, x: Tensor) -> Tensor:
        return self.dropout(self.fc2(self.activation_dropout(F.gelu(self.fc1(x)))))

    def forward(self, x: Tensor, attn_mask: Tensor | None) -> Tensor:
        """(B, T, C) -> (B, T, C)."""
        if self.layer_norm_first:
            x = x + self.dropout(self.self_attn(self.self_attn_layer_norm(x), attn_mask))
            return x + self._ffn(self.final_layer_norm(x))
        x = self.self_attn_layer_norm(x + self.dropout(self.self_attn(x, attn_mask)))
        return self.final_layer_norm(x + self._ffn(x))


def _attn_mask(padding_mask: Tensor | None) -> Tensor | None:
    return None if padding_mask is None else (~padding_mask)[:, None, None, :]


def keep_in_graph(x: Tensor, params: Iterable[nn.Parameter]) -> Tensor:
    """Add 0 x (one element of every trainable parameter) so skipped parameters still get a
    (zero) gradient: DDP then needs no ``find_unused_parameters`` when LayerDrop skips a layer
    or the encoder is frozen for some updates."""
    anchor = sum(p.view(-1)[:1].sum() for p in params if p.requires_grad)
    return x if isinstance(anchor, int) else x + 0.0 * anchor.to(x.dtype)


class TransformerEncoder(nn.Module):
    """Position embedding + transformer layers, optionally arranged as an hourglass.

    ``hourglass`` is a parsed spec ``(n_pre, (inner, factor), n_post)`` or None (vanilla).
    A level with factor 1 runs its layers at full rate with no resampling or residual, so it is
    exactly the vanilla encoder. With ``checkpoint_layers`` (an attribute, may be set after
    construction), each layer and the position conv, run in training with gradients, keep only
    their input and recompute the rest in backward, replaying the same dropout draws.
    """

    def __init__(
        self,
        dim: int = 768,
        num_layers: int = 12,
        ffn_dim: int = 3072,
        num_heads: int = 12,
        layer_norm_first: bool = False,
        conv_pos: int = 128,
        conv_pos_groups: int = 16,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        activation_dropout: float = 0.0,
        layerdrop: float = 0.0,
        hourglass: tuple | None = None,
        shorten: str = "avg",
        upsample: str = "repeat",
        shorten_pools_padding: bool = False,
        checkpoint_layers: bool = False,
    ):
        super().__init__()
        self.layer_norm_first, self.layerdrop = layer_norm_first, layerdrop
        self.checkpoint_layers = checkpoint_layers
        self.hourglass = hourglass
        self.pos_conv = PositionalConvEmbedding(dim, conv_pos, conv_pos_groups)
        self.layer_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(
                dim,
                ffn_dim,
                num_heads,
                dropout,
                attention_dropout,
                activation_dropout,
                layer_norm_first,
            )
            for _ in range(num_layers)
        )
        self.shorteners, self.upsamplers = nn.ModuleList(), nn.ModuleList()
        # index of the layer that reads each resampler's output (layer-wise lr decay)
        self.resampler_next_layer: list[tuple[int, int]] = []
        level, start = hourglass, 0
        while level is not None:
            n_pre, (inner, factor), n_post = level
            if factor > 1:
                self.shorteners.append(Shorten(dim, factor, shorten, shorten_pools_padding))
                self.upsamplers.append(Upsample(dim, factor, upsample))
                end = start + hourglass_num_layers(level)
                self.resampler_next_layer.append((start + n_pre, end - n_post))
            start += n_pre
            level = None if isinstance(inner, int) else inner

    def _drop_decisions(self) -> list[bool]:
        """Which layers LayerDrop skips in this forward call.

        Drawn from the global torch RNG, which the trainer seeds before every micro-batch from
        its position in the global batch (``(seed, epoch, step, shard)``): the same shard drops
        the same layers whether it runs on its own GPU or as an accumulation step, so results
        do not change with the GPU count. Ranks may drop different layers; skipped layers stay
        in the graph with zero gradients (:func:`keep_in_graph`), so DDP never waits for them.
        """
        if not (self.training and self.layerdrop > 0):
            return [False] * len(self.layers)
        return (torch.rand(len(self.layers)) < self.layerdrop).tolist()

    def _run_layers(self, x, padding_mask, start, count, drops, outputs):
        attn_mask = _attn_mask(padding_mask)
        for i in range(start, start + count):
            if drops[i]:
                x = keep_in_graph(x, self.layers[i].parameters())
            elif self.checkpoint_layers and self.training and torch.is_grad_enabled():
                x = checkpoint(self.layers[i], x, attn_mask, use_reentrant=False)
            else:
                x = self.layers[i](x, attn_mask)
            if outputs is not None:
                outputs.append(x)
        return x

    def _run_level(self, x, padding_mask, level, start, depth, drops, outputs):
        """Run one hourglass level; return the output and the index of the next layer."""
        n_pre, (inner, factor), n_post = level
        x = self._run_layers(x, padding_mask, start, n_pre, drops, outputs)
        start += n_pre
        if factor > 1:
            residual, length = x, x.shape[1]
            x, short_mask = self.shorteners[depth](x, padding_mask)
            depth += 1
        else:
            short_mask = padding_mask
        if isinstance(inner, int):
            x = self._run_layers(x, short_mask, start, inner, drops, outputs)
            start += inner
        else:
            x, start = self._run_level(x, short_mask, inner, start, depth, drops, outputs)
        if factor > 1:
            x = self.upsamplers[depth - 1](x, length) + residual
        x = self._run_layers(x, padding_mask, start, n_post, drops, outputs)
        return x, start + n_post

    def forward(
        self,
        x: Tensor,
        padding_mask: Tensor | None = None,
        layer_outputs: list[Tensor] | None = None,
    ) -> Tensor:
        """x (B, T, C), padding_mask (B, T) True = pad -> (B, T, C).

        If ``layer_outputs`` is a list, every layer's output (before the final pre-LN norm) is
        appended to it, at the rate that layer runs.
        """
        if padding_mask is not None:
            x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
        if self.checkpoint_layers and self.training and torch.is_grad_enabled():
            # on CPU (fft) it would keep the weight's spectrum, larger than a layer's activations
            x = x + checkpoint(self.pos_conv, x, use_reentrant=False)
        else:
            x = x + self.pos_conv(x)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        x = self.dropout(x)
        drops = self._drop_decisions()
        if self.hourglass is None:
            x = self._run_layers(x, padding_mask, 0, len(self.layers), drops, layer_outputs)
        else:
            x, _ = self._run_level(x, padding_mask, self.hourglass, 0, 0, drops, layer_outputs)
        if self.layer_norm_first:
            x = self.layer_norm(x)
        return x
