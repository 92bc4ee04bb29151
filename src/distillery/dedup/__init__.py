"""Exact and near-duplicate removal (MinHash-LSH, verified) and benchmark decontamination."""
