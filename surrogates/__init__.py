"""Pluggable surrogate models, all behind one contract (surrogates/base.py), registered by name."""

from surrogates.base import Surrogate, SurrogateOptionError
from surrogates.registry import (
    SURROGATES,
    UnknownSurrogateError,
    get_surrogate_class,
    make_surrogate,
    register_surrogate,
    surrogate_names,
)

__all__ = [
    "SURROGATES",
    "Surrogate",
    "SurrogateOptionError",
    "UnknownSurrogateError",
    "get_surrogate_class",
    "make_surrogate",
    "register_surrogate",
    "surrogate_names",
]
