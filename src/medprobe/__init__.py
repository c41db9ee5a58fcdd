"""medprobe: how discriminative are the features of frozen image encoders on medical images?"""

__version__ = "0.3.0"
