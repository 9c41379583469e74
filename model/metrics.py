"""Caption metrics through pycocoevalcap, the reference implementation every captioning paper reports with.

BLEU-1..4, METEOR, ROUGE-L and CIDEr-D on the standard PTB tokenisation. The PTB tokenizer and METEOR run on Java;
without Java we say so, tokenise in Python and report everything but METEOR instead of failing. Next to them,
CHAIR_i and CHAIR_s (model/chair.py): how often captions name COCO objects that no reference names.
"""
from __future__ import annotations

import logging
import shutil
from contextlib import redirect_stdout
from io import StringIO

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from .chair import chair
from .vocab import tokenize

log = logging.getLogger(__name__)


def java_available() -> bool:
    return shutil.which("java") is not None


def _simple_tokenize(captions: dict) -> dict:
    return {k: [" ".join(tokenize(c)) for c in v] for k, v in captions.items()}


def _check(refs: dict, hyps: dict) -> tuple[dict, dict]:
    missing = set(refs) ^ set(hyps)
    if missing:
        raise ValueError(f"references and hypotheses cover different images ({len(missing)} differ)")
    if not refs:
        raise ValueError("nothing to score")
    return {k: list(v) for k, v in refs.items()}, {k: [hyps[k]] for k in refs}


def cider(refs: dict, hyps: dict) -> float:
    """CIDEr-D with plain Python tokenisation: cheap enough to run on the dev split every epoch."""
    gts, res = _check(refs, hyps)
    score, _ = Cider().compute_score(_simple_tokenize(gts), _simple_tokenize(res))
    return float(score)


def score(refs: dict, hyps: dict, use_java: bool | None = None) -> dict:
    """All metrics (x100, as papers print them) for ``hyps[id] = caption`` against ``refs[id] = [captions]``."""
    with redirect_stdout(StringIO()):  # pycocoevalcap prints progress chatter on stdout
        return _score(refs, hyps, use_java)


def _score(refs: dict, hyps: dict, use_java: bool | None) -> dict:
    gts, res = _check(refs, hyps)
    use_java = java_available() if use_java is None else use_java
    out: dict[str, float | str | None] = {}
    hallucination = chair(gts, {k: v[0] for k, v in res.items()})  # on the captions as written, before tokenising
    if use_java:
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        tok = PTBTokenizer()
        wrap = lambda d: {k: [{"caption": c} for c in v] for k, v in d.items()}  # noqa: E731
        gts, res = tok.tokenize(wrap(gts)), tok.tokenize(wrap(res))
        out["tokenizer"] = "ptb"
    else:
        log.warning("Java not found: METEOR is skipped and captions are tokenised in Python, not by the PTB "
                    "tokenizer (install a Java runtime for the standard numbers)")
        gts, res = _simple_tokenize(gts), _simple_tokenize(res)
        out["tokenizer"] = "python (Java not found)"
    bleu, _ = Bleu(4).compute_score(gts, res)
    for n, b in enumerate(bleu, 1):
        out[f"BLEU-{n}"] = round(100 * b, 2)
    if use_java:
        from pycocoevalcap.meteor.meteor import Meteor

        meteor = Meteor()  # a Java subprocess, stopped when the object is collected
        out["METEOR"] = round(100 * meteor.compute_score(gts, res)[0], 2)
        del meteor
    else:
        out["METEOR"] = None
    out["ROUGE-L"] = round(100 * Rouge().compute_score(gts, res)[0], 2)
    out["CIDEr"] = round(100 * Cider().compute_score(gts, res)[0], 2)
    out.update(hallucination)
    return out
