"""Real hyperparameter-tuning tasks on datasets that ship with scikit-learn (no downloads).

The objective is the k-fold cross-validation error (1 - accuracy), minimized; the optimum is unknown.
An evaluation is deterministic given the parameters: the folds and the model seeds are fixed, and
BLAS/OpenMP run on one thread (which also keeps parallel workers from oversubscribing the CPUs).
scikit-learn is imported on the first evaluation, not when this module is imported.

Measured on a shared 2-core machine, one evaluation takes 0.2-2 s (``sklearn-svm``) and 0.3-2.6 s
(``sklearn-hgb``), up to about 3.5 s at the slowest corners while other work loads the machine, plus
about 2 s for the first import of scikit-learn in a process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from bocli.space import CategoricalParam, FloatParam, IntParam, Objective, Space
from problems.base import Problem
from problems.registry import register_problem

__all__ = ["HGBBreastCancerCV", "SVMDigitsCV"]

CV_FOLDS = 5
CV_SEED = 0


@cache
def _dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    if name == "digits":
        X, y = datasets.load_digits(return_X_y=True)
        return X / 16.0, y  # pixel intensities 0..16 -> [0, 1]
    if name == "breast_cancer":
        return datasets.load_breast_cancer(return_X_y=True)
    raise ValueError(f"unknown dataset '{name}'")


def _cv_error(model: Any, dataset: str) -> float:
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from threadpoolctl import threadpool_limits

    X, y = _dataset(dataset)
    folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=CV_SEED)
    with threadpool_limits(limits=1):
        accuracy = cross_val_score(model, X, y, cv=folds, n_jobs=None)
    return float(1.0 - np.mean(accuracy))


@dataclass(frozen=True)
class SVMDigitsCV:
    """5-fold CV error of an SVC on the 8x8 digits (1797 images, 10 classes)."""

    def __call__(self, params: Mapping[str, Any]) -> float:
        from sklearn.svm import SVC

        model = SVC(
            C=float(params["C"]),
            gamma=float(params["gamma"]),
            kernel=str(params["kernel"]),
            degree=int(params["degree"]),  # used by the poly kernel only
        )
        return _cv_error(model, "digits")


@dataclass(frozen=True)
class HGBBreastCancerCV:
    """5-fold CV error of a histogram gradient-boosting classifier on breast cancer (569 x 30)."""

    def __call__(self, params: Mapping[str, Any]) -> float:
        from sklearn.ensemble import HistGradientBoostingClassifier

        model = HistGradientBoostingClassifier(
            learning_rate=float(params["learning_rate"]),
            max_iter=int(params["max_iter"]),
            max_leaf_nodes=int(params["max_leaf_nodes"]),
            min_samples_leaf=int(params["min_samples_leaf"]),
            l2_regularization=float(params["l2_regularization"]),
            early_stopping=False,
            random_state=CV_SEED,
        )
        return _cv_error(model, "breast_cancer")


@register_problem("sklearn-svm")
def sklearn_svm(noise_std: float = 0.0) -> Problem:
    """Tune an SVC (C, gamma, kernel, degree) on digits by 5-fold CV error."""
    space = Space(
        (
            FloatParam("C", 1e-3, 1e3, log=True),
            FloatParam("gamma", 1e-5, 1.0, log=True),
            CategoricalParam("kernel", ("rbf", "poly", "sigmoid")),
            IntParam("degree", 2, 5),
        ),
        Objective("cv_error", "minimize"),
    )
    return Problem(
        name="sklearn-svm",
        space=space,
        fn=SVMDigitsCV(),
        optimum=None,
        noise_std=noise_std,
        description="SVC on scikit-learn's digits, 5-fold CV error (about 1 s per evaluation)",
        tags=("ml",),
    )


@register_problem("sklearn-hgb")
def sklearn_hgb(noise_std: float = 0.0) -> Problem:
    """Tune a HistGradientBoostingClassifier on breast cancer by 5-fold CV error."""
    space = Space(
        (
            FloatParam("learning_rate", 1e-3, 1.0, log=True),
            IntParam("max_iter", 10, 100, log=True),
            IntParam("max_leaf_nodes", 2, 32, log=True),
            IntParam("min_samples_leaf", 1, 64, log=True),
            FloatParam("l2_regularization", 1e-6, 10.0, log=True),
        ),
        Objective("cv_error", "minimize"),
    )
    return Problem(
        name="sklearn-hgb",
        space=space,
        fn=HGBBreastCancerCV(),
        optimum=None,
        noise_std=noise_std,
        description="HistGradientBoosting on breast cancer, 5-fold CV error (about 1 s each)",
        tags=("ml",),
    )
