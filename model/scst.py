"""Self-critical sequence training (Rennie et al. 2017): fine-tune a cross-entropy checkpoint on CIDEr-D.

Each step samples ``samples`` captions per image from the decoder (the incremental step API, without gradients),
rewards each with CIDEr-D against the image's references (document frequencies from all training references,
``model/cider_reward.py``), and raises the log-probability of captions that beat a baseline: by default the mean
reward of the image's other samples (Luo 2020, "A better variant of self-critical sequence training"), or the
greedy caption's reward as in the paper. The log-probabilities come from one teacher-forced pass over the samples
with the same search rules as sampling (no <pad>/<bos>/<unk>, no <eos> before ``min_len`` or after a dangling word),
so the gradient is that of the policy that drew them. Options against the known side effects: ``xe_weight`` mixes in
cross-entropy on one reference per image, ``entropy_weight`` adds an entropy bonus, ``hallucination_penalty``
subtracts that much reward for every COCO object a sample names that none of its image's references names (CHAIR's
rule, ``model/chair.py``: the reward itself then counts invented objects, which plain CIDEr-D hardly punishes);
evaluation keeps the beam's n-gram blocking. With ``tune_encoder_blocks`` the EfficientNet encoder's last blocks and
head convolution (``model.encoders.TunedTail``) are fine-tuned too, from the cached trunk maps before them. Each
epoch logs on dev, next to CIDEr: mean length, dangling endings ("... with a"), repeated words ("a a") and bigrams,
the number of distinct words, and CHAIR.

A run directory holds ``scst_state.safetensors`` (weights, optimiser, step, epoch position, best so far, the running
epoch sums; written atomically every ``save_every`` steps and at each epoch end: safetensors, no pickle),
``best.safetensors`` (the best dev CIDEr so far, in the shipped checkpoint format) and ``log.jsonl`` (epoch 0 is the
initial checkpoint). Every random draw depends only on (seed, epoch, step), so ``resume=True`` after a kill ends
with the same weights as an uninterrupted run.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from itertools import pairwise
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import checkpoint, training_state
from .beam import DANGLING, SearchConfig, beam_search, ends_dangling
from .captioner import Captioner, CaptionModel, ModelConfig
from .chair import chair, mentions
from .cider_reward import CiderD
from .decoders import expand_static
from .encoders import get_spec
from .metrics import cider
from .train import TRAIN_STATE, TrainingError, _check_device, _device, _load, _pad, _Split
from .vocab import Vocabulary, tokenize

log = logging.getLogger(__name__)

STATE_FORMAT = "alt-text/scst-state"
BASELINES = ("mean", "greedy")
# Settings that may change when a run is resumed: they do not change what is computed.
_RESUMABLE = ("epochs", "max_steps", "device", "cache_dir", "save_every")


@dataclass
class SCSTConfig:
    data: list[str] = field(default_factory=list)  # the datasets the --init checkpoint was trained on
    init: str = ""  # the cross-entropy checkpoint to fine-tune (a resumed run knows its own)
    out: str = "runs/scst"
    encoder: str = ""  # "": the checkpoint's; otherwise it must be the checkpoint's (the features are its)
    epochs: int = 5
    batch_size: int = 32  # images per step
    samples: int = 5  # sampled captions per image
    baseline: str = "mean"  # "mean" of the image's other samples, or the "greedy" caption's reward
    lr: float = 2e-5  # constant: a fine-tuning step size
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    dropout: float = 0.0  # samples are drawn without dropout, so log-probabilities without it are on-policy
    xe_weight: float = 0.0  # + xe_weight x cross-entropy on one reference caption per image
    entropy_weight: float = 0.0  # - entropy_weight x mean entropy per sampled token
    hallucination_penalty: float = 0.0  # reward - this x the sample's objects that no reference of its image names
    tune_encoder_blocks: int = 0  # also fine-tune the encoder's last blocks and head convolution (EfficientNet-Lite)
    eval_beam: int = 3
    max_dev_images: int = 0  # 0: every dev image
    max_train_images: int = 0  # 0: every train image
    save_every: int = 50
    seed: int = 0
    cache_dir: str | None = None
    device: str = "auto"
    max_steps: int = 0  # stop after this global step (0: all epochs); for tests and smoke runs


@torch.no_grad()
def sample(decoder, feats: torch.Tensor, samples: int, search: SearchConfig, pad: int,
           greedy: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``samples`` captions per image drawn from the decoder (argmax when ``greedy``) under the search rules.

    Returns token ids [B * samples, T] (rows of one image together: <bos>, words, <eos>, then <pad>) and a
    [B * samples] bool that says the <eos> was forced by the length limit (it was not the decoder's choice). Rows
    leave the batch as they end, so short captions do not pay for long ones.
    """
    n = feats.shape[0] * samples
    static, dynamic = decoder.init_state(feats)
    static = expand_static(static, samples)
    dynamic = {k: v.repeat_interleave(samples, dim=0) for k, v in dynamic.items()}
    out = torch.full((n, search.max_len + 2), pad, dtype=torch.long, device=feats.device)
    out[:, 0] = search.bos
    forced = torch.zeros(n, dtype=torch.bool, device=feats.device)
    active = torch.arange(n, device=feats.device)
    last = out[:, 0]
    for step in range(search.max_len + 1):
        logits, dynamic = decoder.step(last, static, dynamic)
        logits = logits.float()
        logits[:, list(search.banned)] = float("-inf")
        if step < search.min_len:
            logits[:, search.eos] = float("-inf")
        logits[ends_dangling(last, search), search.eos] = float("-inf")
        if step == search.max_len:  # out of room: the caption ends here
            nxt = torch.full_like(active, search.eos)
            forced[active] = True
        elif greedy:
            nxt = logits.argmax(-1)
        else:
            nxt = torch.multinomial(logits.softmax(-1), 1).squeeze(1)
        out[active, step + 1] = nxt
        done = nxt == search.eos
        if done.all():
            break
        if done.any():
            keep = (~done).nonzero(as_tuple=True)[0]
            active, nxt = active[keep], nxt[keep]
            dynamic = {k: v.index_select(0, keep) for k, v in dynamic.items()}
            static = {k: v.index_select(0, keep) for k, v in static.items()}
        last = nxt
    longest = int((out != pad).sum(1).max())
    return out[:, :longest], forced


def search_mask(inputs: torch.Tensor, vocab_size: int, search: SearchConfig) -> torch.Tensor:
    """[N, T, V] True where the search rules forbid a token after the inputs [N, T] (<bos> and the words so far):
    what ``sample`` never draws (out of room, at step ``max_len``, it ends the caption whatever the last word)."""
    n, length = inputs.shape
    ban = torch.zeros(n, length, vocab_size, dtype=torch.bool, device=inputs.device)
    ban[:, :, list(search.banned)] = True
    ban[:, : search.min_len, search.eos] = True
    dangling = ends_dangling(inputs, search)
    dangling[:, search.max_len :] = False
    ban[..., search.eos] |= dangling
    return ban


def caption_stats(hyps: dict, refs: dict) -> dict:
    """The known side effects of CIDEr optimisation, measured: length, dangling endings, repetition, CHAIR."""
    words = {k: h.split() for k, h in hyps.items()}
    n = max(1, len(words))

    def share(test) -> float:
        return round(100 * sum(1 for w in words.values() if test(w)) / n, 2)

    def repeated_bigram(w: list[str]) -> bool:
        bigrams = list(pairwise(w))
        return len(set(bigrams)) < len(bigrams)

    hallucination = chair(refs, hyps)
    return {
        "mean_length": round(sum(map(len, words.values())) / n, 3),
        "dangling_end": share(lambda w: bool(w) and w[-1] in DANGLING),  # % of captions
        "repeated_word": share(lambda w: any(a == b for a, b in pairwise(w))),  # "a a"
        "repeated_bigram": share(repeated_bigram),  # "on a ... on a"
        "distinct_words": len({x for w in words.values() for x in w}),
        "CHAIR_i": hallucination["CHAIR_i"], "CHAIR_s": hallucination["CHAIR_s"],
    }


class SCSTTrainer:
    LENGTH_GROUPS = 4  # teacher-forced passes per step, over samples of similar length

    def __init__(self, cfg: SCSTConfig):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.device = _device(cfg.device)
        self.state_file = self.out / "scst_state.safetensors"

    # --- setting up -------------------------------------------------------------------------------------------------

    def validate(self) -> None:
        """Settings errors, found before minutes of loading rather than after."""
        cfg = self.cfg
        if cfg.baseline not in BASELINES:
            raise TrainingError(f"unknown baseline {cfg.baseline!r}; choose one of {', '.join(BASELINES)}")
        if cfg.baseline == "mean" and cfg.samples < 2:
            raise TrainingError("--baseline mean needs --samples of at least 2 (it averages the other samples)")
        if cfg.samples < 1 or cfg.epochs < 1 or cfg.batch_size < 1 or cfg.lr <= 0 or cfg.eval_beam < 1:
            raise TrainingError("--samples, --epochs, --batch-size, --eval-beam and --lr must be positive")
        negative = [n for n in ("xe_weight", "entropy_weight", "hallucination_penalty", "tune_encoder_blocks")
                    if getattr(cfg, n) < 0]
        if negative:
            raise TrainingError(" and ".join("--" + n.replace("_", "-") for n in negative) + " must be >= 0")
        if not 0 <= cfg.dropout < 1:
            raise TrainingError("--dropout must be in [0, 1)")
        _check_device(self.device)

    def _read_state(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        try:
            return training_state.read(self.state_file, STATE_FORMAT)
        except ValueError as e:
            raise TrainingError(str(e)) from None

    def _resolve_resume(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        if not self.state_file.is_file():
            raise TrainingError(f"--resume: no {self.state_file} to resume from (start it without --resume)")
        tensors, meta = self._read_state()
        stored = json.loads(meta["config"])
        for name in ("init", "encoder"):  # not repeated on the command line: the run's own
            if not getattr(self.cfg, name):
                setattr(self.cfg, name, stored[name])
        defaults = asdict(SCSTConfig())  # a setting added after the run was saved had its default then
        changed = {k: (stored.get(k, defaults[k]), v) for k, v in asdict(self.cfg).items()
                   if k not in _RESUMABLE and stored.get(k, defaults[k]) != v}
        if changed:
            raise TrainingError(f"--resume with different settings than the saved run: {changed}")
        return tensors, meta

    def _load_init(self) -> tuple[ModelConfig, Vocabulary, dict, dict[str, torch.Tensor]]:
        cfg = self.cfg
        if not cfg.init:
            raise TrainingError("--scst needs --init: the cross-entropy checkpoint to fine-tune")
        base = Captioner.load(cfg.init, device="cpu", pretrained_encoder=False)  # CheckpointError if unusable
        model_cfg, info = base.model.cfg, base.info
        if cfg.encoder and cfg.encoder != model_cfg.encoder:
            raise TrainingError(f"--encoder {cfg.encoder}: {cfg.init} was trained on {model_cfg.encoder} features")
        cfg.encoder = model_cfg.encoder
        return model_cfg, base.vocab, info, base.model.trainable_state()

    def _check_vocab(self, vocab: Vocabulary, info: dict, train_parts) -> None:
        """The checkpoint must be one trained on these datasets: its vocabulary is the one their training
        captions give (another vocabulary means other data, and its word ids would not mean these words)."""
        min_freq = (info.get("train_config") or {}).get("min_freq")
        if min_freq is None:
            log.warning("%s does not say how its vocabulary was built; not checked against --data", self.cfg.init)
            return
        built = Vocabulary.build((c for part in train_parts for it in part for c in it.captions), min_freq)
        if built.itos != vocab.itos:
            raise TrainingError(
                f"--init {self.cfg.init} has another vocabulary ({len(vocab)} words) than the training captions "
                f"of --data give ({len(built)} words at min_freq {min_freq}): fine-tune a checkpoint on the "
                f"datasets it was trained on ({', '.join(info.get('train_config', {}).get('data', [])) or '?'})")

    def setup(self, resume: bool) -> None:
        cfg = self.cfg
        self.validate()
        saved = None
        if resume:
            saved = self._resolve_resume()
        elif self.state_file.is_file():
            raise TrainingError(f"{self.out} already holds a run; pass --resume to continue it or pick another --out")
        elif (self.out / TRAIN_STATE).is_file() or (self.out / "best.safetensors").is_file():
            raise TrainingError(f"{self.out} holds another run (its best.safetensors would be overwritten); "
                                "pick another --out")
        if saved:
            tensors, meta = saved
            self.model_cfg = ModelConfig.from_json(meta["model_config"])
            self.vocab = Vocabulary.from_json(meta["vocab"])
            self.init_info = json.loads(meta["init_info"])
            init_state = None
        else:
            self.model_cfg, self.vocab, self.init_info, init_state = self._load_init()
        if get_spec(self.model_cfg.encoder).trainable:
            raise TrainingError(f"{self.model_cfg.encoder} is trained with its decoder: SCST here runs on the "
                                "cached features of a frozen encoder")
        tuned = cfg.tune_encoder_blocks
        if self.model_cfg.tuned_blocks not in (0, tuned):  # its grids come from its own tail: keep tuning it
            raise TrainingError(f"--init {cfg.init} has its encoder's last {self.model_cfg.tuned_blocks} blocks "
                                f"tuned: continue with --tune-encoder-blocks {self.model_cfg.tuned_blocks}")
        self.model_cfg = replace(self.model_cfg, tuned_blocks=tuned)

        torch.manual_seed(cfg.seed)
        dec_cfg = replace(self.model_cfg.decoder, dropout=cfg.dropout)
        try:  # a tail to tune starts as a copy of the pretrained one
            self.model = CaptionModel(replace(self.model_cfg, decoder=dec_cfg), pretrained_encoder=tuned > 0)
        except ValueError as e:
            raise TrainingError(f"--tune-encoder-blocks {tuned}: {e}") from None
        self.model.to(self.device)
        decoder = self.model.decoder
        self.tail = self.model.encoder.tail if tuned else None
        if saved:
            tensors = saved[0]
            self._load_module(decoder, tensors, "model.")
            if self.tail is not None:
                self._load_module(self.tail, tensors, "tail.")
        else:
            decoder.load_state_dict(training_state.module_state(init_state, "decoder."))
            init_tail = training_state.module_state(init_state, "encoder.tail.")
            if self.tail is not None and init_tail:
                self.tail.load_state_dict(init_tail)

        train_parts = _load(cfg, "train")
        if not saved:
            self._check_vocab(self.vocab, self.init_info, train_parts)
        self.out.mkdir(parents=True, exist_ok=True)
        upto = self.model.encoder.split if tuned else None
        self.train = _Split(train_parts, cfg, cfg.max_train_images, upto=upto)
        self.dev = _Split(_load(cfg, "dev"), cfg, cfg.max_dev_images, upto=upto)
        v = self.vocab
        max_len = self.model_cfg.decoder.max_len
        # Words are room for <bos> and <eos>; the rules are the dev beam search's.
        self.search = SearchConfig.for_vocab(v, 1, max_len=max_len - 2)
        # The reward's document frequencies: every training reference, tokenised as the dev metric tokenises.
        self.reward = CiderD({i: [tokenize(c) for c in it.captions] for i, it in enumerate(self.train.items)})
        self.ref_ids = [[v.encode(c, max_len) for c in it.captions] for it in self.train.items]
        # The COCO categories each training image's references name: CHAIR's truth, for the hallucination penalty.
        self.truth = [frozenset(c for ref in it.captions for _, c in mentions(ref)) for it in self.train.items]

        params = [p for p in decoder.parameters() if p.requires_grad]
        if self.tail is not None:
            params += list(self.tail.parameters())
        self.params = params
        self.opt = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
                                      {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                                     lr=cfg.lr)
        self.steps_per_epoch = math.ceil(len(self.train.items) / cfg.batch_size)
        self.step, self.evaluated, self.best, self.best_epoch = 0, 0, -1.0, -1
        self.sums = {"reward": 0.0, "greedy_reward": 0.0, "length": 0.0, "captions": 0, "images": 0, "seconds": 0.0}
        if saved:
            tensors, meta = saved
            training_state.load_optimizer(self.opt, tensors, meta)
            self.step, self.evaluated = int(meta["step"]), int(meta["evaluated"])
            self.best, self.best_epoch = float(meta["best"]), int(meta["best_epoch"])
            self.sums = json.loads(meta["sums"])

    @staticmethod
    def _load_module(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str) -> None:
        try:
            training_state.load_module(module, tensors, prefix)
        except ValueError as e:
            raise TrainingError(str(e)) from None

    def _save_state(self) -> None:
        """Everything a resumed run needs, in one safetensors file (model/training_state.py), written atomically."""
        tensors = {f"model.{k}": v for k, v in self.model.decoder.state_dict().items()}
        if self.tail is not None:
            tensors.update({f"tail.{k}": v for k, v in self.tail.state_dict().items()})
        meta = {"config": json.dumps(asdict(self.cfg)),
                "model_config": self.model_cfg.to_json(), "vocab": self.vocab.to_json(),
                "init_info": json.dumps(self.init_info),
                "step": str(self.step), "evaluated": str(self.evaluated), "best": repr(self.best),
                "best_epoch": str(self.best_epoch), "sums": json.dumps(self.sums)}
        training_state.write(self.state_file, tensors, self.opt, meta, STATE_FORMAT)

    # --- training ---------------------------------------------------------------------------------------------------

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.train.items), generator=g)

    def _words(self, tokens: torch.Tensor) -> list[list[str]]:
        return [self.vocab.decode(row[1:]).split() for row in tokens.tolist()]

    def rewards(self, keys: list[int], words: list[list[str]]) -> torch.Tensor:
        """CIDEr-D of each caption against its training image's references, less the hallucination penalty."""
        scores = self.reward.scores(keys, words)
        if self.cfg.hallucination_penalty:
            p = self.cfg.hallucination_penalty
            scores = [r - p * sum(c not in self.truth[k] for _, c in mentions(" ".join(w)))
                      for r, k, w in zip(scores, keys, words)]
        return torch.tensor(scores, device=self.device)

    def train_step(self, idx: torch.Tensor) -> dict:
        """One policy-gradient step on the images ``idx``; returns the step's numbers."""
        cfg, v, decoder = self.cfg, self.vocab, self.model.decoder
        torch.manual_seed(cfg.seed * 7_919 + self.step)  # samples (and dropout) depend on the step alone
        feats = self.train.inputs(idx, self.model, self.device)  # through the tuned tail, with gradients, if any
        # The decoder's passes read a detached copy (a leaf): their gradients add up in it over several backward
        # passes, and reach the tuned tail in one backward at the end.
        grid = feats.detach().requires_grad_(self.tail is not None)
        b, s = len(idx), cfg.samples
        decoder.eval()
        tokens, forced = sample(decoder, grid, s, self.search, v.pad_id)
        keys = idx.repeat_interleave(s).tolist()
        words = self._words(tokens)
        reward = self.rewards(keys, words).view(b, s)
        greedy_reward = None
        if cfg.baseline == "greedy":
            best, _ = sample(decoder, grid, 1, self.search, v.pad_id, greedy=True)
            greedy_reward = self.rewards(idx.tolist(), self._words(best))
            baseline = greedy_reward[:, None]
        else:
            baseline = (reward.sum(1, keepdim=True) - reward) / (s - 1)
        advantage = (reward - baseline).view(-1)

        decoder.train()
        self.opt.zero_grad(set_to_none=True)
        valid = tokens[:, 1:] != v.pad_id  # the tokens the policy chose
        ends = valid.sum(1) - 1  # position of each row's <eos>
        valid[forced, ends[forced]] = False  # a forced <eos> was no choice of the policy
        n_tok = valid.sum().clamp(min=1)
        row_len = (tokens != v.pad_id).sum(1)
        loss_sum = entropy_sum = 0.0
        # Rows of similar length together, each group cut to its longest: a caption of 8 words does not pay for
        # positions up to the longest sample's (most of the teacher-forced cost). Gradients add up.
        for rows in row_len.argsort(stable=True).chunk(self.LENGTH_GROUPS):
            width = int(row_len[rows].max())
            part_tokens, part_valid = tokens[rows, :width], valid[rows, : width - 1]
            logits = decoder(grid[rows // s], part_tokens[:, :-1]).float()  # row r samples image r // s
            logits = logits.masked_fill(search_mask(part_tokens[:, :-1], logits.shape[2], self.search),
                                        float("-inf"))
            logp = F.log_softmax(logits, dim=-1)
            chosen = logp.gather(-1, part_tokens[:, 1:, None]).squeeze(-1)
            tok_logp = torch.where(part_valid, chosen, 0.0)
            part = -(advantage[rows, None] * tok_logp).sum() / n_tok
            loss_sum += part.item()
            if cfg.entropy_weight > 0:  # banned tokens (-inf) add nothing, and no NaN to the gradient
                plogp = (logp.exp() * logp.masked_fill(~torch.isfinite(logp), 0.0)).sum(-1)
                entropy = -(plogp * part_valid).sum() / n_tok
                entropy_sum += entropy.item()
                part = part - cfg.entropy_weight * entropy
            part.backward()
        xe = 0.0
        if cfg.xe_weight > 0:
            choice = torch.randint(0, 1 << 30, (b,)).tolist()
            refs = [self.ref_ids[i][c % len(self.ref_ids[i])] for i, c in zip(idx.tolist(), choice)]
            ref = _pad(refs, v.pad_id).to(self.device)
            ref_logits = decoder(grid, ref[:, :-1]).float()
            xe_loss = F.cross_entropy(ref_logits.reshape(-1, ref_logits.shape[-1]), ref[:, 1:].reshape(-1),
                                      ignore_index=v.pad_id)
            (cfg.xe_weight * xe_loss).backward()
            xe = xe_loss.item()
        if self.tail is not None and grid.grad is not None:
            feats.backward(grid.grad)
        torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        self.opt.step()
        self.step += 1
        lengths = [len(w) for w in words]  # words, as the dev numbers count them
        out = {"reward": float(reward.mean()), "length": sum(lengths) / len(lengths), "policy_loss": loss_sum,
               "entropy": entropy_sum, "xe": xe, "captions": len(words), "images": b}
        if greedy_reward is not None:
            out["greedy_reward"] = float(greedy_reward.mean())
        return out

    @torch.no_grad()
    def evaluate_dev(self) -> dict:
        """Dev CIDEr-D (the project's metric, as cross-entropy training selects by) and the side-effect numbers."""
        self.model.eval()
        dev, v = self.dev, self.vocab
        search = SearchConfig.for_vocab(v, self.cfg.eval_beam, max_len=self.search.max_len)
        hyps = {}
        for s in range(0, len(dev.items), 100):
            idx = torch.arange(s, min(s + 100, len(dev.items)))
            feats = dev.inputs(idx, self.model, self.device)
            for i, h in zip(idx.tolist(), beam_search(self.model.decoder, feats, search)):
                hyps[i] = v.decode(h.tokens)
        refs = {i: list(it.captions) for i, it in enumerate(dev.items)}
        return {"dev_cider": cider(refs, hyps), **{f"dev_{k}": x for k, x in caption_stats(hyps, refs).items()},
                "samples": [hyps[i] for i in range(min(3, len(hyps)))]}

    def save_best(self, path: Path, metrics: dict) -> None:
        info = {"name": self.out.name, "train_config": self.init_info.get("train_config"),
                "init": {"path": self.cfg.init, "name": self.init_info.get("name"),
                         "dev_cider": self.init_info.get("dev_cider")},
                "scst_config": asdict(self.cfg), "step": self.step, **metrics}
        checkpoint.save(path, self.model.trainable_state(),
                        {"config": self.model_cfg.to_json(), "vocab": self.vocab.to_json(), "info": info})

    def _log(self, entry: dict, mode: str = "a") -> None:
        with open(self.out / "log.jsonl", mode) as f:
            f.write(json.dumps(entry) + "\n")

    def run(self, resume: bool = False) -> dict:
        self.setup(resume)
        cfg = self.cfg
        log.info("SCST from %s: %d train images, %d x %d samples per step, %d steps per epoch, baseline %s",
                 cfg.init, len(self.train.items), cfg.batch_size, cfg.samples, self.steps_per_epoch, cfg.baseline)
        if not resume:  # where the side effects start from
            t0 = time.time()
            first = {"epoch": 0, "step": 0, **self.evaluate_dev(), "eval_seconds": round(time.time() - t0, 1)}
            self._log(first, "w")
            log.info("initial checkpoint: dev CIDEr %.3f, e.g. %r", first["dev_cider"], first["samples"][0])
            self._save_state()
        last: dict = {}
        for epoch in range(self.evaluated, cfg.epochs):  # an epoch ends with its dev evaluation
            order = self._epoch_order(epoch)
            first_batch = self.step - epoch * self.steps_per_epoch  # batches of this epoch already done (resume)
            bar = tqdm(range(first_batch, self.steps_per_epoch), desc=f"scst epoch {epoch + 1}/{cfg.epochs}",
                       initial=first_batch, total=self.steps_per_epoch, unit="step", mininterval=2)
            for b in bar:
                t0 = time.time()
                numbers = self.train_step(order[b * cfg.batch_size : (b + 1) * cfg.batch_size])
                sums = self.sums
                sums["reward"] += numbers["reward"] * numbers["captions"]
                sums["length"] += numbers["length"] * numbers["captions"]
                sums["greedy_reward"] += numbers.get("greedy_reward", 0.0) * numbers["images"]
                sums["captions"] += numbers["captions"]
                sums["images"] += numbers["images"]
                sums["seconds"] += time.time() - t0
                bar.set_postfix(reward=f"{numbers['reward']:.3f}", length=f"{numbers['length']:.1f}", refresh=False)
                if self.step % cfg.save_every == 0:
                    self._save_state()
                if cfg.max_steps and self.step >= cfg.max_steps:
                    self._save_state()
                    bar.close()
                    return {"step": self.step, "stopped": "max_steps"}
            bar.close()
            t0 = time.time()
            metrics = self.evaluate_dev()
            sums = self.sums
            last = {"epoch": epoch + 1, "step": self.step,
                    "train_reward": sums["reward"] / max(1, sums["captions"]),
                    "train_sample_length": sums["length"] / max(1, sums["captions"]),
                    "train_seconds": round(sums["seconds"], 1), "eval_seconds": round(time.time() - t0, 1),
                    **metrics}
            if cfg.baseline == "greedy":
                last["train_greedy_reward"] = sums["greedy_reward"] / max(1, sums["images"])
            if metrics["dev_cider"] > self.best:
                self.best, self.best_epoch = metrics["dev_cider"], epoch + 1
                self.save_best(self.out / "best.safetensors", {"dev_cider": self.best, "epoch": epoch + 1})
            last["best_dev_cider"], last["best_epoch"] = self.best, self.best_epoch
            self.evaluated = epoch + 1
            self.sums = {k: 0 if k in ("captions", "images") else 0.0 for k in self.sums}
            self._log(last)
            log.info("epoch %d: train reward %.3f, dev CIDEr %.3f (best %.3f at epoch %d), length %.2f, "
                     "dangling %.1f %%, CHAIR_i %.1f, e.g. %r", epoch + 1, last["train_reward"],
                     metrics["dev_cider"], self.best, self.best_epoch, metrics["dev_mean_length"],
                     metrics["dev_dangling_end"], metrics["dev_CHAIR_i"], metrics["samples"][0])
            self._save_state()
        return last


def train(cfg: SCSTConfig, resume: bool = False) -> dict:
    return SCSTTrainer(cfg).run(resume)
