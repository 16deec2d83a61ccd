"""`crf`: linear-chain CRFs, also constrained to regular languages (RegCCRF), on condprob's
chain engine and automata.

- `LinearChainCRF`: log_prob / NLL (none, sum, mean, token_mean), log_partition, marginals,
  decode (Viterbi), top_k, sample, entropy, partial-label likelihood; any masks.
- `RegCCRF`: the same under a regular language of label sequences (training and decoding).
- `bio`, `bioes`, `iob1`: scheme constraints from entity types.
- `CRFDistribution`: p(y | x) as a torch/Pyro distribution; `CRFKernel` (`model.kernel()`): the CRF
  as a Markov kernel emissions -> label sequences in the core's protocol.
- `Tagger`, `token_nll`, `sentence_nll`: an encoder under a CRF, trained by `condprob.train.fit`.
"""

import condprob  # noqa: F401  (the packages stand on the core, never the reverse)
from crf.constraints import bio, bioes, iob1
from crf.distribution import CRFDistribution
from crf.kernel import CRFKernel
from crf.linear_chain import LinearChainCRF
from crf.regular import RegCCRF, constrained_decode
from crf.train import Tagger, sentence_nll, token_nll

__all__ = ["CRFDistribution", "CRFKernel", "LinearChainCRF", "RegCCRF", "Tagger", "bio", "bioes",
           "constrained_decode", "iob1", "sentence_nll", "token_nll"]
