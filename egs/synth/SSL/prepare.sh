#!/usr/bin/env bash
# Data preparation of the embedded synthetic corpus (espeak-ng speech, LibriSpeech layout).
#
#   ./prepare.sh [--stage 0] [--stop-stage 5] [--size default|large|tiny] [--seed 42]
#
#   stage 0: generate download/LibriSpeech/{train-clean-100,dev-clean,test-clean,test-other}
#            and download/lm/lm-norm.txt (logs hours, vocabulary size, 3-gram perplexity)
#   stage 1: lhotse manifests          data/manifests/synth_{recordings,supervisions}_<part>.jsonl.gz
#   stage 2: fine-tuning subsets       train-10min, train-1h, train-10h (scaled, from train-clean-100)
#   stage 3: raw-audio cut sets        data/manifests/synth_cuts_<part>.jsonl.gz + synth_cuts_pretrain
#   stage 4: units                     data/lang_char, data/lang_bpe_<N>
#   stage 5: 3-gram LM and graphs      data/lm/G_3_gram.arpa, data/lang_*/{H,L,HL,HLG}.fst
# Each stage is skipped when its .done marker exists: delete the marker to redo it. Stage 0's
# marker records --size and --seed, and another size or seed is refused rather than reused.
set -euo pipefail

stage=0
stop_stage=5
dl_dir=$PWD/download
size=default        # tiny (tests), default (~1 h of training audio), large (>= 10 h)
seed=42
num_jobs=2          # processes generating audio in stage 0, threads reading audio in stage 1
skip_bad=false      # true: leave out bad audio/transcripts (and count them) instead of failing
finetune_scale=1    # fine-tuning subsets = Libri-Light sizes x this, capped at the pool (default
                    # size: train-10min is 10 min, train-1h and train-10h the whole ~1 h pool;
                    # --size large has all three in full); auto: pool hours / 10
bpe_vocab_sizes="100"

help_message="$(sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0")
Options: --stage --stop-stage --dl-dir --size --seed --num-jobs --skip-bad --finetune-scale
         --bpe-vocab-sizes"

. ./utils/parse_options.sh
. ./utils/log.sh

corpus=synth
manifests=data/manifests
parts="train-clean-100 dev-clean test-clean test-other"
finetune_parts="train-10min train-1h train-10h"
skip_bad_opt=""; [ "$skip_bad" = true ] && skip_bad_opt="--skip-bad"
scale_opt=""; [ "$finetune_scale" = auto ] || scale_opt="--scale $finetune_scale"
mkdir -p "$manifests"

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  # the marker records what was generated, so another --size never reuses this corpus silently
  want="size=$size seed=$seed"
  if [ -f "$dl_dir/.synth.done" ]; then
    have=$(cat "$dl_dir/.synth.done")
    if [ "$have" != "$want" ]; then
      log "Error: $dl_dir holds a corpus generated with '${have:-unknown settings}', not '$want';"
      log "  use another --dl-dir and working directory (demo.sh --size does), or remove $dl_dir and data/"
      exit 1
    fi
    log "Stage 0: corpus ($want) exists in $dl_dir, skipping"
  else
    log "Stage 0: generating the synthetic corpus ($want) in $dl_dir"
    python -m hourglass_w2v2.bin.generate_synth_corpus --out-dir "$dl_dir" --size "$size" \
      --seed "$seed" --num-jobs "$num_jobs"
    echo "$want" > "$dl_dir/.synth.done"
  fi
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  if [ -f "$manifests/.${corpus}_manifests.done" ]; then
    log "Stage 1: manifests exist, skipping"
  else
    log "Stage 1: lhotse recording/supervision manifests of $parts"
    python -m hourglass_w2v2.bin.prepare_manifests --corpus-dir "$dl_dir/LibriSpeech" \
      --manifest-dir "$manifests" --prefix $corpus --parts $parts --num-jobs "$num_jobs" $skip_bad_opt
    touch "$manifests/.${corpus}_manifests.done"
  fi
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  if [ -f "$manifests/.${corpus}_finetune_subsets.done" ]; then
    log "Stage 2: fine-tuning subsets exist, skipping"
  else
    log "Stage 2: fine-tuning subsets $finetune_parts drawn from train-clean-100"
    python -m hourglass_w2v2.bin.prepare_finetune_subsets --manifest-dir "$manifests" \
      --prefix $corpus --from-pool train-clean-100 --seed "$seed" $scale_opt
    touch "$manifests/.${corpus}_finetune_subsets.done"
  fi
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  if [ -f "$manifests/.${corpus}_cuts.done" ]; then
    log "Stage 3: cut sets exist, skipping"
  else
    log "Stage 3: raw-audio cut sets of $parts $finetune_parts and the pretrain set"
    python -m hourglass_w2v2.bin.prepare_cuts --manifest-dir "$manifests" --prefix $corpus \
      --parts $parts $finetune_parts --pretrain-parts train-clean-100 --seed "$seed"
    touch "$manifests/.${corpus}_cuts.done"
  fi
fi

# Units are learned from the training pool's transcripts (read from its supervisions).
transcripts=$manifests/${corpus}_supervisions_train-clean-100.jsonl.gz

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  if [ -f data/.lang.done ]; then
    log "Stage 4: lang dirs exist, skipping"
  else
    log "Stage 4: character and BPE ($bpe_vocab_sizes) units in data/lang_char, data/lang_bpe_N"
    python -m hourglass_w2v2.bin.prepare_lang --unit char --text $transcripts \
      --words-text "$dl_dir/lm/lm-norm.txt" --lang-dir data/lang_char
    for n in $bpe_vocab_sizes; do
      python -m hourglass_w2v2.bin.prepare_lang --unit bpe --vocab-size "$n" --text $transcripts \
        --words-text "$dl_dir/lm/lm-norm.txt" --lang-dir data/lang_bpe_$n
    done
    touch data/.lang.done
  fi
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  if [ -f data/.graphs.done ]; then
    log "Stage 5: LM and graphs exist, skipping"
  else
    log "Stage 5: 3-gram LM data/lm/G_3_gram.arpa and H/L/HL/HLG graphs"
    mkdir -p data/lm
    python -m hourglass_w2v2.bin.train_lm --text "$dl_dir/lm/lm-norm.txt" --order 3 \
      --out data/lm/G_3_gram.arpa
    for lang in data/lang_char $(for n in $bpe_vocab_sizes; do echo data/lang_bpe_$n; done); do
      python -m hourglass_w2v2.bin.compile_graphs --lang-dir "$lang" --arpa data/lm/G_3_gram.arpa
    done
    touch data/.graphs.done
  fi
fi

log "Done (stages $stage-$stop_stage)"
