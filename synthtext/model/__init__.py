"""The networks of Eskimez et al. (TMM 2021): a generator conditioned on speech, a reference face, an
emotion and noise; a frame discriminator; an emotion discriminator.

``train`` holds their training: data windows, losses, the shared set-up (``setup``), the three stages
(``loop``), the pictures a run logs, a sample video, and each stage's run around the training (``stage``:
its inputs and lineage, MLflow run, torchrun, outputs and registered model).
"""

from synthtext.model.config import PROFILES, ModelConfig, profile
from synthtext.model.discriminators import EmotionDiscriminator, FrameDiscriminator, gradient_penalty
from synthtext.model.generator import Generator

__all__ = ["PROFILES", "ModelConfig", "profile", "Generator", "FrameDiscriminator", "EmotionDiscriminator",
           "gradient_penalty"]
