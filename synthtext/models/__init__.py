"""The networks of Eskimez et al. (TMM 2021): a generator conditioned on speech, a reference face, an
emotion and noise; a frame discriminator; an emotion discriminator."""

from synthtext.models.config import PROFILES, ModelConfig, profile
from synthtext.models.discriminators import EmotionDiscriminator, FrameDiscriminator, gradient_penalty
from synthtext.models.generator import Generator

__all__ = ["PROFILES", "ModelConfig", "profile", "Generator", "FrameDiscriminator", "EmotionDiscriminator",
           "gradient_penalty"]
