"""Prepare a lang dir: sentencepiece units, word list and lexicon (prepare.sh stage 4).

A lang dir (``data/lang_char`` or ``data/lang_bpe_<N>``) holds, as icefall's
``prepare_lang_bpe.py`` makes them:

- ``bpe.model`` / ``char.model``: the sentencepiece model, ``<blk>`` = 0, ``<sos/eos>`` = 1,
  ``<unk>`` = 2;
- ``tokens.txt``: ``<piece> <id>`` for every piece, nothing else (the CTC head's outputs);
- ``words.txt``: ``<eps>`` 0, ``<UNK>``, the words sorted, then ``#0``, ``<s>``, ``</s>``;
- ``lexicon.txt``: ``WORD p1 p2 ...``, each word spelled in units the way sentencepiece spells it
  inside a sentence (every word starts with a ``▁`` piece, so a spelling never straddles words);
- ``lexicon_disambig.txt``: the same with ``#1``, ``#2``, ... appended where a spelling is the
  prefix of another or shared by several words (Kaldi's ``add_lex_disambig.pl``).
"""

from __future__ import annotations

import collections
import gzip
import json
import logging
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import sentencepiece as spm

from hourglass_w2v2.fileio import atomic_write, atomic_write_text

BLANK = "<blk>"
SOS_EOS = "<sos/eos>"
UNK = "<unk>"
UNK_WORD = "<UNK>"
WORD_BOUNDARY = "\u2581"  # sentencepiece's "▁"
SPECIAL_WORDS = ("<eps>", "#0", "<s>", "</s>")

Lexicon = list[tuple[str, list[str]]]


def iter_text(path: str | Path) -> Iterator[str]:
    """Yield transcripts from a text file (one sentence a line) or a lhotse manifest.

    A ``.jsonl``/``.jsonl.gz`` file is read as a lhotse supervision or cut manifest and the
    ``text`` of every supervision is yielded, so stage 4 can read the training cuts directly.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text file {path} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    is_manifest = path.name.endswith((".jsonl", ".jsonl.gz"))
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if not is_manifest:
                yield line
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not a JSON line ({e})") from None
            sups = item.get("supervisions", [item])
            for sup in sups:
                if sup.get("text"):
                    yield sup["text"].strip()


def train_sentencepiece(
    texts: Iterable[str], lang_dir: str | Path, unit: str, vocab_size: int | None = None
) -> Path:
    """Train a sentencepiece model on ``texts`` into ``lang_dir`` and write ``tokens.txt``.

    ``unit`` is ``"bpe"`` (a unigram model with ``vocab_size`` pieces, icefall's choice despite the
    name) or ``"char"`` (``model_type=char``, one piece per character plus ``▁``). ``<blk>`` and
    ``<sos/eos>`` are user-defined symbols 0 and 1 and ``<unk>`` is 2, so the CTC blank is id 0.
    Returns the model path.
    """
    lang_dir = Path(lang_dir)
    lang_dir.mkdir(parents=True, exist_ok=True)
    if unit not in ("bpe", "char"):
        raise ValueError(f"unit must be 'bpe' or 'char', got {unit!r}")
    if unit == "bpe" and not vocab_size:
        raise ValueError("--vocab-size is required for --unit bpe")
    model_name = "bpe.model" if unit == "bpe" else "char.model"
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "text.txt"
        chars: set[str] = set()
        num_lines = 0
        with corpus.open("w", encoding="utf-8") as f:
            for line in texts:
                f.write(line + "\n")
                chars.update(line.replace(" ", ""))
                num_lines += 1
        if num_lines == 0:
            raise ValueError("no text to train sentencepiece on (all --text files are empty)")
        if unit == "char":
            # specials + '▁' + every character; hard_vocab_limit=False lets sentencepiece stop at
            # the real character inventory.
            vocab_size = len(chars) + 4
        try:
            _train_spm(corpus, Path(tmp) / "sp", unit, vocab_size)
        except RuntimeError as e:
            if "Vocabulary size too high" not in str(e):
                raise
            raise ValueError(
                f"{lang_dir}: {vocab_size} BPE units are more than the transcripts support "
                f"({str(e).rsplit('Please set it to a value', 1)[-1].strip(' .')}); "
                "lower --vocab-size (prepare.sh --bpe-vocab-sizes)"
            ) from None
        model_path = lang_dir / model_name
        model = (Path(tmp) / "sp.model").read_bytes()
        atomic_write(model_path, lambda f: f.write(model))
    sp = spm.SentencePieceProcessor(model_file=str(model_path))
    assert sp.id_to_piece(0) == BLANK and sp.id_to_piece(2) == UNK, "sentencepiece ids moved"
    write_symbol_table(
        lang_dir / "tokens.txt", [(sp.id_to_piece(i), i) for i in range(sp.get_piece_size())]
    )
    logging.info("trained %s with %d units -> %s", model_name, sp.get_piece_size(), model_path)
    return model_path


def _train_spm(corpus: Path, prefix: Path, unit: str, vocab_size: int) -> None:
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        model_type="unigram" if unit == "bpe" else "char",
        vocab_size=vocab_size,
        hard_vocab_limit=unit == "bpe",
        character_coverage=1.0,
        input_sentence_size=10_000_000,
        shuffle_input_sentence=True,
        user_defined_symbols=[BLANK, SOS_EOS],
        unk_id=2,
        bos_id=-1,
        eos_id=-1,
        minloglevel=2,
    )


def write_symbol_table(path: str | Path, items: Iterable[tuple[str, int]]) -> None:
    """Write ``<symbol> <id>`` lines (the format of ``tokens.txt`` and ``words.txt``)."""
    atomic_write_text(path, "".join(f"{sym} {idx}\n" for sym, idx in items))


def build_word_list(texts: Iterable[str]) -> list[str]:
    """Sorted distinct words of ``texts``, without the reserved symbols."""
    words: set[str] = set()
    for line in texts:
        words.update(line.split())
    return sorted(words - set(SPECIAL_WORDS) - {UNK_WORD})


def write_words(path: str | Path, words: list[str]) -> dict[str, int]:
    """Write icefall's ``words.txt``: ``<eps>`` 0, ``<UNK>``, words, ``#0``, ``<s>``, ``</s>``."""
    symbols = ["<eps>", UNK_WORD, *words, "#0", "<s>", "</s>"]
    table = {sym: i for i, sym in enumerate(symbols)}
    write_symbol_table(path, table.items())
    return table


def spell_words(words: list[str], model_path: str | Path) -> Lexicon:
    """Lexicon entries ``(word, pieces)`` spelling each word as sentencepiece does.

    Characters sentencepiece does not know become ``<unk>`` (ids, not surface pieces, are what
    the model emits). ``<UNK>`` is spelled ``▁ <unk>``, the way an unknown word appears inside a
    sentence, so the graphs can output it when the model emits ``<unk>``.
    """
    sp = spm.SentencePieceProcessor(model_file=str(model_path))
    pieces = [[sp.id_to_piece(i) for i in ids] for ids in sp.encode(words)]
    has_boundary = sp.piece_to_id(WORD_BOUNDARY) != sp.unk_id()
    lexicon: Lexicon = [(UNK_WORD, [WORD_BOUNDARY, UNK] if has_boundary else [UNK])]
    for word, spelling in zip(words, pieces, strict=True):
        if not spelling:
            raise ValueError(f"sentencepiece spells word {word!r} as nothing")
        lexicon.append((word, spelling))
    return lexicon


def add_disambig_symbols(lexicon: Lexicon) -> tuple[Lexicon, int]:
    """Append ``#1``, ``#2``, ... so no spelling is a prefix of another or shared by two words.

    Follows Kaldi's ``add_lex_disambig.pl``: a spelling that is a proper prefix of another one,
    or occurs for several words, gets a distinct ``#k``. Returns the new lexicon and the highest
    ``k`` used (``#0``, the LM back-off symbol, always exists).
    """
    count = collections.Counter(tuple(p) for _, p in lexicon)
    prefixes: set[tuple[str, ...]] = set()
    for _, p in lexicon:
        for i in range(1, len(p)):
            prefixes.add(tuple(p[:i]))
    next_id: dict[tuple[str, ...], int] = collections.defaultdict(int)
    max_disambig = 0
    out: Lexicon = []
    for word, p in lexicon:
        key = tuple(p)
        if key in prefixes or count[key] > 1:
            next_id[key] += 1
            max_disambig = max(max_disambig, next_id[key])
            out.append((word, [*p, f"#{next_id[key]}"]))
        else:
            out.append((word, list(p)))
    return out, max_disambig


def write_lexicon(path: str | Path, lexicon: Lexicon) -> None:
    """Write ``WORD p1 p2 ...`` lines."""
    atomic_write_text(path, "".join(f"{w} {' '.join(p)}\n" for w, p in lexicon))


def read_lexicon(path: str | Path) -> Lexicon:
    """Read ``lexicon.txt`` / ``lexicon_disambig.txt``."""
    lexicon: Lexicon = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise ValueError(f"{path}:{lineno}: word {parts[0]!r} has no spelling")
        lexicon.append((parts[0], parts[1:]))
    return lexicon


def prepare_lang(
    text_files: list[str | Path],
    lang_dir: str | Path,
    unit: str,
    vocab_size: int | None = None,
    words_text_files: list[str | Path] = (),
) -> None:
    """Make a complete lang dir (units, ``words.txt``, lexicons) from transcripts.

    Units are trained on ``text_files`` (the fine-tuning transcripts); the word list is the union
    of the words in ``text_files`` and ``words_text_files`` (e.g. the LM text), so every LM word
    can be decoded.
    """
    lang_dir = Path(lang_dir)

    def transcripts() -> Iterator[str]:
        for path in text_files:
            yield from iter_text(path)

    model_path = train_sentencepiece(transcripts(), lang_dir, unit, vocab_size)

    def all_text() -> Iterator[str]:
        yield from transcripts()
        for path in words_text_files:
            yield from iter_text(path)

    words = build_word_list(all_text())
    write_words(lang_dir / "words.txt", words)
    lexicon = spell_words(words, model_path)
    write_lexicon(lang_dir / "lexicon.txt", lexicon)
    lexicon_disambig, max_disambig = add_disambig_symbols(lexicon)
    write_lexicon(lang_dir / "lexicon_disambig.txt", lexicon_disambig)
    logging.info(
        "%s: %d words, %d lexicon entries, disambiguation symbols #0..#%d",
        lang_dir,
        len(words),
        len(lexicon),
        max_disambig,
    )
