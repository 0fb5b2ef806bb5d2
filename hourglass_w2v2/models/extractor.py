"""Convolutional feature extractor: raw 16 kHz waveform -> one vector every 20 ms.

Unlike fairseq and torchaudio, the ``group_norm`` variant normalises each channel over the
*valid* frames only, so a padded utterance gets exactly the features it gets alone.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import (
    CheckpointPolicy,
    checkpoint,
    create_selective_checkpoint_contexts,
)


class GradMultiply(torch.autograd.Function):
    """Identity forward, gradient scaled by ``scale`` backward (fairseq's feature_grad_mult)."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:  # noqa: D102
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # noqa: D102
        return grad * ctx.scale, None


def conv_output_lengths(lengths: Tensor, layers: list[tuple[int, int, int]]) -> Tensor:
    """Frames produced from ``lengths`` samples by unpadded convs ``[(dim, kernel, stride)]``."""
    for _, kernel, stride in layers:
        lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
        lengths = lengths.clamp(min=0)
    return lengths


def lengths_to_padding_mask(lengths: Tensor, max_len: int) -> Tensor:
    """(B,) lengths -> (B, max_len) bool mask, True = padding."""
    return torch.arange(max_len, device=lengths.device)[None, :] >= lengths[:, None]


def masked_group_norm(x: Tensor, valid: Tensor, norm: nn.GroupNorm) -> Tensor:
    """GroupNorm with one group per channel over the valid frames of each utterance.

    x: (B, C, T); valid: (B, 1, T) float, 1 = real frame.
    """
    xf = x.float()
    count = valid.sum(-1, keepdim=True).clamp(min=1.0)
    mean = (xf * valid).sum(-1, keepdim=True) / count
    var = (((xf - mean) * valid) ** 2).sum(-1, keepdim=True) / count
    y = (xf - mean) * torch.rsqrt(var + norm.eps)
    return (y * norm.weight[None, :, None] + norm.bias[None, :, None]).type_as(x)


def blocked_group_norm(x: Tensor, norm: nn.GroupNorm, block: int = 256) -> Tensor:
    """GroupNorm with one group per channel over all frames of x (B, C, T), for exported graphs.

    onnxruntime's float32 reductions over the ~10^5 frames of a minute of audio are not exact
    enough for log-probs within 1e-4 of torch's. Here the sums are taken in blocks of ``block``
    frames (a strided convolution with a kernel of ones, in x's dtype) and the block sums are
    added in float64, for the mean and then for the variance of the centred frames: as exact
    as float64 statistics, without a float64 pass over every frame.
    """
    channels = norm.num_channels  # a constant for the ONNX tracer, as x.shape[1] would not be

    def sums(t: Tensor, kernel: Tensor) -> Tensor:
        # padding block - 1 on both sides: the blocks tile every frame once, whatever T is
        out = F.conv1d(t, kernel, stride=block, padding=block - 1, groups=kernel.shape[0])
        return out.double().sum(-1, keepdim=True)

    ones = x.new_ones(channels, 1, block)
    count = sums(torch.ones_like(x[:, :1]), x.new_ones(1, 1, block))
    centred = x - (sums(x, ones) / count).to(x.dtype)
    var = sums(centred * centred, ones) / count
    scale = torch.rsqrt(var + norm.eps) * norm.weight.double()[None, :, None]
    return centred * scale.to(x.dtype) + norm.bias[None, :, None].to(x.dtype)


#: output frames from which the polyphase input gradient beats oneDNN's strided one on CPU
POLYPHASE_MIN_FRAMES = 2000


def polyphase_input_grad(grad: Tensor, weight: Tensor, stride: int, length: int) -> Tensor:
    """Gradient of ``conv1d(x, weight, stride=stride)`` with respect to x (B, C_in, length).

    Input sample ``stride * t + r`` reads the taps ``weight[..., r + stride * j]`` at output
    frames ``t - j``, so each of the ``stride`` phases is a stride-1 convolution of ``grad``
    with its taps reversed; the phases are then interleaved. The same sums as the transposed
    convolution, in another order, and faster than oneDNN's strided one on long inputs.
    """
    out = grad.new_zeros(grad.shape[0], weight.shape[1], length)
    for r in range(stride):
        taps = weight[:, :, r::stride].flip(-1).transpose(0, 1)  # (C_in, C_out, J)
        phase = F.conv1d(grad, taps, padding=taps.shape[-1] - 1)
        n = min(phase.shape[-1], (length - r + stride - 1) // stride)
        out[:, :, r::stride][:, :, :n] = phase[:, :, :n]
    return out


class _PolyphaseConv1d(torch.autograd.Function):
    """conv1d without bias whose input gradient is :func:`polyphase_input_grad`."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, stride: int) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride = stride
        return F.conv1d(x, weight, stride=stride)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        x, weight = ctx.saved_tensors
        s = ctx.stride
        # under autocast the forward ran in grad's dtype (bf16): the backward does too
        xc, wc = x.to(grad.dtype), weight.to(grad.dtype)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = polyphase_input_grad(grad, wc, s, x.shape[-1]).to(x.dtype)
        if ctx.needs_input_grad[1]:
            grad_w = torch.ops.aten.convolution_backward(
                grad, xc, wc, None, [s], [0], [1], False, [0], 1, [False, True, False]
            )[1].to(weight.dtype)
        return grad_x, grad_w, None


class ConvBlock(nn.Module):
    """Conv1d -> optional norm (group norm over time, or layer norm over channels) -> GELU."""

    def __init__(self, in_dim: int, out_dim: int, kernel: int, stride: int, bias: bool, norm: str):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv1d(in_dim, out_dim, kernel, stride=stride, bias=bias)
        self.norm_kind = norm
        self.blocked_stats = False  # exported graphs: see blocked_group_norm
        self.polyphase_backward = False  # CPU training: see polyphase_input_grad
        if norm == "group_norm":
            self.norm: nn.Module | None = nn.GroupNorm(out_dim, out_dim, affine=True)
        elif norm == "layer_norm":
            self.norm = nn.LayerNorm(out_dim)
        else:
            self.norm = None

    def convolve(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """The conv alone: x (B, C_in, S) -> (B, C_out, S'); valid samples -> valid frames."""
        conv = self.conv
        if (
            self.polyphase_backward
            and x.requires_grad
            and x.device.type == "cpu"
            and self.stride > 1
            and conv.groups == 1
            and (x.shape[-1] - self.kernel) // self.stride + 1 >= POLYPHASE_MIN_FRAMES
        ):
            x = _PolyphaseConv1d.apply(x, conv.weight, self.stride)
            if conv.bias is not None:
                x = x + conv.bias[:, None]
        else:
            x = conv(x)
        if lengths is not None:
            lengths = torch.div(lengths - self.kernel, self.stride, rounding_mode="floor") + 1
            lengths = lengths.clamp(min=0)
        return x, lengths

    def activate(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        """Norm and GELU of a conv output x (B, C_out, S'), ``lengths`` its valid frames."""
        if self.norm_kind == "group_norm":
            if lengths is not None:
                valid = (~lengths_to_padding_mask(lengths, x.shape[-1]))[:, None, :].to(
                    torch.float32
                )
                x = masked_group_norm(x, valid, self.norm)
            elif self.blocked_stats:
                x = blocked_group_norm(x, self.norm)
            else:
                x = F.group_norm(
                    x.float(), x.shape[1], self.norm.weight, self.norm.bias, self.norm.eps
                ).type_as(x)
        elif self.norm_kind == "layer_norm":
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        return F.gelu(x)

    def forward(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """x: (B, C_in, S) -> (B, C_out, S'); lengths (B,) valid samples -> valid frames."""
        x, lengths = self.convolve(x, lengths)
        return self.activate(x, lengths), lengths


def keep_multichannel_conv_outputs(
    ctx: Any, op: Any, *args: Any, **kwargs: Any
) -> CheckpointPolicy:
    """Selective-checkpointing policy of the extractor: save only what is costly to redo.

    A convolution reading more than one channel per group (C_in x kernel multiply-adds per
    output value, 1536 at Base) keeps its output; everything else is recomputed in backward:
    norms and GELUs (a few operations per value) and the first conv, which reads the one-channel
    waveform (kernel multiply-adds per value) yet writes the longest, widest output.
    """
    if op is torch.ops.aten.convolution.default and args[1].shape[1] > 1:
        return CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


class FeatureExtractor(nn.Module):
    """Stack of :class:`ConvBlock` over the raw waveform.

    ``mode="group_norm"`` normalises only the first layer (wav2vec 2.0 Base), ``"layer_norm"``
    every layer (Large / LV-60k).

    With ``checkpoint``, a forward with gradients keeps only the waveform and the outputs of
    the convs past the first (:func:`keep_multichannel_conv_outputs`); backward recomputes the
    rest one region at a time, a region ending at each such conv, so only one region's
    recomputed tensors are alive at once. In eval mode or without gradients (a frozen
    extractor, ``torch.no_grad``) it does nothing, so exported graphs never contain it.
    """

    def __init__(
        self,
        conv_layers: list[tuple[int, int, int]],
        mode: str = "group_norm",
        conv_bias: bool = False,
        checkpoint: bool = False,
    ):
        super().__init__()
        if mode not in ("group_norm", "layer_norm"):
            raise ValueError(f"unknown extractor mode {mode!r}")
        self.checkpoint = checkpoint
        self.layer_spec = list(conv_layers)
        blocks = []
        in_dim = 1
        for i, (dim, kernel, stride) in enumerate(conv_layers):
            norm = mode if (mode == "layer_norm" or i == 0) else "none"
            blocks.append(ConvBlock(in_dim, dim, kernel, stride, conv_bias, norm))
            in_dim = dim
        self.conv_layers = nn.ModuleList(blocks)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Number of output frames for ``lengths`` input samples."""
        return conv_output_lengths(lengths, self.layer_spec)

    def forward(
        self, waveforms: Tensor, lengths: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """waveforms (B, S), lengths (B,) or None -> features (B, T, C), frame lengths or None."""
        if waveforms.ndim != 2:
            raise ValueError(f"expected waveforms of shape (B, S), got {tuple(waveforms.shape)}")
        x = waveforms.unsqueeze(1)
        needs_grad = waveforms.requires_grad or any(p.requires_grad for p in self.parameters())
        if self.checkpoint and self.training and torch.is_grad_enabled() and needs_grad:
            x, lengths = self._checkpointed_convs(x, lengths)
        else:
            x, lengths = self._convs(0, len(self.conv_layers), x, lengths)
        return self.conv_layers[-1].activate(x, lengths).transpose(1, 2), lengths

    def _convs(
        self, start: int, end: int, x: Tensor, lengths: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """Convs ``start`` to ``end - 1``, each after the previous block's norm and GELU."""
        for i in range(start, end):
            if i > 0:
                x = self.conv_layers[i - 1].activate(x, lengths)
            x, lengths = self.conv_layers[i].convolve(x, lengths)
        return x, lengths

    def _checkpointed_convs(
        self, x: Tensor, lengths: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        context_fn = functools.partial(
            create_selective_checkpoint_contexts, keep_multichannel_conv_outputs
        )
        start = 0
        for end, block in enumerate(self.conv_layers, 1):
            if block.conv.in_channels // block.conv.groups == 1 and end < len(self.conv_layers):
                continue  # a cheap conv joins the next region, which recomputes it
            x, lengths = checkpoint(
                self._convs,
                start,
                end,
                x,
                lengths,
                use_reentrant=False,
                context_fn=context_fn,
                # so hooks such as save_on_cpu (or a memory count) see what is kept
                respect_saved_tensors_hooks=True,
            )
            start = end
        return x, lengths
