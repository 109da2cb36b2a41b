"""Session stores: one storage contract, one module per backend."""
