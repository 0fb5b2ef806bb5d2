"""Corpus generation for the synth recipe: a sentence grammar and espeak-ng speakers."""
