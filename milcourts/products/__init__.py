"""The fit stage: each model specification fitted once, its results stored as data products."""
