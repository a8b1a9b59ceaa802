"""Configuration: process ``Settings`` from the environment, model groups from a YAML file."""

from parley.config.loader import Deployment, LoadedModels, ModelGroup, load_models
from parley.config.secrets import Secret
from parley.config.settings import Settings

__all__ = ["Deployment", "LoadedModels", "ModelGroup", "Secret", "Settings", "load_models"]
