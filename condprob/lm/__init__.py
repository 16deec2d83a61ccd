"""Language models as Markov kernels (in progress)."""
