from pathlib import Path

import pytest
import sentencepiece as spm

from hourglass_w2v2.lang import Tokenizer

TEXT = ["THE CAT SAT ON THE MAT", "A DOG RAN TO THE PARK", "SHE SAW THE CAT AND THE DOG"] * 20


def _make_lang(tmp_path: Path, model_type: str = "char") -> Path:
    lang = tmp_path / "lang_char"
    lang.mkdir()
    (tmp_path / "text.txt").write_text("\n".join(TEXT) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(tmp_path / "text.txt"), model_prefix=str(lang / "char"), model_type=model_type,
        vocab_size=200 if model_type == "char" else 40, character_coverage=1.0,
        user_defined_symbols=["<blk>", "<sos/eos>"], unk_id=2, bos_id=-1, eos_id=-1,
        hard_vocab_limit=False, minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_file=str(lang / "char.model"))
    lines = [f"{sp.id_to_piece(i)} {i}" for i in range(sp.get_piece_size())]
    (lang / "tokens.txt").write_text("\n".join(lines) + "\n")
    return lang


def test_roundtrip_and_ids(tmp_path):
    tok = Tokenizer(_make_lang(tmp_path))
    assert tok.id2token[:3] == ["<blk>", "<sos/eos>", "<unk>"]
    assert tok.blank_id == 0 and tok.unk_id == 2
    ids = tok.encode("THE CAT SAT")
    # char model: one unit per letter, plus the word-boundary marks on each word start
    assert len(ids) == len("THECATSAT") + 3
    assert 0 not in ids
    assert tok.decode(ids) == "THE CAT SAT"
    assert tok.decode([0] + ids + [0]) == "THE CAT SAT"
    tokens = (tmp_path / "lang_char" / "tokens.txt").read_text().splitlines()
    assert tok.vocab_size == len(tokens)


def test_mismatched_tokens_txt_is_rejected(tmp_path):
    lang = _make_lang(tmp_path)
    lines = (lang / "tokens.txt").read_text().splitlines()
    a, b = lines[3].split()[0], lines[4].split()[0]
    lines[3], lines[4] = f"{b} 3", f"{a} 4"
    (lang / "tokens.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="id 3"):
        Tokenizer(lang)


def test_missing_lang_dir_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        Tokenizer(tmp_path / "nope")
