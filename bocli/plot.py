"""Pictures of one study's progress (``bocli plot`` and the per-study ``bocli report``).

Two layers, maths apart from glue:

- ``load_study`` reads a study file (or a ``bocli run`` folder) and ``study_progress`` turns its
  trials into arrays: measured outcomes, feasibility, the best so far (hypervolume so far with
  several objectives), the best (or Pareto-optimal) trials, and the model's prediction at the time
  each trial was proposed with its central 90% interval. No matplotlib here.
- ``progress_figure`` draws those arrays as a matplotlib Figure with up to three sections of
  panels (``PANELS``): progress against trial number, measured vs predicted per outcome, and the
  measured objective against each parameter.

The stored prediction (``TrialRecord.predicted_mean / predicted_sd``, or ``predictions`` with
several outcomes) is the predictive mean and standard deviation of a noisy measurement in the
outcome's units (``bocli.engine.predict``), a Gaussian summary: its 90% interval is
``mean +- 1.645 sd``, the interval ``bocli status`` checks the told results against.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bocli.errors import UserError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from bocli.space import Space
    from bocli.storage import StudySettings, TrialRecord

__all__ = [
    "FIGURE_FORMATS",
    "PANELS",
    "Z90",
    "LoadedStudy",
    "StudyProgress",
    "figure_bytes",
    "figure_format",
    "load_study",
    "progress_figure",
    "study_progress",
    "write_figure",
]

Z90 = 1.6448536269514722  # the central 90% interval of a Gaussian is mean +- Z90 sd
PANELS = ("progress", "predictions", "parameters")
FIGURE_FORMATS = {".png": "png", ".svg": "svg"}
NCOLS = 3  # panels per row in the prediction and parameter sections

# one look for each kind of point, in every panel
_MEASURED = {"marker": "o", "ls": "none", "ms": 4.5, "color": "tab:blue", "alpha": 0.8}
_INFEASIBLE = {"marker": "x", "ls": "none", "ms": 5, "color": "0.55", "mew": 1.2}
_BEST = {"marker": "*", "ls": "none", "ms": 12, "mfc": "gold", "mec": "crimson", "mew": 1.0}
_FAILED = {"marker": "v", "ls": "none", "ms": 6, "color": "tab:red", "clip_on": False}
_PENDING = {"marker": "|", "ls": "none", "ms": 8, "color": "0.4", "clip_on": False}
_PREDICTED = "tab:orange"


# ----- data ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadedStudy:
    """What the plots and the per-study report read from a study file.

    Attributes:
        path: The study file (``DIR/study.db`` for a run folder).
        settings: The study's space and default settings.
        trials: Every trial, in trial-id order.
        meta: The study's meta entries (``run`` holds a ``bocli run``'s RunConfig as JSON).
        ref_point: A multi-objective study's reference point (user units), or None.
        ref_inferred: Whether that reference point was inferred from the data.
    """

    path: Path
    settings: StudySettings
    trials: list[TrialRecord]
    meta: dict[str, str]
    ref_point: list[float] | None = None
    ref_inferred: bool = False

    @property
    def run_config(self) -> dict[str, Any] | None:
        """The settings of the study's last ``bocli run`` (RunConfig as a dict), or None."""
        from bocli.run import RUN_META_KEY

        text = self.meta.get(RUN_META_KEY)
        if not text:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None


def load_study(path: str | Path) -> LoadedStudy:
    """Read a study file, or a ``bocli run --out DIR`` folder holding ``study.db``.

    Raises:
        UserError: ``path`` is missing, not a study, or a folder without ``study.db`` (one line).
    """
    from bocli.storage import StudyStorage
    from bocli.study import stored_reference_point

    with StudyStorage.open(path) as st:  # resolves a run folder to its study.db
        ref = stored_reference_point(st)
        return LoadedStudy(
            path=Path(st.path),
            settings=st.settings,
            trials=st.trials(),
            meta=st.meta(),
            ref_point=None if ref is None else ref[0],
            ref_inferred=False if ref is None else ref[1],
        )


@dataclass(frozen=True)
class StudyProgress:
    """A study's trials as arrays (``n`` trials in trial-id order, ``k`` outcomes in
    ``space.outcome_names`` order, ``d`` parameters).

    Attributes:
        space: The study's space.
        trial_id: ``n`` ints.
        state: ``n`` strings (pending, complete, failed, abandoned).
        phase: ``n`` strings (init, model, import).
        params: ``n x d`` DataFrame of the parameters in the user's units (column per name).
        outcomes: ``n x k`` measured values (NaN unless complete).
        feasible: ``n`` booleans: complete and every outcome constraint holds.
        best_so_far: ``n`` floats: the best feasible value among trials up to each one (with
            several objectives the hypervolume so far; NaN where there is none yet).
        best: ``n`` booleans: the best trial (several objectives: the feasible Pareto set).
        pred_mean, pred_low, pred_high: ``n x k`` predicted mean and central 90% interval at
            the time each trial was proposed (NaN for design and imported trials).
        ref_point: The hypervolume's reference point (several objectives), or None.
    """

    space: Space
    trial_id: np.ndarray
    state: np.ndarray
    phase: np.ndarray
    params: pd.DataFrame
    outcomes: np.ndarray
    feasible: np.ndarray
    best_so_far: np.ndarray
    best: np.ndarray
    pred_mean: np.ndarray
    pred_low: np.ndarray
    pred_high: np.ndarray
    ref_point: list[float] | None = None

    @property
    def complete(self) -> np.ndarray:
        """``n`` booleans: the trial has a measured result."""
        return self.state == "complete"


def study_progress(
    space: Space, trials: list[TrialRecord], ref_point: list[float] | None = None
) -> StudyProgress:
    """Turn a study's trials into the arrays the plots draw (see :class:`StudyProgress`).

    The best so far and the best / Pareto trials come from ``bocli.study`` (``best_so_far``,
    ``pareto_trials``), the same numbers ``bocli status``, ``best`` and ``export`` show.
    """
    import pandas as pd

    from bocli.study import best_so_far, outcome_matrix, pareto_trials

    names = space.outcome_names
    n, k = len(trials), len(names)
    Y = outcome_matrix(space, trials)
    feasible = space.feasible(Y) & np.array([t.state == "complete" for t in trials], dtype=bool)
    so_far = np.full(n, np.nan)
    best = np.zeros(n, dtype=bool)
    if space.is_multi_objective:
        for i, (_, hv, _) in enumerate(best_so_far(space, trials, None, ref_point)):
            so_far[i] = np.nan if hv is None else hv
        front = {
            t.trial_id for t in pareto_trials(space, [t for t in trials if t.state == "complete"])
        }
        best[:] = [t.trial_id in front for t in trials]
    else:
        last, best_i = None, None
        for i, (_, b, _) in enumerate(best_so_far(space, trials)):
            so_far[i] = np.nan if b is None else b
            if b is not None and b != last:  # it only changes on a strictly better trial
                best_i, last = i, b
        if best_i is not None:
            best[best_i] = True
    mean = np.full((n, k), np.nan)
    sd = np.full((n, k), np.nan)
    for i, t in enumerate(trials):
        for j, name in enumerate(names):
            m, s = _prediction(t, name, k)
            if m is not None and s is not None and math.isfinite(m) and math.isfinite(s):
                mean[i, j], sd[i, j] = m, s
    params = pd.DataFrame([t.params for t in trials], columns=space.names)
    return StudyProgress(
        space=space,
        trial_id=np.array([t.trial_id for t in trials], dtype=int),
        state=np.array([t.state for t in trials], dtype=object),
        phase=np.array([t.phase for t in trials], dtype=object),
        params=params,
        outcomes=Y,
        feasible=feasible,
        best_so_far=so_far,
        best=best,
        pred_mean=mean,
        pred_low=mean - Z90 * sd,
        pred_high=mean + Z90 * sd,
        ref_point=None if ref_point is None else [float(v) for v in ref_point],
    )


def _prediction(t: TrialRecord, name: str, k: int) -> tuple[float | None, float | None]:
    """A trial's stored predicted mean and sd of one outcome (None, None where not stored)."""
    if k == 1 and t.predictions is None:
        return t.predicted_mean, t.predicted_sd
    pred = (t.predictions or {}).get(name) or {}
    return pred.get("mean"), pred.get("sd")


# ----- figure ----------------------------------------------------------------------------------
def progress_figure(
    progress: StudyProgress, panels: tuple[str, ...] = PANELS, title: str | None = None
) -> Figure:
    """Draw a study's progress.

    Sections, each starting a new row (every axis carries a label, ``Axes.get_label()``, naming
    what it shows):

    - ``progress``: one panel (``progress``): the best so far against trial number as a step line,
      each measured value as a dot (one objective), or the hypervolume so far (several);
      failed trials as red triangles and pending ones as ticks along the bottom.
    - ``predictions``: one panel per outcome (``prediction:<outcome>``): each measured value
      and the model's predicted mean with its 90% interval at the time the trial was proposed.
    - ``parameters``: one panel per objective and parameter (``parameter:<objective>:<param>``):
      the measured objective against the parameter (a categorical axis for choices, a log axis
      for log-scaled parameters), the best trial (several objectives: the Pareto set) starred.

    Infeasible trials (outcome constraints) are grey crosses everywhere.

    Args:
        progress: From :func:`study_progress`.
        panels: Which sections, in ``PANELS`` order.
        title: A title above the figure.

    Returns:
        A matplotlib Figure (Agg backend; not registered with pyplot, so no ``close`` needed).
    """
    from matplotlib.figure import Figure

    unknown = [p for p in panels if p not in PANELS]
    if unknown:
        raise ValueError(f"unknown panels {unknown}; choose from {PANELS}")
    space = progress.space
    outcomes = space.outcome_names
    objectives = [o.name for o in space.objectives]
    rows: list[tuple[str, int]] = []  # (section, number of rows)
    if "progress" in panels:
        rows.append(("progress", 1))
    if "predictions" in panels:
        rows.append(("predictions", math.ceil(len(outcomes) / NCOLS)))
    if "parameters" in panels:
        per = math.ceil(space.dim / NCOLS)
        rows += [("parameters", per)] * len(objectives)
    nrows = sum(r for _, r in rows)
    fig = Figure(figsize=(4.3 * NCOLS, 3.2 * nrows + (0.4 if title else 0.0)), layout="constrained")
    gs = fig.add_gridspec(max(nrows, 1), NCOLS)
    row = 0
    objective_i = 0
    for section, height in rows:
        if section == "progress":
            _progress_panel(fig.add_subplot(gs[row, :]), progress)
        elif section == "predictions":
            for j, name in enumerate(outcomes):
                r, c = divmod(j, NCOLS)
                _prediction_panel(fig.add_subplot(gs[row + r, c]), progress, j, name, j == 0)
        else:
            for i, p in enumerate(space.parameters):
                r, c = divmod(i, NCOLS)
                ax = fig.add_subplot(gs[row + r, c])
                _parameter_panel(ax, progress, objective_i, p, i == 0)
            objective_i += 1
        row += height
    if title:
        fig.suptitle(title)
    return fig


def _x(progress: StudyProgress) -> np.ndarray:
    return progress.trial_id.astype(float)


def _no_data(ax: Any, text: str = "no complete trials yet") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


def _direction(space: Space, name: str) -> str:
    for o in space.objectives:
        if o.name == name:
            return f"{o.direction}: {'lower' if o.direction == 'minimize' else 'higher'} is better"
    for c in space.outcome_constraints:
        if c.name == name:
            return f"constraint {c.describe()}"
    return ""


def _bottom_marks(ax: Any, progress: StudyProgress) -> None:
    """Failed and pending trials along the bottom edge (they have no value to place them by)."""
    from matplotlib.transforms import blended_transform_factory

    edge = blended_transform_factory(ax.transData, ax.transAxes)
    x = _x(progress)
    for state, style, label in (
        ("failed", _FAILED, "failed"),
        ("pending", _PENDING, "pending"),
    ):
        at = progress.state == state
        if at.any():
            ax.plot(x[at], np.full(int(at.sum()), 0.0), transform=edge, label=label, **style)


def _measured(ax: Any, x: np.ndarray, y: np.ndarray, progress: StudyProgress) -> None:
    """Feasible measured values as dots, infeasible ones as grey crosses."""
    done = progress.complete & np.isfinite(y)
    ok = done & progress.feasible
    ax.plot(x[ok], y[ok], label="measured", **_MEASURED)
    bad = done & ~progress.feasible
    if bad.any():
        ax.plot(x[bad], y[bad], label="infeasible", **_INFEASIBLE)


def _progress_panel(ax: Any, progress: StudyProgress) -> None:
    space = progress.space
    x = _x(progress)
    ax.set_label("progress")
    ax.set_xlabel("trial")
    if space.is_multi_objective:
        ref = progress.ref_point
        where = "" if ref is None else " (reference point " + ", ".join(f"{v:g}" for v in ref) + ")"
        ax.set_title(f"Hypervolume of the feasible trials so far{where}")
        ax.set_ylabel("hypervolume")
        have = np.isfinite(progress.best_so_far)
        if have.any():
            ax.plot(x[have], progress.best_so_far[have], drawstyle="steps-post", color="tab:green",
                    lw=1.8, label="hypervolume so far")  # fmt: skip
        elif ref is None:
            _no_data(ax, "no reference point yet (objective thresholds, or the first model ask)")
        else:
            _no_data(ax)
    else:
        o = space.objective
        ax.set_title(f"Best {o.name} so far ({_direction(space, o.name)})")
        ax.set_ylabel(o.name)
        y = progress.outcomes[:, 0]
        _measured(ax, x, y, progress)
        have = np.isfinite(progress.best_so_far)
        if have.any():
            ax.plot(x[have], progress.best_so_far[have], drawstyle="steps-post", color="tab:green",
                    lw=1.8, label="best so far")  # fmt: skip
            ax.plot(x[progress.best], y[progress.best], label="best trial", **_BEST)
        else:
            _no_data(ax)
    _bottom_marks(ax, progress)
    _integer_ticks(ax)
    ax.grid(True, alpha=0.25)
    _legend(ax)


def _prediction_panel(ax: Any, progress: StudyProgress, j: int, name: str, legend: bool) -> None:
    x = _x(progress)
    ax.set_label(f"prediction:{name}")
    ax.set_title(f"{name}: measured vs predicted", fontsize=10)
    ax.set_xlabel("trial")
    ax.set_ylabel(name)
    mean, lo, hi = progress.pred_mean[:, j], progress.pred_low[:, j], progress.pred_high[:, j]
    has = np.isfinite(mean)
    if has.any():
        ax.vlines(x[has], lo[has], hi[has], color=_PREDICTED, lw=2.2, alpha=0.45,
                  label="predicted 90% interval")  # fmt: skip
        ax.plot(x[has], mean[has], marker="_", ls="none", ms=9, mew=1.8, color=_PREDICTED,
                label="predicted mean")  # fmt: skip
    y = progress.outcomes[:, j]
    _measured(ax, x, y, progress)
    if not (progress.complete & np.isfinite(y)).any() and not has.any():
        _no_data(ax)
    _bottom_marks(ax, progress)
    _integer_ticks(ax)
    ax.grid(True, alpha=0.25)
    if legend:
        _legend(ax)


def _parameter_panel(ax: Any, progress: StudyProgress, j: int, p: Any, legend: bool) -> None:
    from bocli.space import CategoricalParam

    space = progress.space
    name = space.objectives[j].name
    ax.set_label(f"parameter:{name}:{p.name}")
    y = progress.outcomes[:, j]
    raw = progress.params[p.name].to_numpy(dtype=object)
    if isinstance(p, CategoricalParam):  # ordinal too: positions in the listed order
        labels = [str(c) for c in p.choices]
        x = np.array([labels.index(str(v)) if str(v) in labels else np.nan for v in raw], float)
        ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 4 else 0)
        ax.set_xlim(-0.5, len(labels) - 0.5)
        ax.set_xlabel(p.name)
    else:
        x = np.array([np.nan if v is None else float(v) for v in raw], dtype=float)
        if p.log:
            ax.set_xscale("log")
            ax.set_xlim(p.low / 1.15, p.high * 1.15)
        else:
            pad = 0.04 * (p.high - p.low)
            ax.set_xlim(p.low - pad, p.high + pad)
        ax.set_xlabel(f"{p.name} (log scale)" if p.log else p.name)
    ax.set_ylabel(name)
    _measured(ax, x, y, progress)
    mark = progress.best & np.isfinite(x)
    label = "Pareto-optimal" if space.is_multi_objective else "best trial"
    if mark.any():
        ax.plot(x[mark], y[mark], label=label, **_BEST)
    if not (progress.complete & np.isfinite(y)).any():
        _no_data(ax)
    ax.set_title(f"{name} vs {p.name}", fontsize=10)
    ax.grid(True, alpha=0.25)
    if legend:
        _legend(ax)


def _legend(ax: Any) -> None:
    if ax.get_legend_handles_labels()[0]:  # an empty panel has nothing to explain
        ax.legend(fontsize=7, frameon=False, loc="best")


def _integer_ticks(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


# ----- output ----------------------------------------------------------------------------------
def figure_format(path: str | Path, option: str = "-o") -> str:
    """``png`` or ``svg`` from a file name's suffix.

    Raises:
        UserError: Any other suffix (the message names ``option``).
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise UserError(
            f"{option} {path}: the file name must end in .png or .svg (the picture's format), "
            f"got {suffix or 'no suffix'!r}"
        )
    return FIGURE_FORMATS[suffix]


def figure_bytes(fig: Figure, fmt: str = "png", dpi: int = 110) -> bytes:
    """The figure as PNG or SVG bytes."""
    buf = io.BytesIO()
    # metadata Date=None: the same study draws the same SVG twice
    meta = {"Date": None} if fmt == "svg" else None
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", metadata=meta)
    return buf.getvalue()


def write_figure(study: str | Path, output: str | Path) -> dict[str, Any]:
    """Draw a study's progress (every section) and write it to ``output`` (.png or .svg).

    An existing regular file at ``output`` is replaced; a study or any other SQLite file never.

    Returns:
        ``{"output", "format", "trials", "complete", "axes"}``.

    Raises:
        UserError: A bad ``-o`` suffix or file, or ``study`` is not a study or run folder.
    """
    fmt = figure_format(output)
    loaded = load_study(study)
    from bocli.study import check_overwrite

    check_overwrite(loaded.path, output, force=True)  # never a study, a journal, a folder
    progress = study_progress(loaded.settings.space, loaded.trials, loaded.ref_point)
    fig = progress_figure(progress, title=_figure_title(loaded, progress))
    data = figure_bytes(fig, fmt)
    try:
        Path(output).write_bytes(data)
    except OSError as e:
        raise UserError(f"-o {output}: cannot write it ({e.strerror or e})") from None
    return {
        "output": str(output),
        "format": fmt,
        "trials": len(loaded.trials),
        "complete": int(progress.complete.sum()),
        "axes": len(fig.axes),
    }


def _figure_title(loaded: LoadedStudy, progress: StudyProgress) -> str:
    s = loaded.settings
    name = s.problem or loaded.path.name
    return (
        f"{name}: {len(loaded.trials)} trials, {int(progress.complete.sum())} complete, "
        f"{int((progress.state == 'failed').sum())} failed, "
        f"{int((progress.state == 'pending').sum())} pending"
    )
