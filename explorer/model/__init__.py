"""Loading a model and running it: the only code that touches torch internals."""
