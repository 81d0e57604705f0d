"""nerfocal: named-entity recognition with Hugging Face encoders and focal loss."""

__version__ = "0.1.0"
