"""Gumbel-softmax product quantizer (wav2vec 2.0 section 2.2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class QuantizerOutput:
    """Quantized vectors and codebook statistics."""

    x: Tensor  # (N, vq_dim) quantized vectors, groups concatenated
    code_perplexity: Tensor  # perplexity of the hard code choices, summed over groups
    prob_perplexity: Tensor  # perplexity of the mean softmax, summed over groups (diversity loss)
    num_vars: int  # groups x entries


def perplexity(probs: Tensor) -> Tensor:
    """exp(entropy) per group of a (G, V) distribution, summed over groups."""
    return torch.exp(-(probs * torch.log(probs + 1e-7)).sum(-1)).sum()


class GumbelVectorQuantizer(nn.Module):
    """``groups`` codebooks of ``num_vars`` entries; one entry per group is chosen by a hard
    straight-through Gumbel softmax (argmax at eval) and the chosen entries are concatenated.

    Logits are computed in fp32 (bf16 logits make the Gumbel choice noisy). The temperature is
    annealed per update by :meth:`set_num_updates`: ``max(start * decay**n, end)``.
    """

    def __init__(
        self,
        input_dim: int,
        num_vars: int,
        groups: int,
        vq_dim: int,
        temperature: tuple[float, float, float] = (2.0, 0.5, 0.999995),
        codebook_init: str = "uniform",
    ):
        super().__init__()
        if vq_dim % groups:
            raise ValueError(f"vq_dim {vq_dim} not divisible by groups {groups}")
        self.num_vars, self.groups = num_vars, groups
        self.max_temp, self.min_temp, self.temp_decay = temperature
        self.temperature = float(self.max_temp)
        # the same value as a tensor for forward: torch.compile guards on a float attribute's
        # value and recompiles when the anneal changes it
        self.register_buffer("tau", torch.tensor(self.temperature), persistent=False)
        self.codebook = nn.Parameter(torch.empty(1, groups * num_vars, vq_dim // groups))
        self.weight_proj = nn.Linear(input_dim, groups * num_vars)
        # fairseq's U[0, 1), or the same spread centred on 0 (see ModelConfig.codebook_init)
        low = -0.5 if codebook_init == "centered" else 0.0
        nn.init.uniform_(self.codebook, low, low + 1.0)
        nn.init.normal_(self.weight_proj.weight, mean=0.0, std=1.0)
        nn.init.zeros_(self.weight_proj.bias)

    def set_num_updates(self, num_updates: int) -> None:
        """Anneal the temperature to its value at update ``num_updates``."""
        self.temperature = max(self.max_temp * self.temp_decay**num_updates, self.min_temp)
        self.tau.fill_(self.temperature)

    def forward(self, x: Tensor) -> QuantizerOutput:
        """x (N, C) frames -> quantized (N, vq_dim) and perplexities over those N frames."""
        n = x.shape[0]
        with torch.autocast(x.device.type, enabled=False):  # autocast would make it bf16
            w = self.weight_proj
            logits = F.linear(x.float(), w.weight.float(), w.bias.float())
        logits = logits.view(n * self.groups, self.num_vars)
        hard = F.one_hot(logits.argmax(-1), self.num_vars).to(logits.dtype)
        code_ppl = perplexity(hard.view(n, self.groups, self.num_vars).mean(0))
        avg_probs = logits.softmax(-1).view(n, self.groups, self.num_vars).mean(0)
        prob_ppl = perplexity(avg_probs)
        if self.training:
            weights = F.gumbel_softmax(logits, tau=self.tau, hard=True)
        else:
            weights = hard
        weights = weights.view(n, self.groups, self.num_vars).to(self.codebook.dtype)
        codebook = self.codebook.view(self.groups, self.num_vars, -1)
        # (N, G, V) x (G, V, d) -> (N, G, d): one matmul per group instead of fairseq's broadcast
        quantized = torch.einsum("ngv,gvd->ngd", weights, codebook).reshape(n, -1)
        return QuantizerOutput(
            quantized.type_as(x), code_ppl, prob_ppl, self.groups * self.num_vars
        )
