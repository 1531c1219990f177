"""Models: emitters (MDCSA, Mamba, MLP) and the CRF tagger that wraps them."""
