"""Caption decoders: a Transformer with cross-attention and an attention LSTM (Show, Attend and Tell).

Both share one interface so training and beam search do not care which is used:

- ``forward(memory, tokens) -> logits``: teacher-forced training over whole captions.
- ``init_state(memory) -> (static, dynamic)``: work done once per image (projected grid, cross-attention keys and
  values) goes in ``static``; what changes per step (self-attention caches, LSTM state) in ``dynamic``.
- ``step(tokens, static, dynamic) -> (logits, dynamic)``: one token per hypothesis. A step costs one token, not the
  whole prefix, which is what makes beam search cheap on a CPU.

Beam search reorders only ``dynamic``: all beams of one image share ``static``, laid out as [B, ...] while
``dynamic`` is [B * beams, ...].
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

State = dict[str, torch.Tensor]


@dataclass
class DecoderConfig:
    kind: str = "transformer"  # or "lstm"
    vocab_size: int = 10000
    feature_dim: int = 1280
    grid_size: int = 49  # positions in the encoder grid
    d_model: int = 512  # Transformer width / LSTM embedding size
    n_layers: int = 3
    n_heads: int = 8
    hidden: int = 512  # LSTM hidden size
    dropout: float = 0.3
    max_len: int = 32  # tokens including <bos> and <eos>

    def to_dict(self) -> dict:
        return asdict(self)


def build_decoder(cfg: DecoderConfig) -> nn.Module:
    if cfg.kind == "transformer":
        return TransformerDecoder(cfg)
    if cfg.kind == "lstm":
        return LSTMDecoder(cfg)
    raise ValueError(f"unknown decoder {cfg.kind!r}; choose 'transformer' or 'lstm'")


def expand_static(static: State, beams: int) -> State:
    return static if beams == 1 else {k: v.repeat_interleave(beams, dim=0) for k, v in static.items()}


# --- Transformer ----------------------------------------------------------------------------------------------------

class _Attention(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)

    def split(self, x):  # [B, T, D] -> [B, H, T, D/H]
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

    def keys_values(self, x):
        k, v = self.kv(x).chunk(2, dim=-1)
        return self.split(k), self.split(v)

    def attend(self, x, k, v, causal: bool):
        q = self.split(self.q(x))
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=causal)
        b, h, t, hd = y.shape
        return self.out(y.transpose(1, 2).reshape(b, t, h * hd))


class _Block(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        d = cfg.d_model
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_attn = _Attention(d, cfg.n_heads, cfg.dropout)
        self.cross_attn = _Attention(d, cfg.n_heads, cfg.dropout)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(cfg.dropout))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, mem):
        h = self.ln1(x)
        x = x + self.drop(self.self_attn.attend(h, *self.self_attn.keys_values(h), causal=True))
        x = x + self.drop(self.cross_attn.attend(self.ln2(x), *self.cross_attn.keys_values(mem), causal=False))
        return x + self.mlp(self.ln3(x))

    def step(self, x, ck, cv, sk, sv):
        """x: [B, 1, D]; ck/cv: cross keys/values; sk/sv: self-attention cache (None at the first step)."""
        h = self.ln1(x)
        k, v = self.self_attn.keys_values(h)
        if sk is not None:
            k, v = torch.cat([sk, k], dim=2), torch.cat([sv, v], dim=2)
        x = x + self.self_attn.attend(h, k, v, causal=False)  # one query sees the whole (past) cache
        x = x + self.cross_attn.attend(self.ln2(x), ck, cv, causal=False)
        return x + self.mlp(self.ln3(x)), k, v


class TransformerDecoder(nn.Module):
    """Pre-LayerNorm decoder: causal self-attention, cross-attention over the image grid, tied embeddings."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.feat_proj = nn.Sequential(nn.Linear(cfg.feature_dim, d), nn.LayerNorm(d))
        self.feat_pos = nn.Parameter(torch.zeros(1, cfg.grid_size, d))
        self.tok_emb = nn.Embedding(cfg.vocab_size, d)
        self.pos_emb = nn.Embedding(cfg.max_len, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.vocab_size, bias=False)
        self.apply(self._init)
        # Small position embeddings: at N(0, 1) they swamp the token embeddings (seen in our baseline).
        nn.init.normal_(self.feat_pos, std=0.02)
        self.head.weight = self.tok_emb.weight  # tied input/output embeddings

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def memory(self, feats):
        return self.drop(self.feat_proj(feats) + self.feat_pos[:, : feats.shape[1]])

    def forward(self, feats, tokens):
        mem = self.memory(feats)
        pos = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.drop(self.tok_emb(tokens) + self.pos_emb(pos))
        for block in self.blocks:
            x = block(x, mem)
        return self.head(self.ln_f(x))

    def init_state(self, feats) -> tuple[State, State]:
        mem = self.memory(feats)
        static = {}
        for i, block in enumerate(self.blocks):
            static[f"ck{i}"], static[f"cv{i}"] = block.cross_attn.keys_values(mem)
        return static, {}

    def step(self, tokens, static: State, dynamic: State) -> tuple[torch.Tensor, State]:
        t = dynamic["sk0"].shape[2] if dynamic else 0  # tokens already in the cache
        x = self.tok_emb(tokens)[:, None] + self.pos_emb.weight[t]
        new = {}
        for i, block in enumerate(self.blocks):
            x, new[f"sk{i}"], new[f"sv{i}"] = block.step(
                x, static[f"ck{i}"], static[f"cv{i}"], dynamic.get(f"sk{i}"), dynamic.get(f"sv{i}"))
        return self.head(self.ln_f(x[:, 0])), new


# --- LSTM with soft attention (Show, Attend and Tell) ---------------------------------------------------------------

class LSTMDecoder(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        e, h, a = cfg.d_model, cfg.hidden, cfg.hidden
        self.feat_norm = nn.LayerNorm(cfg.feature_dim)
        self.emb = nn.Embedding(cfg.vocab_size, e)
        self.att_feat = nn.Linear(cfg.feature_dim, a)
        self.att_hid = nn.Linear(h, a)
        self.att_out = nn.Linear(a, 1)
        self.gate = nn.Linear(h, cfg.feature_dim)  # the "beta" gate of the paper
        self.init_h = nn.Linear(cfg.feature_dim, h)
        self.init_c = nn.Linear(cfg.feature_dim, h)
        self.cell = nn.LSTMCell(e + cfg.feature_dim, h)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(h, cfg.vocab_size)

    def init_state(self, feats) -> tuple[State, State]:
        feats = self.feat_norm(feats)
        mean = feats.mean(1)
        static = {"feats": feats, "att_feats": self.att_feat(feats)}
        return static, {"h": torch.tanh(self.init_h(mean)), "c": torch.tanh(self.init_c(mean))}

    def step(self, tokens, static: State, dynamic: State) -> tuple[torch.Tensor, State]:
        h, c = dynamic["h"], dynamic["c"]
        scores = self.att_out(torch.tanh(static["att_feats"] + self.att_hid(h)[:, None])).squeeze(-1)
        alpha = scores.softmax(-1)
        context = torch.sigmoid(self.gate(h)) * (alpha[:, :, None] * static["feats"]).sum(1)
        h, c = self.cell(torch.cat([self.emb(tokens), context], dim=-1), (h, c))
        return self.out(self.drop(h)), {"h": h, "c": c}

    def forward(self, feats, tokens):
        static, dynamic = self.init_state(feats)
        logits = []
        for t in range(tokens.shape[1]):
            step_logits, dynamic = self.step(tokens[:, t], static, dynamic)
            logits.append(step_logits)
        return torch.stack(logits, dim=1)
