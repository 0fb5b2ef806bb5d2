#!/usr/bin/env bash
# Data preparation of LibriSpeech + Libri-Light limited-resource fine-tuning subsets.
#
#   ./prepare.sh [--stage 0] [--stop-stage 5] [--dl-dir download] [--download true]
#
#   stage 0: check download/{LibriSpeech,librispeech_finetuning,lm}; with --download true,
#            fetch what is missing (local/download_librispeech.sh; ~60 GB for all parts)
#   stage 1: lhotse manifests     data/manifests/librispeech_{recordings,supervisions}_<part>.jsonl.gz
#   stage 2: Libri-Light subsets  train-10min (1h/0), train-1h (1h/*), train-10h (1h/* + 9h)
#   stage 3: raw-audio cut sets   data/manifests/librispeech_cuts_<part>.jsonl.gz, ..._cuts_pretrain
#   stage 4: units                data/lang_char, data/lang_bpe_500
#   stage 5: LMs and graphs       data/lm/G_{3,4}_gram.arpa, data/lang_*/{H,L,HL,HLG}.fst
# Optional stages, after the default stop stage (run them with --stage 6 --stop-stage 7):
#   stage 6: Libri-Light segments data/manifests/librilight_cuts_<part>.jsonl.gz for each of
#            --librilight-parts (small/medium/large) under --librilight-dir (an unpacked tree:
#            nothing is downloaded), cut by the shipped VAD times (or --segment-by window)
#   stage 7: Shar shards          $shar_dir/{cuts,recording}.<n>.*: the stage-3 pretraining
#            cuts plus stage 6's, shuffled, in shards (set data.shar_dir to train from them)
# Parts are those present under download/LibriSpeech; pretraining uses every train-* part.
# Each stage is skipped when its .done marker exists: delete the marker to redo it. Stages 1-2's
# markers record --dl-dir, and another --dl-dir is refused rather than their outputs reused.
set -euo pipefail

stage=0
stop_stage=5
dl_dir=$PWD/download
download=false      # true: stage 0 downloads missing data
num_jobs=8          # threads reading audio headers in stages 1-2
skip_bad=false      # true: leave out bad audio/transcripts (and count them) instead of failing
bpe_vocab_sizes="500"
librilight_dir=""   # stage 6: the folder holding small/ medium/ large/ (unpacked)
librilight_parts="small"
segment_by=vad      # stage 6: vad (merge the shipped VAD stretches) | window (fixed, --overlap)
segment_max_duration=30  # stage 6: longest segment / window length, seconds
overlap=0           # stage 6, window: seconds shared by consecutive windows
shar_dir=data/shar/pretrain
shar_shard_size=1000

help_message="$(sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0")
Options: --stage --stop-stage --dl-dir --download --num-jobs --skip-bad --bpe-vocab-sizes
  --librilight-dir --librilight-parts --segment-by --segment-max-duration --overlap
  --shar-dir --shar-shard-size"

. ./utils/parse_options.sh
. ./utils/log.sh

corpus=librispeech
manifests=data/manifests
finetune_parts="train-10min train-1h train-10h"
skip_bad_opt=""; [ "$skip_bad" = true ] && skip_bad_opt="--skip-bad"

# Stages 1-2 read --dl-dir; their markers record it, so that another one is never reused silently.
made_from="dl_dir=$(realpath -m "$dl_dir")"
done_from_this_dl_dir() {  # done_from_this_dl_dir MARKER: whether the stage is done (exit 1 when
  local have                # it was done from another --dl-dir)
  [ -f "$1" ] || return 1
  have=$(cat "$1")
  if [ -n "$have" ] && [ "$have" != "$made_from" ]; then
    log "Error: $1 was made from --dl-dir ${have#dl_dir=}, not ${made_from#dl_dir=};" \
      "pass that --dl-dir, or delete data/ to prepare from this one"
    exit 1
  fi
}

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  if [ "$download" = true ]; then
    log "Stage 0: downloading missing LibriSpeech, Libri-Light fine-tuning and LM data to $dl_dir"
    ./local/download_librispeech.sh "$dl_dir"
  else
    log "Stage 0: checking $dl_dir (pass --download true to fetch what is missing)"
  fi
  for d in "$dl_dir/LibriSpeech" "$dl_dir/librispeech_finetuning"; do
    if [ ! -d "$d" ]; then
      log "Error: $d not found; rerun with --download true, or link existing data there"
      exit 1
    fi
  done
  # stage 5 needs the 3-gram: say so now, not after hours of stages 1-4
  if [ "$stop_stage" -ge 5 ] && [ ! -f data/.graphs.done ] &&
     [ ! -f "$dl_dir/lm/3-gram.pruned.1e-7.arpa" ]; then
    if [ -f "$dl_dir/lm/3-gram.pruned.1e-7.arpa.gz" ]; then
      log "Error: $dl_dir/lm/3-gram.pruned.1e-7.arpa.gz is compressed; stage 5 reads the .arpa:" \
        "gunzip -k it there"
    else
      log "Error: $dl_dir/lm/3-gram.pruned.1e-7.arpa not found (stage 5 builds HLG from it);" \
        "rerun with --download true, link OpenSLR 11's lm/ there (the .arpa, unzipped), or" \
        "pass --stop-stage 4"
    fi
    exit 1
  fi
fi

# Parts present on disk, in LibriSpeech's order.
parts=""
for p in train-clean-100 train-clean-360 train-other-500 dev-clean dev-other test-clean test-other; do
  [ -d "$dl_dir/LibriSpeech/$p" ] && parts="$parts $p"
done
pretrain_parts=$(echo $parts | tr ' ' '\n' | grep '^train-' | tr '\n' ' ' || true)

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  if done_from_this_dl_dir "$manifests/.${corpus}_manifests.done"; then
    log "Stage 1: manifests exist, skipping"
  else
    log "Stage 1: lhotse recording/supervision manifests of$parts"
    mkdir -p "$manifests"
    python -m hourglass_w2v2.bin.prepare_manifests --corpus-dir "$dl_dir/LibriSpeech" \
      --manifest-dir "$manifests" --prefix $corpus --parts $parts --num-jobs "$num_jobs" $skip_bad_opt
    echo "$made_from" > "$manifests/.${corpus}_manifests.done"
  fi
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  if done_from_this_dl_dir "$manifests/.${corpus}_finetune_subsets.done"; then
    log "Stage 2: fine-tuning subsets exist, skipping"
  else
    log "Stage 2: Libri-Light fine-tuning subsets $finetune_parts"
    python -m hourglass_w2v2.bin.prepare_finetune_subsets --manifest-dir "$manifests" \
      --prefix $corpus --finetuning-dir "$dl_dir/librispeech_finetuning" \
      --num-jobs "$num_jobs" $skip_bad_opt
    echo "$made_from" > "$manifests/.${corpus}_finetune_subsets.done"
  fi
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  if [ -f "$manifests/.${corpus}_cuts.done" ]; then
    log "Stage 3: cut sets exist, skipping"
  else
    if [ -z "$pretrain_parts" ]; then
      log "Error: no train-* part under $dl_dir/LibriSpeech (the pretraining cuts and stage 4's" \
        "units come from them)"
      exit 1
    fi
    log "Stage 3: raw-audio cut sets of$parts $finetune_parts; pretrain from $pretrain_parts"
    python -m hourglass_w2v2.bin.prepare_cuts --manifest-dir "$manifests" --prefix $corpus \
      --parts $parts $finetune_parts --pretrain-parts $pretrain_parts
    touch "$manifests/.${corpus}_cuts.done"
  fi
fi

# Units are learned from the training transcripts (read from the train-* supervisions). The word
# list adds LibriSpeech's 200k-word vocabulary and every word of the 3-gram, so that G's words are
# all in words.txt (stage 5 fails otherwise).
transcripts=$(for p in $pretrain_parts; do echo $manifests/${corpus}_supervisions_$p.jsonl.gz; done)
arpa3=$dl_dir/lm/3-gram.pruned.1e-7.arpa
arpa4=$dl_dir/lm/4-gram.arpa

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  if [ -f data/.lang.done ]; then
    log "Stage 4: lang dirs exist, skipping"
  else
    log "Stage 4: character and BPE ($bpe_vocab_sizes) units in data/lang_char, data/lang_bpe_N"
    if [ -z "$transcripts" ]; then
      log "Error: no train-* part under $dl_dir/LibriSpeech to learn units from"
      exit 1
    fi
    words_text=""
    [ -f "$dl_dir/lm/librispeech-vocab.txt" ] && words_text="$dl_dir/lm/librispeech-vocab.txt"
    if [ -f "$arpa3" ]; then
      mkdir -p data/lm
      # the unigram section's words (second field); the reserved ones are dropped by prepare_lang
      awk '/^\\1-grams:/ {on = 1; next} /^\\/ {on = 0} on && NF >= 2 {print $2}' "$arpa3" \
        > data/lm/3-gram-words.txt
      words_text="$words_text data/lm/3-gram-words.txt"
    fi
    [ -z "$words_text" ] && log "Warning: neither $dl_dir/lm/librispeech-vocab.txt nor $arpa3;" \
      "the word list has the transcripts' words only"
    python -m hourglass_w2v2.bin.prepare_lang --unit char --text $transcripts \
      --words-text $words_text --lang-dir data/lang_char
    for n in $bpe_vocab_sizes; do
      python -m hourglass_w2v2.bin.prepare_lang --unit bpe --vocab-size "$n" --text $transcripts \
        --words-text $words_text --lang-dir data/lang_bpe_$n
    done
    touch data/.lang.done
  fi
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  if [ -f data/.graphs.done ]; then
    log "Stage 5: LMs and graphs exist, skipping"
  else
    log "Stage 5: LibriSpeech's 3-gram (pruned 1e-7) and 4-gram LMs, H/L/HL/HLG graphs"
    if [ ! -f "$arpa3" ]; then
      log "Error: $arpa3 not found; run stage 0 with --download true (OpenSLR 11)"
      exit 1
    fi
    mkdir -p data/lm
    ln -sfn "$(realpath "$arpa3")" data/lm/G_3_gram.arpa
    if [ -f "$arpa4" ]; then
      ln -sfn "$(realpath "$arpa4")" data/lm/G_4_gram.arpa  # for decode --method lm-rescore
    else
      log "Warning: $arpa4 not found; lm-rescore will have no 4-gram"
    fi
    for lang in data/lang_char $(for n in $bpe_vocab_sizes; do echo data/lang_bpe_$n; done); do
      python -m hourglass_w2v2.bin.compile_graphs --lang-dir "$lang" --arpa data/lm/G_3_gram.arpa
    done
    touch data/.graphs.done
  fi
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  if [ -z "$librilight_dir" ]; then
    log "Stage 6: no --librilight-dir given, skipping Libri-Light"
  else
    log "Stage 6: Libri-Light $librilight_parts from $librilight_dir cut into segments" \
      "(by $segment_by, at most $segment_max_duration s)"
    python -m hourglass_w2v2.bin.prepare_librilight --corpus-dir "$librilight_dir" \
      --manifest-dir "$manifests" --parts $librilight_parts --segment-by "$segment_by" \
      --max-duration "$segment_max_duration" --overlap "$overlap" --num-jobs "$num_jobs"
  fi
fi

if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  if [ -d "$shar_dir" ]; then
    log "Stage 7: $shar_dir exists, skipping"
  else
    shar_inputs=""
    for f in $manifests/${corpus}_cuts_pretrain.jsonl.gz \
        $(for p in $librilight_parts; do echo $manifests/librilight_cuts_$p.jsonl.gz; done); do
      [ -f "$f" ] && shar_inputs="$shar_inputs $f"
    done
    if [ -z "$shar_inputs" ]; then
      log "Error: no pretraining cut set in $manifests; run stage 3 (and stage 6) first"
      exit 1
    fi
    log "Stage 7: Shar shards of$shar_inputs in $shar_dir ($shar_shard_size cuts each)"
    python -m hourglass_w2v2.bin.prepare_shar --cuts $shar_inputs --out-dir "$shar_dir" \
      --shard-size "$shar_shard_size" --num-jobs "$num_jobs"
  fi
fi

log "Done (stages $stage-$stop_stage)"
