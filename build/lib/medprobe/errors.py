"""Domain errors: each message names the file or id, the value found, and what to do next."""


class MedprobeError(Exception):
    """Base class of medprobe's domain errors."""


class RegistryError(MedprobeError, ValueError):
    """A registry or configuration file is invalid, or names an unknown id."""


class DatasetError(MedprobeError, ValueError):
    """A dataset is missing, or differs from what its registry entry expects."""


class EncoderError(MedprobeError, RuntimeError):
    """A model cannot be built or run as its registry entry asks."""


class StoreError(MedprobeError, ValueError):
    """An embedding or layout file is missing, malformed, or from another manifest."""


class ToolError(MedprobeError, RuntimeError):
    """An external program that a step needs (the Tesseract OCR engine) is missing."""
