"""Lang dir preparation: sentencepiece ids, words.txt, lexicons and disambiguation symbols."""

import os

import pytest
import sentencepiece as spm

from hourglass_w2v2.bin import prepare_lang as prepare_lang_cli
from hourglass_w2v2.lang.prepare import (
    add_disambig_symbols,
    prepare_lang,
    read_lexicon,
    write_lexicon,
    write_symbol_table,
)
from hourglass_w2v2.lang.tokenizer import Tokenizer, read_token_table


def test_char_lang_dir(toy_lang):
    tok = Tokenizer(toy_lang)  # also checks tokens.txt == the sentencepiece model, id for id
    assert tok.id2token[:3] == ["<blk>", "<sos/eos>", "<unk>"]
    assert set("THECATSDOGRNFZ") <= set(tok.id2token)
    words = read_token_table(toy_lang / "words.txt")
    symbols = sorted(words, key=words.get)
    assert symbols[:2] == ["<eps>", "<UNK>"] and symbols[-3:] == ["#0", "<s>", "</s>"]
    assert symbols[2:-3] == sorted(symbols[2:-3]) and "ZOO" in words and "CAT" in words
    assert list(words.values()) == list(range(len(words)))


def test_lexicon_spells_like_the_sentence_encoding(toy_lang):
    """Concatenated word spellings must equal the encoding of the whole sentence."""
    tok = Tokenizer(toy_lang)
    lexicon = dict(read_lexicon(toy_lang / "lexicon.txt"))
    for sentence in ["THE CAT SAT", "A DOG RAN FAST", "THE ZOO"]:
        spelled = [u for w in sentence.split() for u in lexicon[w]]
        assert spelled == [tok.id2token[i] for i in tok.encode(sentence)]


def test_prefix_words_get_disambiguation_symbols(toy_lang):
    lexicon = dict(read_lexicon(toy_lang / "lexicon_disambig.txt"))
    assert lexicon["THE"][-1] == "#1"  # ▁ T H E is a prefix of ▁ T H E N
    assert lexicon["A"][-1] == "#1"  # ▁ A is a prefix of ▁ A T
    assert not lexicon["THEN"][-1].startswith("#")


def test_homophones_get_distinct_symbols():
    lexicon = [
        ("READ", ["r", "e", "d"]),
        ("RED", ["r", "e", "d"]),
        ("RE", ["r", "e"]),
        ("REDO", ["r", "e", "d", "o"]),
    ]
    out, max_id = add_disambig_symbols(lexicon)
    assert out == [
        ("READ", ["r", "e", "d", "#1"]),
        ("RED", ["r", "e", "d", "#2"]),
        ("RE", ["r", "e", "#1"]),
        ("REDO", ["r", "e", "d", "o"]),
    ]
    assert max_id == 2


def test_bpe_cli(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text(
        "\n".join(
            ["THE CAT SAT ON THE MAT", "A DOG RAN FAR AWAY", "THE END", "QUICK BROWN FOX JUMPS"]
            * 20
        )
    )
    extra = tmp_path / "lm.txt"
    extra.write_text("ZEBRAS GRAZE\n")
    lang = tmp_path / "lang_bpe_30"
    prepare_lang_cli.main(
        [
            "--unit",
            "bpe",
            "--vocab-size",
            "30",
            "--text",
            str(text),
            "--words-text",
            str(extra),
            "--lang-dir",
            str(lang),
        ]
    )
    sp = spm.SentencePieceProcessor(model_file=str(lang / "bpe.model"))
    assert sp.get_piece_size() == 30 and sp.id_to_piece(0) == "<blk>" and sp.unk_id() == 2
    assert Tokenizer(lang).vocab_size == 30
    lexicon = dict(read_lexicon(lang / "lexicon.txt"))
    assert "ZEBRAS" in lexicon and lexicon["<UNK>"] == ["▁", "<unk>"]
    assert lexicon["CAT"] == sp.encode("CAT", out_type=str)


def test_more_bpe_units_than_the_text_supports_is_one_line(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("THE CAT SAT ON THE MAT\n" * 5)
    lang = tmp_path / "lang_bpe_500"
    args = ["--unit", "bpe", "--vocab-size", "500", "--text", str(text), "--lang-dir", str(lang)]
    with pytest.raises(SystemExit) as e:
        prepare_lang_cli.main(args)
    message = str(e.value)
    assert message.startswith(
        f"prepare_lang: error: {lang}: 500 BPE units are more than the transcripts support (<= "
    )
    assert message.endswith("); lower --vocab-size (prepare.sh --bpe-vocab-sizes)")
    assert not lang.exists()  # no empty lang dir left behind for the next stage to trip on


def test_a_full_disk_keeps_the_previous_lang_dir_files(tmp_path, monkeypatch):
    """Every lang dir file is written to a temporary name and renamed: when the disk fills up
    (fsync fails) the previous model, tables and lexicons stay whole for stage 5 to read."""
    (tmp_path / "text.txt").write_text("THE CAT SAT\nA DOG RAN\n")
    lang = tmp_path / "lang_char"
    prepare_lang([tmp_path / "text.txt"], lang, "char")
    before = {p.name: p.read_bytes() for p in lang.iterdir()}
    assert sorted(before) == ["char.model", "lexicon.txt", "lexicon_disambig.txt", "tokens.txt",
                              "words.txt"]

    def disk_full(fd):
        raise OSError("No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    (tmp_path / "more.txt").write_text("ZEBRAS QUIETLY JUMP\n")
    with pytest.raises(OSError, match="No space"):
        prepare_lang([tmp_path / "more.txt"], lang, "char")
    with pytest.raises(OSError, match="No space"):
        write_symbol_table(lang / "tokens.txt", [("<blk>", 0)])
    with pytest.raises(OSError, match="No space"):
        write_lexicon(lang / "lexicon.txt", [("ZEBRAS", ["Z"])])
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in lang.iterdir()} == before
