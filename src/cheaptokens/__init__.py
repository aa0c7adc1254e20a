"""CheapTokens: sell discounted, same-day Venice.ai API credit as real Venice INFERENCE keys."""

__version__ = "0.1.0"
