"""Units, lexicons, n-gram LMs and decoding graphs."""

from hourglass_w2v2.lang.tokenizer import Tokenizer, read_token_table

__all__ = ["Tokenizer", "read_token_table"]
