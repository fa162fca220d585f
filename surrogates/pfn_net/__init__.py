"""bocli's prior-data fitted network: transformer, bar distribution, GP prior, training, checkpoints.

Pure numerical code (no CLI, no printing); ``surrogates/pfn.py`` adapts it to the surrogate contract.
"""
