"""Text <-> CTC unit ids for a lang dir (``data/lang_char`` or ``data/lang_bpe_N``)."""

from __future__ import annotations

from pathlib import Path

import sentencepiece as spm

MODEL_NAMES = ("bpe.model", "char.model")


def read_token_table(path: str | Path) -> dict[str, int]:
    """Read a ``tokens.txt`` / ``words.txt`` symbol table (``<sym> <id>`` per line)."""
    table: dict[str, int] = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"{path}:{lineno}: expected '<symbol> <id>', got {line!r}")
        table[parts[0]] = int(parts[1])
    return table


class Tokenizer:
    """The sentencepiece model of a lang dir, with the CTC blank at id 0.

    ``tokens.txt`` is the contract with the model's CTC head and the decoding graphs; the
    sentencepiece model (``bpe.model`` or ``char.model``) must agree with it id for id, which is
    checked here so a mismatched lang dir fails at load time rather than decoding garbage.
    """

    def __init__(self, lang_dir: str | Path) -> None:
        self.lang_dir = Path(lang_dir)
        if not self.lang_dir.is_dir():
            raise FileNotFoundError(
                f"lang dir {self.lang_dir} does not exist (run prepare.sh stage 4)"
            )
        models = [self.lang_dir / n for n in MODEL_NAMES if (self.lang_dir / n).is_file()]
        if not models:
            raise FileNotFoundError(
                f"{self.lang_dir} has no sentencepiece model ({' or '.join(MODEL_NAMES)})"
            )
        self.model_path = models[0]
        self.sp = spm.SentencePieceProcessor(model_file=str(self.model_path))
        tokens_path = self.lang_dir / "tokens.txt"
        if not tokens_path.is_file():
            raise FileNotFoundError(f"{tokens_path} is missing")
        self.token_table = read_token_table(tokens_path)
        self.id2token = [""] * len(self.token_table)
        for sym, idx in self.token_table.items():
            if not 0 <= idx < len(self.token_table):
                raise ValueError(f"{tokens_path}: id {idx} of {sym!r} is out of range")
            self.id2token[idx] = sym
        if self.sp.get_piece_size() != len(self.token_table):
            raise ValueError(
                f"{tokens_path} has {len(self.token_table)} tokens but {self.model_path.name} "
                f"has {self.sp.get_piece_size()} pieces"
            )
        for idx, sym in enumerate(self.id2token):
            if self.sp.id_to_piece(idx) != sym:
                raise ValueError(
                    f"{tokens_path}: id {idx} is {sym!r} but {self.model_path.name} "
                    f"says {self.sp.id_to_piece(idx)!r}"
                )
        if self.id2token[0] != "<blk>":
            raise ValueError(f"{tokens_path}: id 0 must be <blk>, got {self.id2token[0]!r}")
        self.blank_id = 0
        self.unk_id = self.sp.unk_id()

    @property
    def vocab_size(self) -> int:
        """Number of output units of the CTC head, blank included."""
        return len(self.id2token)

    def encode(self, text: str) -> list[int]:
        """Unit ids of a transcript (upper-case words separated by spaces)."""
        return self.sp.encode(text, out_type=int)

    def decode(self, ids: list[int]) -> str:
        """Transcript of a unit id sequence; blanks are dropped."""
        return self.sp.decode([int(i) for i in ids if int(i) != self.blank_id])
