"""Preparation stages (prepare.sh 1-3): checked manifests, fine-tuning subsets, cut sets."""
