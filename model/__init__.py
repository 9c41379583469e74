"""alt-text's image captioner: ``Captioner.load()`` gives the bundled model, ``.caption(images)`` describes them."""
from .captioner import Caption, CaptionModel, Captioner, ModelConfig, default_checkpoint_path
from .checkpoint import CheckpointError

__all__ = ["Caption", "CaptionModel", "Captioner", "CheckpointError", "ModelConfig", "default_checkpoint_path"]
