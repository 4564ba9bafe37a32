"""convscope: see what every hidden unit of a trained PyTorch ConvNet has learned."""

__version__ = "0.1.0"
