"""Data in: the ledger of published figures, its provenance, and the figures as month constraints."""
