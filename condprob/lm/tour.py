"""The lm tour section: a real word-level bigram model (symspellpy's counts) as a Markov kernel,
decoding, counterfactuals, sampling without replacement, speculative sampling, exact versus
locally masked regular-language conditioning, twisted SMC with the backward filter as twist,
token-free laws of a tokenised Markov chain, and SMC conditioning of a character GRU."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from condprob.lm.attributes import RegularAttribute
from condprob.lm.charlm import stdlib_text, train_char_lm
from condprob.lm.cpsbs import cp_beam_search, horvitz_thompson
from condprob.lm.filters import Temperature, TopP
from condprob.lm.gumbel import counterfactual, sbs_estimate, stochastic_beam_search
from condprob.lm.kernel import TokenKernel
from condprob.lm.models import symspell_bigram
from condprob.lm.regex import ConditionedBigram, TokenIndex, constrain, smc
from condprob.lm.sampling import sample_filtered
from condprob.lm.scores import curvature, token_scores
from condprob.lm.speculative import speculative_generate
from condprob.lm.tokenfree import (
    CharacterKernel,
    MaxPrefixTokenizer,
    PushforwardLM,
    chain_texts,
    sample_chain,
    transition_estimates,
)
from condprob.lm.twisted import twisted_smc


def _words(kernel, seq: torch.Tensor) -> str:
    return " ".join(str(kernel.vocab.label(i)) for i in seq.tolist())


def run(out: Path) -> str:
    """Generate, score, intervene, estimate and condition with the symspell bigram kernel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    lm = symspell_bigram()
    the = lm.vocab.index("the")
    print(f"  symspell bigram kernel: {lm.vocab_size:,} words "
          f"({time.perf_counter() - t0:.1f} s to build)", flush=True)

    nucleus = lm.transform(Temperature(0.8), TopP(0.9))
    text = nucleus.steps(10).sample([[the]], generator=g)
    scores = token_scores(lm, text, 1)
    curv_model = float(curvature(lm, text, 1)[0])
    shuffled = torch.cat([text[:, :1], text[:, 1:][:, torch.randperm(10, generator=g)]], 1)
    curv_shuffled = float(curvature(lm, shuffled, 1)[0])
    print(f"  nucleus text: {_words(lm, text[0])}", flush=True)

    factual = lm.steps(8).sample([[the]], generator=g)
    cat = lm.vocab.index("cat")
    cf = counterfactual(lm, factual, 1, do={2: cat}, generator=g)
    same = counterfactual(lm, factual, 1, generator=g)
    print(f"  counterfactual with word 2 := 'cat': {_words(lm, cf[0])}", flush=True)

    small = symspell_bigram(max_words=5000)
    s_the = small.vocab.index("the")
    truth = float((small.logits([[s_the]]).exp()[0] * torch.tensor(
        [float(len(str(w))) for w in small.vocab.labels], dtype=torch.float64)).sum())
    sbs = [float(sbs_estimate(b, _last_word_length(small, b.sequences)))
           for b in (stochastic_beam_search(small, [s_the], 8, 1, g) for _ in range(40))]
    cps = [float(horvitz_thompson(_last_word_length(small, b.sequences), b.log_probs,
                                  b.log_inclusion))
           for b in (cp_beam_search(small, [s_the], 8, 1, g) for _ in range(40))]
    print(f"  E[length of the word after 'the'] = {truth:.3f}; SBS {sum(sbs) / 40:.3f}, "
          f"CPSBS {sum(cps) / 40:.3f} (40 beams of 8)", flush=True)

    draft = lm.transform(Temperature(1.3))
    seq, rounds = speculative_generate(lm, draft, [[the]], 12, n_draft=4, generator=g)
    print(f"  speculative: 12 words in {rounds} target rounds: {_words(lm, seq[0])}", flush=True)

    logits = torch.randn(64, 32_000, generator=g) * 2
    t1 = time.perf_counter()
    sample_filtered(logits, top_p=0.9, generator=g)
    t_free = time.perf_counter() - t1
    t1 = time.perf_counter()
    TopP(0.9)(logits)
    t_sort = time.perf_counter() - t1

    vocab = list(lm.vocab.labels)[:48_000] + [str(i) for i in range(1000)] + ["-", "/"]
    t1 = time.perf_counter()
    index = TokenIndex.from_regex(r"(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])",
                                  vocab)
    t_index = time.perf_counter() - t1
    print(f"  date index over {len(vocab):,} tokens: {t_index:.2f} s, "
          f"{index.num_states} states", flush=True)

    pattern = ". (cat | dog | house) . ."
    words = TokenIndex.from_token_regex(pattern, list(small.vocab.labels))
    exact = ConditionedBigram(small, words, 4)
    p_event = float(exact.log_prob_event([[s_the]])[0].exp())
    est = float(smc(small, words, [s_the], 4, 512, g).log_evidence.exp())
    cond_next = exact.kernel(1).logits([[s_the]]).exp()[0]
    local_next = constrain(small, words, 1).logits([[s_the]]).exp()[0]
    top = torch.topk(cond_next, 8).indices
    sample = exact.sample([[s_the]], generator=g)
    print(f"  P('{pattern}' | the) = {p_event:.3e} exact, {est:.3e} by SMC", flush=True)
    twisted = twisted_smc(small, RegularAttribute(exact, 1), "accept", [s_the], 4,
                          twist=RegularAttribute(exact, 1), num_particles=64, generator=g)
    twisted_ess = min(twisted.ess) / 64
    print(f"  twisted SMC with the backward filter as twist: {float(twisted.log_evidence.exp()):.3e}"
          f", ESS/N {twisted_ess:.2f}", flush=True)

    chain = torch.tensor([[0.6, 0.4], [0.3, 0.7]], dtype=torch.float64)
    init = torch.tensor([0.5, 0.5], dtype=torch.float64)
    mpe = MaxPrefixTokenizer(["A", "B", "AA", "AB", "BBA"], eos="<eos>")
    token_law = TokenKernel(PushforwardLM(chain_texts(chain, init, "AB", 10), mpe, mpe.eos),
                            len(mpe.tokens), eos=mpe.eos)
    corrected, naive = transition_estimates(CharacterKernel(token_law, mpe),
                                            sample_chain(chain, init, "AB", 10, 5, g))
    err_c, err_n = float((corrected - chain).abs().max()), float((naive - chain).abs().max())
    print(f"  tokenization bias (Markov chain, maximum-prefix tokens): corrected error "
          f"{err_c:.1e}, naive {err_n:.2f}", flush=True)

    t1 = time.perf_counter()
    chars, losses = train_char_lm(stdlib_text(), steps=150, seed=0)
    t_train = time.perf_counter() - t1
    char_pattern = r"[a-z]* (the|a) [a-z]*"
    char_index = TokenIndex.from_regex(char_pattern, list(chars.vocab.labels))
    res = smc(chars, char_index, [chars.vocab.index("s")], 10, 128, g)
    char_text = "".join(str(chars.vocab.label(int(i))) for i in res.particles[0, 1:])
    print(f"  char GRU on stdlib docstrings: loss {losses[0]:.2f} -> {losses[-1]:.2f} nats/char "
          f"in {t_train:.1f} s; SMC sample of '{char_pattern}': 's{char_text}'", flush=True)

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.4))
    pos = range(1, 11)
    ax[0].plot(pos, scores.surprisal[0].numpy(), "o-", label="surprisal")
    ax[0].plot(pos, scores.entropy[0].numpy(), "s--", label="entropy")
    ax[0].set_xticks(list(pos), [str(lm.vocab.label(int(w))) for w in text[0, 1:]],
                     rotation=45, fontsize=7)
    ax[0].set_ylabel("nats")
    ax[0].set_title("Nucleus text from 'the'")
    ax[0].legend()
    xs = torch.arange(len(top)).float()
    ax[1].bar(xs - 0.2, cond_next[top].numpy(), 0.4, label="exact conditional")
    ax[1].bar(xs + 0.2, local_next[top].numpy(), 0.4, label="local masking")
    ax[1].set_xticks(xs.tolist(), [str(small.vocab.label(int(i))) for i in top], rotation=45,
                     fontsize=7)
    ax[1].set_title(f"next word after 'the' given '{pattern}'")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(out / "lm.png", dpi=120)
    plt.close(fig)
    return (
        f"Symspell bigram kernel ({lm.vocab_size:,} words). Nucleus text: "
        f"'{_words(lm, text[0])}' (curvature {curv_model:.2f}; shuffled {curv_shuffled:.2f}).\n"
        f"Counterfactual, word 2 := 'cat': '{_words(lm, factual[0])}' -> '{_words(lm, cf[0])}'"
        f" (no intervention reproduces the text: {bool(torch.equal(same, factual))}).\n"
        f"E[length of the word after 'the'] = {truth:.3f}: SBS {sum(sbs) / 40:.3f}, CPSBS "
        f"{sum(cps) / 40:.3f} (means of 40 beams of 8).\n"
        f"Speculative sampling: 12 words in {rounds} target rounds.\n"
        f"Top-p sampling, 64 x 32,000: sort-free {t_free * 1e3:.1f} ms vs sort-based filter "
        f"{t_sort * 1e3:.1f} ms. Date index over {len(vocab):,} tokens: {t_index:.2f} s.\n"
        f"Exact P('{pattern}' | 'the') = {p_event:.3e} (SMC {est:.3e}); a conditional sample: "
        f"'{_words(small, sample[0])}'. Twisted SMC with the backward filter as twist: "
        f"{float(twisted.log_evidence.exp()):.3e} with ESS/N {twisted_ess:.2f} at every step.\n"
        f"Token-free laws: a Markov chain's transitions from its maximum-prefix token law, "
        f"error {err_c:.1e} corrected vs {err_n:.2f} naive.\n"
        f"Character GRU trained on standard-library docstrings ({losses[0]:.2f} -> "
        f"{losses[-1]:.2f} nats/char); SMC estimate of P(next 10 characters match "
        f"'{char_pattern}' | 's') = {float(res.log_evidence.exp()):.3e}, a sample: 's{char_text}'."
    )


def _last_word_length(kernel, seqs: torch.Tensor) -> torch.Tensor:
    """Length of the last word of each sequence."""
    return torch.tensor([float(len(str(kernel.vocab.label(int(w))))) for w in seqs[:, -1]],
                        dtype=torch.float64)
