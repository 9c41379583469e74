"""The describe pipeline in this process, configured by the ALT_TEXT_* settings the service reads too (the policy,
the wording and OCR of :class:`server.settings.Settings`), so that ``alt-text file``, ``alt-text url`` and the
audit's suggestions say what the service would say. Below both the CLI and the audit, which each turn
:class:`DescriberUnavailable` into their own one-line error."""
from __future__ import annotations


class DescriberUnavailable(Exception):
    """A bad setting, or a checkpoint (or its fitted heads) that cannot be loaded; the message says which."""


def load_describer(checkpoint: str | None, beam_size: int = 3, device: str | None = None):
    """A :class:`server.describe.Describer` on ``checkpoint`` (the bundled model when None)."""
    from model.checkpoint import CheckpointError

    from .describe import Describer, HeadsError
    from .settings import Settings

    try:
        cfg = Settings.from_env()
    except (TypeError, ValueError) as e:
        raise DescriberUnavailable(str(e)) from None
    try:
        return Describer.load(checkpoint, device=device, beam_size=beam_size, policy=cfg.policy(),
                              wording=cfg.wording(), use_ocr=cfg.ocr)
    except (CheckpointError, HeadsError) as e:
        raise DescriberUnavailable(str(e)) from None
