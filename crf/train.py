"""A CRF with an encoder as one trainable module, and its objectives for `condprob.train.fit`.

A batch is a tuple `(*inputs, tags, mask)`: the encoder's inputs, gold labels (B, T) and a bool
mask (B, T). The objectives sum -log p(tags | x) over the batch's sentences and count tokens or
sentences, so one process and many (`torchrun`) minimise the same loss.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from condprob.train import Loss
from crf.linear_chain import LinearChainCRF

__all__ = ["Tagger", "sentence_nll", "token_nll"]


class Tagger(nn.Module):
    """An encoder (inputs -> emissions (B, T, num_labels)) under a CRF head (`LinearChainCRF`
    or `RegCCRF`): p(y | x) = crf(y | encoder(x))."""

    def __init__(self, encoder: nn.Module, crf: LinearChainCRF):
        super().__init__()
        self.encoder, self.crf = encoder, crf

    def forward(self, *inputs: Any) -> Tensor:
        """The emissions of the inputs."""
        return self.encoder(*inputs)

    def decode(self, *inputs: Any, mask: Tensor | None = None) -> Tensor:
        """The best label sequence of each input (Viterbi under the CRF's language)."""
        return self.crf.decode(self(*inputs), mask)[1]


def _nll(tagger: Tagger, batch: tuple) -> tuple[Tensor, Tensor]:
    *inputs, tags, mask = batch
    return tagger.crf.nll(tagger(*inputs), tags, mask, reduction="sum"), mask.sum()


def token_nll(tagger: Tagger, batch: tuple) -> Loss:
    """sum over sentences of -log p(tags | x), per token."""
    return Loss(*_nll(tagger, batch))


def sentence_nll(tagger: Tagger, batch: tuple) -> Loss:
    """sum over sentences of -log p(tags | x), per sentence."""
    return Loss(_nll(tagger, batch)[0], len(batch[-1]))
