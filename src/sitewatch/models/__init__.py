"""Model weights shipped with sitewatch (read with :mod:`importlib.resources`); see ``training/``."""
