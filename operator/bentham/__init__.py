"""The Bentham study operator."""

__version__ = "0.1.0"  # the one version: pyproject reads it, `bentham-operator --version` prints it
