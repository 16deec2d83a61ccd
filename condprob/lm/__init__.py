"""Language models as Markov kernels.

A `TokenKernel` is the kernel prefix -> next-token law of any batched next-token model; decoding
methods (`Temperature`, `TopK`, `TopP`, `MinP`, `Typical`, `Eta`, `Epsilon`) are kernel
transformations, and `sample_filtered` draws from the filtered law without sorting. Gumbel tricks
(`gumbel_max`, `posterior_gumbel`, `counterfactual`, `gumbel_topk`, `stochastic_beam_search`),
conditional Poisson sampling and beam search with Horvitz-Thompson estimators, and speculative
sampling (single and multi-draft, with the LP-optimal draft selection of `lp_selection` and its
two-step decomposition `two_step_selection`) complete the sampling toolbox. Regular languages constrain
generation: `TokenIndex` (token-level automaton from a vocabulary trie), `constrain` (masked
decoding), `ConditionedLM` (exact conditioning of the finite-state models `BigramLM` and `HMMLM`)
and `smc` (importance weights and resampling for any model). Attribute kernels condition on
classifiers and verifiers: `guide` (GeDi's per-step Bayes inversion), `twisted_smc` with exact,
learned (`train_value_twist`) or verifier-gradient (`GradientTwist`) twists. `symspell_bigram()` is a real
offline word model and `train_char_lm(stdlib_text())` a small neural one. `CharacterKernel` gives
exact token-free next-character laws of a token model (maximum-prefix encoding and BPE).
"""

from condprob.lm.attributes import (
    AttributeKernel,
    ClassConditional,
    RegularAttribute,
    TextClassifier,
    guide,
    profanity,
    vader_sentiment,
)
from condprob.lm.charlm import CharGRU, stdlib_text, train_char_lm, train_token_lm, tweets
from condprob.lm.cpsbs import (
    CPBeam,
    conditional_poisson_sample,
    cp_beam_search,
    horvitz_thompson,
    inclusion_probabilities,
    log_normaliser,
)
from condprob.lm.filters import (
    Epsilon,
    Eta,
    Filter,
    MinP,
    Temperature,
    TopK,
    TopP,
    Typical,
    entropy,
)
from condprob.lm.gumbel import (
    Beam,
    counterfactual,
    gumbel_max,
    gumbel_topk,
    posterior_gumbel,
    sbs_estimate,
    stochastic_beam_search,
)
from condprob.lm.kernel import SequenceKernel, TokenKernel
from condprob.lm.models import HMMLM, BigramLM, symspell_bigram
from condprob.lm.multidraft import (
    Selection,
    TwoStepSelection,
    identical_drafts_acceptance,
    lp_selection,
    optimal_acceptance,
    recursive_rejection_acceptance,
    two_step_selection,
)
from condprob.lm.regex import (
    ConditionedBigram,
    ConditionedLM,
    SMCResult,
    TokenIndex,
    VocabularyTrie,
    char_dfa,
    constrain,
    smc,
)
from condprob.lm.sampling import sample_filtered, sample_filtered_torch, sample_sorted
from condprob.lm.scores import (
    TokenScores,
    curvature,
    prefix_log_probs,
    token_scores,
)
from condprob.lm.speculative import recursive_rejection, speculative_generate, speculative_step
from condprob.lm.tokenfree import (
    END,
    BPETokenizer,
    CharacterKernel,
    MaxPrefixTokenizer,
    PushforwardLM,
    chain_texts,
    sample_chain,
    transition_estimates,
)
from condprob.lm.twisted import (
    GradientTwist,
    LinearVerifier,
    TwistedSMCResult,
    ValueTwist,
    fit_linear_verifier,
    train_value_twist,
    twisted_smc,
)

__all__ = [
    "AttributeKernel", "ClassConditional", "GradientTwist", "LinearVerifier", "RegularAttribute",
    "TextClassifier", "TwistedSMCResult", "ValueTwist", "fit_linear_verifier", "guide",
    "profanity", "train_value_twist", "twisted_smc", "vader_sentiment",
    "END", "BPETokenizer", "CharacterKernel", "MaxPrefixTokenizer", "PushforwardLM",
    "chain_texts", "prefix_log_probs", "sample_chain", "train_token_lm",
    "transition_estimates", "tweets",
    "Beam", "BigramLM", "CPBeam", "CharGRU", "ConditionedBigram", "ConditionedLM", "Epsilon",
    "Eta", "Filter", "HMMLM", "Selection", "TwoStepSelection",
    "identical_drafts_acceptance", "lp_selection", "optimal_acceptance",
    "recursive_rejection_acceptance", "two_step_selection", "MinP", "SMCResult", "SequenceKernel",
    "Temperature",
    "TokenIndex", "TokenKernel", "TokenScores", "TopK", "TopP", "Typical", "VocabularyTrie",
    "char_dfa", "conditional_poisson_sample", "constrain", "counterfactual", "cp_beam_search",
    "curvature", "entropy", "gumbel_max", "gumbel_topk", "horvitz_thompson",
    "inclusion_probabilities", "log_normaliser", "posterior_gumbel", "recursive_rejection",
    "sample_filtered", "sample_filtered_torch", "sample_sorted", "sbs_estimate", "smc",
    "speculative_generate", "speculative_step", "stdlib_text", "stochastic_beam_search",
    "symspell_bigram", "token_scores", "train_char_lm",
]
