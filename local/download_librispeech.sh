#!/usr/bin/env bash
# Download what egs/librispeech/SSL needs into DL_DIR (resumable, skips what is present):
#   DL_DIR/LibriSpeech/<part>/          LibriSpeech parts (OpenSLR 12)
#   DL_DIR/librispeech_finetuning/      Libri-Light limited-resource fine-tuning sets
#   DL_DIR/lm/                          LM text, vocabulary and ARPA LMs (OpenSLR 11)
#
#   local/download_librispeech.sh DL_DIR [PART ...]     (default: all seven parts)
set -euo pipefail

dl_dir=$1; shift
parts=${*:-"train-clean-100 train-clean-360 train-other-500 dev-clean dev-other test-clean test-other"}
openslr=${OPENSLR_MIRROR:-https://www.openslr.org/resources}
librilight=https://dl.fbaipublicfiles.com/librilight/data

fetch() {  # URL DEST: resumable download to DEST.part, renamed when complete
  [ -f "$2" ] && return 0
  mkdir -p "$(dirname "$2")"
  wget --continue --no-verbose -O "$2.part" "$1"
  mv "$2.part" "$2"
}

for part in $parts; do
  if [ -f "$dl_dir/LibriSpeech/$part/.completed" ]; then continue; fi
  fetch "$openslr/12/$part.tar.gz" "$dl_dir/$part.tar.gz"
  tar -xzf "$dl_dir/$part.tar.gz" -C "$dl_dir"
  touch "$dl_dir/LibriSpeech/$part/.completed"
done

if [ ! -f "$dl_dir/librispeech_finetuning/.completed" ]; then
  fetch "$librilight/librispeech_finetuning.tgz" "$dl_dir/librispeech_finetuning.tgz"
  tar -xzf "$dl_dir/librispeech_finetuning.tgz" -C "$dl_dir"
  touch "$dl_dir/librispeech_finetuning/.completed"
fi

for f in librispeech-lm-norm.txt.gz librispeech-vocab.txt 3-gram.pruned.1e-7.arpa.gz 4-gram.arpa.gz; do
  out=$dl_dir/lm/${f%.gz}
  [ -f "$out" ] && continue
  fetch "$openslr/11/$f" "$dl_dir/lm/$f"
  if [ "$f" != "${f%.gz}" ]; then gunzip -c "$dl_dir/lm/$f" > "$out.tmp" && mv "$out.tmp" "$out"; fi
done
