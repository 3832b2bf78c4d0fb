"""The one exception type whose message is meant for the person using the app."""


class ExplorerError(ValueError):
    """Bad input or an unusable model: the message says what happened and what to do."""


class ModelLoadError(ExplorerError):
    """A model could not be loaded; whatever was loaded before keeps serving."""
