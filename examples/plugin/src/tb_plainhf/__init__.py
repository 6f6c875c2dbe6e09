"""tunebridge-plainhf: an example backend plugin that trains on plain ``transformers.Trainer``."""

__version__ = "0.1.0"
