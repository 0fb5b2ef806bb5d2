#!/usr/bin/env bash
# The GPU benchmarks on any machine with one CUDA GPU, one part per call (docs/benchmarks.md).
# Needs torch built with CUDA, torchaudio and transformers in the active Python; the checkout
# is put on PYTHONPATH, so it need not be installed. Runs on the first visible GPU (choose
# another with CUDA_VISIBLE_DEVICES). Call it from any directory:
#
#   bash benchmarks/gpu.sh encoder   # encoder_speed.py at base, bf16, compile off and on
#   bash benchmarks/gpu.sh train     # train_speed.py: base vs base-hourglass vs HF, bf16
#   bash benchmarks/gpu.sh posconv   # pos_conv_speed.py: cuDNN conv vs FFT pos_conv, bf16
#   bash benchmarks/gpu.sh contrastive  # contrastive_speed.py: InfoNCE logits, time + memory
#   bash benchmarks/gpu.sh memory    # encoder_speed.py at 15 s: activation checkpointing on/off
#   bash benchmarks/gpu.sh decode    # decode_rtf.py: decoding RTF, base / large, vanilla / hourglass
#   bash benchmarks/gpu.sh all       # train (eager), contrastive, posconv, train (compiled),
#                                    # encoder (eager), memory, decode, most wanted first, each
#                                    # part in its own process under its own time limit (10 min
#                                    # in all)
#   (also encoder-eager, train-eager, train-compiled: one half of encoder / train)
#
# Tables go to stdout and to $OUT when it is set, else to benchmarks/out/, with device.txt
# (GPU, driver, torch and torchaudio versions) and, for `all`, timings.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-encoder}
out=${OUT:-benchmarks/out}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
usage="usage: $0 encoder|encoder-eager|train|train-eager|train-compiled|posconv|contrastive|memory|decode|all"
case "$what" in
  encoder|encoder-eager|train|train-eager|train-compiled|posconv|contrastive|memory|decode|all) ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
if [ -z "${GPU_SH_PART:-}" ]; then
  if ! python -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "$0: no CUDA GPU visible to torch (torch.cuda.is_available() is False); run it on a" \
      "machine with a CUDA GPU and torch built for CUDA" >&2
    exit 1
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/device.txt"
  python -c "import torch, torchaudio; print('torch', torch.__version__, 'torchaudio', torchaudio.__version__)" \
    | tee -a "$out/device.txt"
fi

if [ "$what" = all ]; then
  # Each part in its own process under `timeout`, so one that hangs or runs long costs only its
  # own slot; a part that fails is reported and the next one still runs. Limits in seconds.
  status=0
  for part in train-eager:150 contrastive:60 posconv:75 train-compiled:120 encoder-eager:105 memory:60 decode:30; do
    name=${part%%:*} limit=${part##*:}
    echo "== $name (at most $limit s)"
    start=$(date +%s)
    GPU_SH_PART=1 timeout --signal=TERM --kill-after=10 "$limit" bash "$0" "$name" || {
      rc=$?; status=1; echo "== $name: exit status $rc ($([ $rc -eq 124 ] && echo 'time limit' || echo failed))"; }
    echo "== $name took $(( $(date +%s) - start )) s" | tee -a "$out/timings.txt"
  done
  exit $status
fi

# The Base recipe's per-GPU batch: 1.4M samples = 87.5 s of audio, here as 8 x 10.9 s crops.
train=(--device cuda --precision bf16 --models base base-hourglass hf-base --batch-seconds 87.5
       --utt-seconds 10.9375 --updates 20 --warmup 5)
encoder=(--device cuda --dtype bf16 --sizes base --batch 8 --lengths 2 5 10 15 30
         --factors 2 3 4 5 6 --steps 10 --warmup 3 --markdown)
case "$what" in
  encoder-eager)
    python benchmarks/encoder_speed.py "${encoder[@]}" | tee "$out/encoder_bf16.md"
    ;;
  encoder)
    python benchmarks/encoder_speed.py "${encoder[@]}" | tee "$out/encoder_bf16.md"
    python benchmarks/encoder_speed.py "${encoder[@]}" --compile | tee "$out/encoder_bf16_compile.md"
    ;;
  train)
    python benchmarks/train_speed.py "${train[@]}" --compile both | tee "$out/train_bf16.md"
    ;;
  train-eager)
    python benchmarks/train_speed.py "${train[@]}" --compile no | tee "$out/train_bf16.md"
    ;;
  train-compiled)
    python benchmarks/train_speed.py "${train[@]}" --compile yes | tee "$out/train_bf16_compile.md"
    ;;
  posconv)
    # decides PositionalConvEmbedding(impl="auto") on CUDA (conv today; fft is CPU's choice)
    python benchmarks/pos_conv_speed.py --device cuda --dtype bf16 \
      --sizes base-hourglass large-hourglass --seconds 5 15 30 --batch 8 | tee "$out/pos_conv_bf16.md"
    ;;
  contrastive)
    # our gathered (B, M, M) cosines vs the (B, M, 1+N, F) candidates tensor, Base recipe's batch
    python benchmarks/contrastive_speed.py --device cuda --sizes base large --batch 8 \
      --seconds 10.9375 | tee "$out/contrastive.md"
    ;;
  memory)
    # saved activations, peak memory and step time with and without activation checkpointing
    python benchmarks/encoder_speed.py --device cuda --dtype bf16 --sizes base --batch 8 \
      --lengths 15 --factors 4 --resample avg --checkpointing none extractor extractor+layers \
      --no-torchaudio --steps 5 --warmup 2 --markdown | tee "$out/checkpointing_bf16.md"
    ;;
  decode)
    # the acoustic model's decoding RTF, test-clean's utterance lengths, bin.decode's batching
    python benchmarks/decode_rtf.py --device cuda --dtype bf16 --num-utts 400 \
      --models base base-hourglass large large-hourglass | tee "$out/decode_rtf_bf16.md"
    ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
