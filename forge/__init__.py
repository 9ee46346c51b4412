"""forge: config-driven, preemption-proof fine-tuning of Hugging Face models.

Importing this package is cheap on purpose: heavy libraries (torch, transformers,
datasets) are imported by the stages that need them, so `forge --help` and
planning stay fast.
"""

__version__ = "0.1.0"
