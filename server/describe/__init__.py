"""What to say about an image: evidence (kind, text, concepts, out-of-domain, calibrated confidence), a decision
and its wording, in one pipeline that the service, the CLI and the audit all call. See ``pipeline.py``."""
from .decision import Decision, Policy, decide
from .evidence import Evidence
from .heads import KINDS, Heads, HeadsError, heads_for, heads_path
from .pipeline import PIPELINE_VERSION, Describer, ModelOutput
from .wording import Wording, phrase, reason_message

__all__ = ["KINDS", "PIPELINE_VERSION", "Decision", "Describer", "Evidence", "Heads", "HeadsError", "ModelOutput",
           "Policy", "Wording", "decide", "heads_for", "heads_path", "phrase", "reason_message"]
