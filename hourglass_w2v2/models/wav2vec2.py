"""wav2vec 2.0 models: the shared backbone, the contrastive pretraining model and the CTC model.

State-dict keys are the same in both tasks for the shared part (``feature_extractor``,
``feature_norm``, ``feature_proj``, ``mask_emb``, ``encoder``), so a pretraining checkpoint
loads into the CTC model with :meth:`Wav2Vec2Ctc.load_backbone`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hourglass_w2v2.models.config import ModelConfig
from hourglass_w2v2.models.encoder import TransformerEncoder, keep_in_graph
from hourglass_w2v2.models.extractor import FeatureExtractor, GradMultiply, lengths_to_padding_mask
from hourglass_w2v2.models.masking import (
    compute_channel_mask,
    compute_span_mask,
    sample_negative_indices,
)
from hourglass_w2v2.models.quantizer import GumbelVectorQuantizer


@dataclass
class PretrainOutput:
    """Losses (means per masked frame) and statistics of one pretraining forward pass."""

    loss: Tensor  # contrastive + diversity_weight * diversity + feature_penalty_weight * penalty
    contrastive_loss: Tensor
    diversity_loss: Tensor  # (G*V - prob_perplexity) / (G*V)
    feature_penalty: Tensor  # mean squared extractor output over valid frames
    accuracy: Tensor  # fraction of masked frames whose positive scores highest
    code_perplexity: Tensor
    prob_perplexity: Tensor
    temperature: Tensor  # the Gumbel temperature of this update (a tensor: see the quantizer)
    num_masked: int
    sample_size: int  # frames the loss is averaged over (= num_masked)
    # mean cosine between two different targets of the same utterance: near 1, every candidate
    # scores alike and the loss cannot leave chance (see ModelConfig.codebook_init)
    target_similarity: Tensor


@dataclass
class CtcOutput:
    """CTC logits and the frame padding mask."""

    logits: Tensor  # (B, T, V)
    padding_mask: Tensor  # (B, T) bool, True = pad
    lengths: Tensor  # (B,) valid frames


def init_bert_params(module: nn.Module) -> None:
    """BERT/fairseq initialisation of the transformer's linear layers: N(0, 0.02), zero bias."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def contrastive_logits(
    preds: Tensor, targets: Tensor, neg_idx: Tensor, logit_temp: float
) -> Tensor:
    """InfoNCE logits: cosine similarity / ``logit_temp`` of each prediction with its target
    (column 0) and its distractors ``targets[b, neg_idx[b, m]]`` (columns 1..N).

    preds, targets: (B, M, F); neg_idx: (B, M, N) -> (B, M, 1+N) fp32. A distractor equal to
    the positive (the same code was drawn) gets -inf, as in fairseq.

    The same values as fairseq's, which gathers a (B, M, 1+N, F) candidates tensor and takes
    cosines over F; here one (B, M, M) matrix of cosines between each prediction and every
    target of its utterance is gathered at ``neg_idx`` instead. That needs N*F/M times less
    memory, is 17x (tiny) to ~100x (Base, Large) faster on CPU for this op
    (``benchmarks/contrastive_speed.py``), and its backward is deterministic: the backward of
    indexing ``targets[b, neg_idx]`` adds into repeated rows with atomics when CPU threads > 1,
    which made 2-thread pretraining runs drift apart after a few dozen updates
    (egs/synth/SSL/RESULTS.md).
    """
    b, m, n = neg_idx.shape
    with torch.autocast(preds.device.type, enabled=False):
        p = F.normalize(preds.float(), dim=-1, eps=1e-8)
        t = F.normalize(targets.float(), dim=-1, eps=1e-8)
        cos = torch.bmm(p, t.transpose(1, 2)) / logit_temp  # (B, M, M)
    positive = cos.diagonal(dim1=1, dim2=2).unsqueeze(-1)
    negatives = cos.gather(2, neg_idx)
    # exact equality of target vectors, through integer ids of the distinct rows
    ids = torch.unique(targets.detach().reshape(b * m, -1), dim=0, return_inverse=True)[1]
    ids = ids.view(b, m)
    neg_is_pos = ids.gather(1, neg_idx.reshape(b, m * n)).view(b, m, n) == ids.unsqueeze(-1)
    return torch.cat([positive, negatives.masked_fill(neg_is_pos, float("-inf"))], dim=-1)


def _strip_prefixes(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Remove DDP's ``module.`` and torch.compile's ``_orig_mod.`` key prefixes."""
    out = {}
    for k, v in state_dict.items():
        for prefix in ("module.", "_orig_mod."):
            while k.startswith(prefix):
                k = k[len(prefix) :]
        out[k] = v
    return out


class Wav2Vec2Backbone(nn.Module):
    """Feature extractor -> LayerNorm -> projection -> (masking) -> transformer encoder."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        dim = cfg.encoder_embed_dim
        self.feature_grad_mult = cfg.feature_grad_mult
        self.feature_extractor = FeatureExtractor(
            cfg.extractor_conv_layers,
            cfg.extractor_mode,
            cfg.extractor_conv_bias,
            checkpoint=cfg.checkpoint_extractor,
        )
        self.feature_norm = nn.LayerNorm(cfg.extractor_dim)
        self.feature_proj = nn.Linear(cfg.extractor_dim, dim)
        self.dropout_input = nn.Dropout(cfg.dropout_input)
        self.mask_emb = nn.Parameter(torch.empty(dim).uniform_())
        self.encoder = TransformerEncoder(
            dim=dim,
            num_layers=cfg.encoder_layers,
            ffn_dim=cfg.encoder_ffn_embed_dim,
            num_heads=cfg.encoder_attention_heads,
            layer_norm_first=cfg.layer_norm_first,
            conv_pos=cfg.conv_pos,
            conv_pos_groups=cfg.conv_pos_groups,
            dropout=cfg.dropout,
            attention_dropout=cfg.attention_dropout,
            activation_dropout=cfg.activation_dropout,
            layerdrop=cfg.layerdrop,
            hourglass=cfg.hourglass,
            shorten=cfg.shorten,
            upsample=cfg.upsample,
            shorten_pools_padding=cfg.shorten_pools_padding,
            checkpoint_layers=cfg.checkpoint_layers,
        )
        self.encoder.layers.apply(init_bert_params)
        for conv in (b.conv for b in self.feature_extractor.conv_layers):
            nn.init.kaiming_normal_(conv.weight)
        pos = self.encoder.pos_conv.conv
        std = math.sqrt(4.0 / (cfg.conv_pos * dim))
        with torch.no_grad():
            # re-derive weight norm's g and v from a fresh N(0, std) weight, as fairseq does
            weight = torch.randn_like(pos.weight) * std
            pos.parametrizations.weight.original1.copy_(weight)
            pos.parametrizations.weight.original0.copy_(
                torch.linalg.vector_norm(weight, dim=(0, 1), keepdim=True)
            )
            pos.bias.zero_()

    # --------------------------------------------------------------- helpers
    def output_lengths(self, input_lengths: Tensor) -> Tensor:
        """Encoder frames for ``input_lengths`` samples (LongTensor (B,) -> (B,))."""
        return self.feature_extractor.output_lengths(input_lengths)

    def layer_depth(self, name: str) -> int:
        """Depth of parameter ``name`` for layer-wise lr decay, from 0 to ``num_layers + 1``.

        0: everything below the first transformer layer (extractor, feature norm and
        projection, mask embedding, position conv, post-LN's input LayerNorm); ``i + 1``:
        encoder layer ``i`` (an hourglass shortener or upsampler takes the depth of the layer
        that reads its output); ``num_layers + 1``: what sits above the last layer (the CTC
        head or pretraining heads, pre-LN's final LayerNorm).
        """
        encoder, top = self.encoder, len(self.encoder.layers) + 1
        parts = name.split(".")
        if parts[0] != "encoder":
            below = ("feature_extractor", "feature_norm", "feature_proj", "mask_emb")
            return 0 if parts[0] in below else top
        if parts[1] == "layers":
            return int(parts[2]) + 1
        if parts[1] in ("shorteners", "upsamplers"):
            after_shorten, after_upsample = encoder.resampler_next_layer[int(parts[2])]
            return 1 + (after_shorten if parts[1] == "shorteners" else after_upsample)
        if parts[1] == "layer_norm" and encoder.layer_norm_first:
            return top
        return 0  # pos_conv, post-LN's input LayerNorm

    def freeze_feature_extractor(self) -> None:
        """Stop training the conv extractor (and run it without autograd)."""
        for p in self.feature_extractor.parameters():
            p.requires_grad_(False)
        self.feature_grad_mult = 0.0

    def extract_features(
        self, waveforms: Tensor, padding_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """waveforms (B, S) -> extractor output (B, T, C_ext) and frame padding mask (B, T)."""
        if padding_mask is not None and not bool(padding_mask.any()):
            padding_mask = None  # unpadded batch: take the fast, mask-free kernels
        lengths = None if padding_mask is None else (~padding_mask).sum(-1)
        if self.feature_grad_mult > 0:
            feats, frame_lengths = self.feature_extractor(waveforms, lengths)
            if self.feature_grad_mult != 1.0 and self.training:
                feats = GradMultiply.apply(feats, self.feature_grad_mult)
        else:
            with torch.no_grad():
                feats, frame_lengths = self.feature_extractor(waveforms, lengths)
        frame_mask = None
        if frame_lengths is not None:
            frame_mask = lengths_to_padding_mask(frame_lengths, feats.shape[1])
        return feats, frame_mask

    def _mask(
        self, x: Tensor, frame_mask: Tensor | None, same_count: bool
    ) -> tuple[Tensor, Tensor]:
        """Replace span-masked frames with ``mask_emb``; in training also zero masked channels.

        ``mask_emb`` enters the graph even when no frame is masked (``torch.where``), so it
        always gets a gradient and DDP needs no ``find_unused_parameters``.
        """
        cfg = self.cfg
        batch, length, dim = x.shape
        time_mask = compute_span_mask(
            (batch, length),
            cfg.mask_prob,
            cfg.mask_length,
            frame_mask,
            cfg.min_masks,
            same_count,
            device=x.device,
            mask_dropout=cfg.mask_dropout,
        )
        x = torch.where(time_mask.unsqueeze(-1), self.mask_emb.to(x.dtype), x)
        if self.training and cfg.mask_channel_prob > 0:
            channel_mask = compute_channel_mask(
                batch,
                dim,
                cfg.mask_channel_prob,
                cfg.mask_channel_length,
                device=x.device,
                same_count=cfg.require_same_masks,
            )
            x = x.masked_fill(channel_mask.unsqueeze(1), 0.0)
        return x, time_mask

    def encode(self, waveforms: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """Final encoder output (B, T, C) for waveforms (B, S), without any masking."""
        return self.encode_with_mask(waveforms, padding_mask)[0]

    def encode_with_mask(
        self,
        waveforms: Tensor,
        padding_mask: Tensor | None = None,
        layer_outputs: list[Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Like :meth:`encode`, also returning the frame padding mask (all False if unpadded)."""
        feats, frame_mask = self.extract_features(waveforms, padding_mask)
        x = self.dropout_input(self.feature_proj(self.feature_norm(feats)))
        x = self.encoder(x, frame_mask, layer_outputs)
        if frame_mask is None:
            frame_mask = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
        return x, frame_mask


class Wav2Vec2Pretrain(Wav2Vec2Backbone):
    """Contrastive pretraining: masked encoder output vs quantized targets and distractors."""

    def __init__(self, cfg: ModelConfig):
        if not cfg.require_same_masks:
            raise ValueError(
                "model.require_same_masks: false cannot pretrain: the contrastive loss needs the "
                "same number of masked frames in every utterance; set it to true"
            )
        super().__init__(cfg)
        self.dropout_features = nn.Dropout(cfg.dropout_features)
        self.quantizer = GumbelVectorQuantizer(
            cfg.extractor_dim,
            cfg.latent_vars,
            cfg.latent_groups,
            cfg.quantizer_dim,
            cfg.latent_temp,
            cfg.codebook_init,
        )
        self.project_q = nn.Linear(cfg.quantizer_dim, cfg.final_dim)
        self.final_proj = nn.Linear(cfg.encoder_embed_dim, cfg.final_dim)

    def set_num_updates(self, num_updates: int) -> None:
        """Anneal the Gumbel temperature for update ``num_updates``."""
        self.quantizer.set_num_updates(num_updates)

    def forward(self, waveforms: Tensor, padding_mask: Tensor | None = None) -> PretrainOutput:
        """waveforms (B, S), padding_mask (B, S) bool True = pad -> :class:`PretrainOutput`."""
        cfg = self.cfg
        feats, frame_mask = self.extract_features(waveforms, padding_mask)
        batch = feats.shape[0]
        sq = feats.float().pow(2).mean(-1)
        if frame_mask is None:
            feature_penalty = sq.mean()
        else:
            feature_penalty = sq.masked_fill(frame_mask, 0.0).sum() / (~frame_mask).sum()
        feats = self.feature_norm(feats)
        x = self.dropout_input(self.feature_proj(feats))
        targets_in = self.dropout_features(feats)

        x, time_mask = self._mask(x, frame_mask, same_count=True)
        x = self.encoder(x, frame_mask)

        num_masked = int(time_mask.sum())
        per_utt = num_masked // batch
        q = self.quantizer(targets_in[time_mask])
        targets = self.project_q(q.x).view(batch, per_utt, -1)  # (B, M, F)
        preds = self.final_proj(x[time_mask]).view(batch, per_utt, -1)

        neg_idx = sample_negative_indices(batch, per_utt, cfg.num_negatives, device=x.device)
        logits = contrastive_logits(preds, targets, neg_idx, cfg.logit_temp)
        logits = logits.view(-1, logits.shape[-1])
        contrastive = F.cross_entropy(logits, logits.new_zeros(logits.shape[0], dtype=torch.long))

        diversity = (q.num_vars - q.prob_perplexity) / q.num_vars
        loss = (
            contrastive
            + cfg.diversity_weight * diversity
            + cfg.feature_penalty_weight * feature_penalty
        )
        with torch.no_grad():
            best, worst = logits.argmax(-1) == 0, logits.argmin(-1) == 0
            accuracy = (best & ~worst).float().mean()  # all-equal rows count as wrong
            target_similarity = _mean_pairwise_cosine(targets)
        return PretrainOutput(
            loss=loss,
            contrastive_loss=contrastive.detach(),
            diversity_loss=diversity.detach(),
            feature_penalty=feature_penalty.detach(),
            accuracy=accuracy,
            code_perplexity=q.code_perplexity.detach(),
            prob_perplexity=q.prob_perplexity.detach(),
            temperature=self.quantizer.tau.detach().clone(),
            num_masked=num_masked,
            sample_size=num_masked,
            target_similarity=target_similarity,
        )


def _mean_pairwise_cosine(x: Tensor) -> Tensor:
    """x (B, M, F) -> mean cosine similarity over pairs of different rows of each utterance."""
    m = x.shape[1]
    if m < 2:
        return x.new_zeros((), dtype=torch.float32)
    v = F.normalize(x.float(), dim=-1)
    s = v.sum(1)  # sum over pairs i != j of v_i . v_j = |sum v|^2 - sum |v_i|^2
    pairs = s.pow(2).sum(-1) - v.pow(2).sum((1, 2))
    return (pairs / (m * (m - 1))).mean()


class Wav2Vec2Ctc(Wav2Vec2Backbone):
    """Backbone + dropout + linear CTC head; time/channel masking in training mode."""

    HEAD_PREFIXES = ("quantizer.", "project_q.", "final_proj.")

    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__(cfg)
        self.final_dropout = nn.Dropout(cfg.final_dropout)
        self.ctc_head = nn.Linear(cfg.encoder_embed_dim, vocab_size)
        nn.init.xavier_uniform_(self.ctc_head.weight)
        nn.init.zeros_(self.ctc_head.bias)

    def reset_top_layers(self, num_layers: int) -> None:
        """Re-initialise the last ``num_layers`` transformer layers as a new model's.

        The top layers of a contrastively pretrained encoder are the ones most specialised to
        predicting the quantized local features, and fine-tuning on a few labelled minutes can
        do better starting them afresh (Pasad et al., 2021, "Layer-wise analysis of a
        self-supervised speech representation model").
        """
        layers = self.encoder.layers
        if not 0 <= num_layers <= len(layers):
            raise ValueError(f"cannot reset {num_layers} of {len(layers)} encoder layers")
        for layer in list(layers)[len(layers) - num_layers :]:
            layer.apply(init_bert_params)
            for norm in (m for m in layer.modules() if isinstance(m, nn.LayerNorm)):
                norm.reset_parameters()

    def load_backbone(self, state_dict: dict[str, Tensor]) -> tuple[list[str], list[str]]:
        """Load a pretraining state dict, dropping the quantizer/projection heads.

        Returns ``(missing, unexpected)`` keys; ``missing`` is normally just the CTC head.
        """
        sd = {
            k: v
            for k, v in _strip_prefixes(state_dict).items()
            if not k.startswith(self.HEAD_PREFIXES)
        }
        result = self.load_state_dict(sd, strict=False)
        return list(result.missing_keys), list(result.unexpected_keys)

    def forward(
        self, waveforms: Tensor, padding_mask: Tensor | None = None, freeze_encoder: bool = False
    ) -> CtcOutput:
        """waveforms (B, S), padding_mask (B, S) True = pad -> :class:`CtcOutput`.

        With ``freeze_encoder`` the backbone runs without autograd (fairseq's
        ``freeze_finetune_updates``); its parameters still get zero gradients so DDP is happy.
        """
        with torch.set_grad_enabled(torch.is_grad_enabled() and not freeze_encoder):
            feats, frame_mask = self.extract_features(waveforms, padding_mask)
            x = self.dropout_input(self.feature_proj(self.feature_norm(feats)))
            if self.training:
                x, _ = self._mask(x, frame_mask, same_count=self.cfg.require_same_masks)
            x = self.encoder(x, frame_mask)
        if frame_mask is None:
            frame_mask = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
        logits = self.ctc_head(self.final_dropout(x))
        if freeze_encoder and self.training and torch.is_grad_enabled():
            backbone = [p for n, p in self.named_parameters() if not n.startswith("ctc_head.")]
            logits = keep_in_graph(logits, backbone)
        return CtcOutput(logits=logits, padding_mask=frame_mask, lengths=(~frame_mask).sum(-1))


def build_model(
    cfg: ModelConfig, task: str = "pretrain", vocab_size: int | None = None
) -> Wav2Vec2Pretrain | Wav2Vec2Ctc:
    """Build the model for ``task`` ("pretrain" or "ctc"; ctc needs ``vocab_size``)."""
    if task == "pretrain":
        return Wav2Vec2Pretrain(cfg)
    if task == "ctc":
        if vocab_size is None or vocab_size < 1:
            raise ValueError("task='ctc' needs a positive vocab_size")
        return Wav2Vec2Ctc(cfg, vocab_size)
    raise ValueError(f"unknown task {task!r}: expected 'pretrain' or 'ctc'")
