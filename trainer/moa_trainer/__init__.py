"""moa_trainer: the PyTorch side of MoA Studio (see trainer/PROTOCOL.md)."""

__version__ = "0.2.0"
PROTOCOL_VERSION = 1
