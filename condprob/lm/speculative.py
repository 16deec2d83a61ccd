"""Speculative sampling: draws from a target law using proposals from a cheap draft law, with an
output law exactly the target's.

- Single draft (Leviathan et al. 2023; Chen et al. 2023): accept x ~ q with probability
  min(1, p(x) / q(x)); on rejection draw from norm(max(0, p - q)).
- Multi-draft recursive rejection (SpecInfer; Jeon et al. 2024): for drafts x_1..x_k, accept x_i
  with probability min(1, p_i(x_i) / q_i(x_i)), else p_{i+1} = norm(max(0, p_i - q_i)); drafts
  drawn without replacement use q_{i+1} = q_i with x_i removed, renormalised. If all are rejected,
  draw from p_{k+1}.
- `speculative_generate`: the draft model proposes `num_drafts` continuations of `n_draft` tokens,
  the target scores them all in one batched call; the accepted prefix plus one corrected (or
  bonus) token is appended per round. (The token-level optimum over draft selection schemes is
  in `condprob.lm.multidraft`.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from condprob.accel import gpu_available
from condprob.errors import ValidationError, check_positive_int
from condprob.lm.kernel import TokenKernel, as_prefix
from condprob.tolerance import check_probabilities


def _check_probs(probs: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(probs, torch.Tensor) or not probs.is_floating_point():
        raise ValidationError(f"{name} must be a floating torch.Tensor")
    check_probabilities(probs, name)
    return probs


def _residual(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """norm(max(0, p - q)); where p <= q everywhere (p == q) the residual is never used: p."""
    r = torch.clamp(p - q, min=0)
    total = r.sum(-1, keepdim=True)
    return torch.where(total > 0, r / torch.where(total > 0, total, 1), p)


def _draw(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def recursive_rejection(target: torch.Tensor, draft: torch.Tensor, drafts: torch.Tensor,
                        without_replacement: bool = False,
                        generator: torch.Generator | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row from `target` (B, V) given drafts (B, k) proposed by `draft` (B, V):
    i.i.d. draws, or draws without replacement when `without_replacement`.

    Returns (token, index of the accepted draft or k when all were rejected).
    """
    p = _check_probs(target, "target").double()
    q = _check_probs(draft, "draft").double()
    if p.shape != q.shape or drafts.ndim != 2 or drafts.shape[0] != p.shape[0]:
        raise ValidationError("target and draft must be (B, V) and drafts (B, k)")
    drafts = drafts.long()
    b, k = drafts.shape
    token = torch.full((b,), -1, dtype=torch.long, device=p.device)
    which = torch.full((b,), k, dtype=torch.long, device=p.device)
    for i in range(k):
        x = drafts[:, i : i + 1]
        qx = q.gather(-1, x).squeeze(-1)
        if (qx <= 0).any():
            raise ValidationError(f"draft {i} has probability zero under the draft law")
        px = p.gather(-1, x).squeeze(-1)
        u = torch.rand(b, generator=generator, dtype=torch.float64, device=p.device)
        accept = (token < 0) & (u * qx < px)
        token = torch.where(accept, x.squeeze(-1), token)
        which = torch.where(accept, i, which)
        p = _residual(p, q)
        if without_replacement:
            q = q.scatter(-1, x, 0.0)
            total = q.sum(-1, keepdim=True)
            q = torch.where(total > 0, q / torch.where(total > 0, total, 1), q)
    rest = token < 0
    if rest.any():
        token[rest] = _draw(p[rest], generator)
    return token, which


def speculative_step(target: torch.Tensor, draft: torch.Tensor, drafts: torch.Tensor,
                     generator: torch.Generator | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Verify a chain of drafts: target (B, n+1, V) laws after each draft prefix, draft (B, n, V)
    laws that proposed drafts (B, n). Returns (tokens (B, n+1) padded with -1, counts (B,)): the
    accepted drafts and one corrected token (or the bonus token when all n are accepted). CUDA
    tensors go to the fused Triton kernel when a GPU backend is present."""
    p = _check_probs(target, "target").double()
    q = _check_probs(draft, "draft").double()
    b, n = drafts.shape
    if p.shape[:2] != (b, n + 1) or q.shape[:2] != (b, n) or p.shape[-1] != q.shape[-1]:
        raise ValidationError("expected target (B, n+1, V), draft (B, n, V), drafts (B, n)")
    if p.is_cuda and gpu_available():
        from condprob.accel.sampling import speculative_verify

        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator,
                                 device=None if generator is None else generator.device))
        return speculative_verify(p, q, drafts, seed=seed)
    x = drafts.long().unsqueeze(-1)
    px, qx = p[:, :n].gather(-1, x).squeeze(-1), q.gather(-1, x).squeeze(-1)
    u = torch.rand(b, n, generator=generator, dtype=torch.float64, device=p.device)
    ok = u * qx < px
    accepted = torch.cumprod(ok.long(), -1).sum(-1)
    out = torch.full((b, n + 1), -1, dtype=torch.long, device=p.device)
    positions = torch.arange(n + 1, device=p.device)
    out[:, :n] = torch.where(positions[:n] < accepted.unsqueeze(-1), drafts.long(), -1)
    rows = torch.arange(b, device=p.device)
    p_next = p[rows, accepted]
    q_next = torch.cat([q, torch.zeros_like(q[:, :1])], 1)[rows, accepted]
    final = _draw(_residual(p_next, q_next), generator)
    out[rows, accepted] = final
    return out, accepted + 1


def speculative_generate(target: TokenKernel, draft: TokenKernel,
                         prefix: Sequence[int] | torch.Tensor, n_tokens: int, n_draft: int = 4,
                         generator: torch.Generator | None = None, num_drafts: int = 1
                         ) -> tuple[torch.Tensor, int]:
    """Extend one prefix by `n_tokens` tokens whose law is the target's sequence law.

    Each round drafts `num_drafts` independent continuations of `n_draft` tokens (the draft model
    runs on all of them as one batch), and the target scores every prefix of every distinct draft
    in one batched call (`TokenKernel.all_log_probs`: a single model call for models that give all
    positions' logits). Position by position, recursive rejection picks the next token among the
    drafts that agree with the tokens accepted so far (their next tokens are i.i.d. draws of the
    draft law given the accepted prefix), so the output law is exactly the target's; a rejection
    ends the round with a token of the residual law, and a fully accepted round adds a bonus token.
    Returns (sequence (1, T + n_tokens), number of target rounds)."""
    if target.vocab_size != draft.vocab_size:
        raise ValidationError("target and draft models must share the vocabulary")
    for name, value in (("n_tokens", n_tokens), ("n_draft", n_draft), ("num_drafts", num_drafts)):
        check_positive_int(value, name)
    seq = as_prefix(prefix, target.vocab_size)
    if seq.shape[0] != 1:
        raise ValidationError("speculative generation extends a single prefix")
    goal = seq.shape[1] + n_tokens
    rounds = 0
    while seq.shape[1] < goal:
        start, n = seq.shape[1], min(n_draft, goal - seq.shape[1])
        ext, qs = seq.expand(num_drafts, -1), []
        for _ in range(n):
            lq = draft.logits(ext).exp()
            qs.append(lq)
            ext = torch.cat([ext, _draw(lq, generator).unsqueeze(-1)], -1)
        rows, inverse = torch.unique(ext, dim=0, return_inverse=True)  # drafts that coincide
        ps = target.all_log_probs(rows, start).exp()[inverse]
        q = torch.stack(qs, 1)
        alive = torch.arange(num_drafts)
        accepted: list[int] = []
        for i in range(n):
            lead = int(alive[0])
            token, which = recursive_rejection(ps[lead, i : i + 1], q[lead, i : i + 1],
                                               ext[alive, start + i].unsqueeze(0),
                                               generator=generator)
            accepted.append(int(token[0]))
            if int(which[0]) == len(alive):
                break
            alive = alive[ext[alive, start + i] == token[0]]
        else:
            accepted.append(int(_draw(ps[int(alive[0]), n : n + 1], generator)[0]))
        seq = torch.cat([seq, torch.tensor([accepted])], -1)
        rounds += 1
    return seq[:, :goal], rounds
