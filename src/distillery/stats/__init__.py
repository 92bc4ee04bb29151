"""Token statistics of the exports under the target chat template."""
