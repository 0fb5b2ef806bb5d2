"""Linear layers on oneDNN's fp32 GEMM (``trainer.onednn_linear``, CPU training).

torch runs a CPU fp32 matmul through MKL's sgemm, which takes a slower code path on AMD CPUs
than on Intel's; oneDNN's kernels pick theirs from the instruction set alone (at the shapes of
``tiny``'s linear layers on a 2-core AMD EPYC VM, 2.2-2.4x faster than MKL). torch sends an fp32
matmul to oneDNN only while ``torch.backends.mkldnn.matmul.fp32_precision`` is ``"bf16"``, which
also allows oneDNN to compute it in bf16, and it does that on CPUs with bf16 matrix units (AMX).
So :func:`onednn_gemm_is_fp32` checks on this CPU that oneDNN's result is fp32's before anything
is switched, and :class:`OneDnnLinear` sets the flag only around its own three GEMMs (the output,
the input gradient and the weight gradient), leaving attention and everything else as they are.
The arithmetic is fp32 in both cases; only the order of the sums differs.

oneDNN builds a kernel for each GEMM shape, and a training run's batches come in many: the
three GEMMs of each layer at each batch length. Its cache keeps 1,024 kernels by default, which
they overflow, so every update would build its kernels anew; :func:`enable_onednn_linear` raises
the capacity (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``, read when oneDNN builds its first kernel in
the process; a value already in the environment is kept).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_FLAG = torch.backends.mkldnn.matmul
#: oneDNN kernels kept for reuse (a kernel is tens of kB of code)
CACHE_CAPACITY = 16384


@contextlib.contextmanager
def _onednn_matmul() -> Iterator[None]:
    old = _FLAG.fp32_precision
    _FLAG.fp32_precision = "bf16"
    try:
        yield
    finally:
        _FLAG.fp32_precision = old


@functools.cache
def onednn_gemm_is_fp32() -> bool:
    """Whether oneDNN, given leave to use bf16, still computes fp32 matmuls in fp32 here.

    A (192 x 256) @ (256 x 160) product in fp32 agrees with MKL's to ~1e-7 of its largest value
    (the order of the sums); with bf16 inputs the gap is ~1e-3.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(192, 256, generator=gen), torch.randn(256, 160, generator=gen)
    reference = a @ b
    with _onednn_matmul():
        ours = a @ b
    return bool((ours - reference).abs().max() <= 1e-5 * reference.abs().max())


class _Linear(torch.autograd.Function):
    """``F.linear`` whose three GEMMs run under :func:`_onednn_matmul`."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        with _onednn_matmul():
            return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        grad2 = grad.reshape(-1, grad.shape[-1])
        grad_x = grad_w = grad_b = None
        with _onednn_matmul():
            if ctx.needs_input_grad[0]:
                grad_x = (grad2 @ weight).reshape(x.shape)
            if ctx.needs_input_grad[1]:
                grad_w = grad2.t() @ x.reshape(-1, x.shape[-1])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad2.sum(0)
        return grad_x, grad_w, grad_b


class OneDnnLinear(nn.Linear):
    """``nn.Linear`` (same parameters and state dict) whose GEMMs run on oneDNN in fp32 when
    it trains in fp32 on the CPU; otherwise (no gradients, autocast, a GPU) ``nn.Linear``."""

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        if (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and torch.is_grad_enabled()
            and not torch.is_autocast_enabled("cpu")
        ):
            return _Linear.apply(x, self.weight, self.bias)
        return super().forward(x)


def enable_onednn_linear(model: nn.Module) -> int:
    """Make every ``nn.Linear`` of ``model`` an :class:`OneDnnLinear`, if oneDNN computes in
    fp32 on this CPU (:func:`onednn_gemm_is_fp32`); returns how many were switched (0 if not)."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(CACHE_CAPACITY))
    if not onednn_gemm_is_fp32():
        return 0
    layers = [m for m in model.modules() if type(m) is nn.Linear]
    for layer in layers:
        layer.__class__ = OneDnnLinear
    return len(layers)
