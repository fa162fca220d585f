"""Turn a comparison grid's results into one self-contained HTML report (or a Markdown rank table).

The HTML file has no external references: CSS inline, plots as PNG data URIs (matplotlib, Agg), no
scripts, so it opens offline and can be mailed around. Sections, per the study it imitates:

1. best-so-far regret curves per problem (median over seeds, interquartile band, log axis); for a
   problem with several objectives, the hypervolume so far (or its log10 regret when the problem's
   maximum hypervolume is known), and its Pareto fronts: the final data of every method with the
   non-dominated points highlighted (one panel per method for two objectives, every pair of
   objectives for three or more);
2. final-regret table with ranks per problem and the mean rank over problems (hypervolume, or log10
   hypervolume regret, for several objectives);
3. time per iteration, surrogate fit vs acquisition optimization;
4. calibration of the surrogates on held-out points (log-likelihood, 90% interval coverage);
5. failed cells, and the exact commands and library versions that produced the results.

The statistics are plain functions of DataFrames (``final_table``, ``rank_table``, ``timing_table``,
``calibration_table``, ``curves``, ``pareto_data``), separate from the rendering.
"""

from __future__ import annotations

import base64
import html
import io
import math
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "build_report",
    "calibration_table",
    "curves",
    "final_table",
    "markdown_rank_table",
    "pareto_data",
    "rank_table",
    "study_tables",
    "timing_table",
    "write_report",
    "write_study_report",
]

METHOD = "method"


def _with_method(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df[METHOD] = df["surrogate"].astype(str) + "/" + df["acquisition"].astype(str)
    return df


METRIC_LABELS = {
    "regret": "regret",
    "best_so_far": "best so far",
    "hypervolume": "hypervolume",
    "log_hv_regret": "log10 HV regret",
}


def _objectives(problem: str, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """A multi-objective problem's objectives ``[{name, direction, threshold}]``; [] for one."""
    objs = meta.get("problems_info", {}).get(problem, {}).get("objectives") or []
    return list(objs) if len(objs) > 1 else []


def _metric(problem: str, meta: dict[str, Any]) -> tuple[str, float]:
    """Which column measures a problem (regret when its optimum is known) and its sign (+1 = lower
    is better). Several objectives: the log10 hypervolume regret when the maximum hypervolume is
    known (lower is better), otherwise the hypervolume (higher is better)."""
    info = meta.get("problems_info", {}).get(problem, {})
    if _objectives(problem, meta):
        if info.get("max_hv") is not None:
            return "log_hv_regret", 1.0
        return "hypervolume", -1.0
    if info.get("optimum") is not None:
        return "regret", 1.0
    return "best_so_far", (-1.0 if info.get("direction") == "maximize" else 1.0)


def curves(
    evaluations: pd.DataFrame, problem: str, column: str
) -> dict[str, dict[str, np.ndarray]]:
    """Best-so-far curves of one problem, summarized over seeds.

    Returns:
        ``method -> {"x": evaluations 1..n, "median", "q25", "q75", "seeds"}`` (arrays of length n).
    """
    df = _with_method(evaluations[evaluations["problem"] == problem])
    out: dict[str, dict[str, np.ndarray]] = {}
    for method, g in df.groupby(METHOD, sort=False):
        wide = g.pivot_table(index="seed", columns="trial", values=column, aggfunc="first")
        wide = wide.reindex(columns=range(int(g["trial"].max()) + 1))
        arr = wide.to_numpy(dtype=float)
        arr = _ffill(arr)  # a failed evaluation keeps the best so far
        with np.errstate(all="ignore"):
            # quantiles over the seeds that have a value at that evaluation
            med, q25, q75 = (
                np.array([np.nanquantile(c, q) if np.isfinite(c).any() else np.nan for c in arr.T])
                for q in (0.5, 0.25, 0.75)
            )
        out[str(method)] = {
            "x": np.arange(1, arr.shape[1] + 1),
            "median": med,
            "q25": q25,
            "q75": q75,
            "seeds": np.array(len(arr)),
        }
    return out


def pareto_data(
    evaluations: pd.DataFrame, problem: str, objectives: list[dict[str, Any]]
) -> dict[str, dict[str, np.ndarray]]:
    """The final data of every method on a multi-objective problem, all seeds pooled.

    Returns:
        ``method -> {"Y": n x m outcome values (objectives order), "feasible": n booleans,
        "pareto": n booleans (non-dominated among the method's pooled feasible points),
        "seeds": number of seeds}``; complete evaluations with every objective recorded only.
    """
    from bocli.pareto import pareto_mask

    names = [o["name"] for o in objectives]
    directions = [o.get("direction", "minimize") for o in objectives]
    df = evaluations[evaluations["problem"] == problem]
    if "outcomes" not in df.columns:
        return {}
    df = _with_method(df[df["status"] == "complete"])
    out: dict[str, dict[str, np.ndarray]] = {}
    for method, g in df.groupby(METHOD, sort=False):
        rows, feas = [], []
        for text, ok in zip(g["outcomes"], g.get("feasible", [np.nan] * len(g)), strict=True):
            vals = _outcomes(text)
            if vals is None or any(n not in vals for n in names):
                continue
            rows.append([float(vals[n]) for n in names])
            feas.append(not (isinstance(ok, int | float) and ok == 0))
        if not rows:
            continue
        Y, F = np.array(rows, dtype=float), np.array(feas, dtype=bool)
        out[str(method)] = {
            "Y": Y,
            "feasible": F,
            "pareto": pareto_mask(Y, directions, F),
            "seeds": np.array(g["seed"].nunique()),
        }
    return out


def _outcomes(text: Any) -> dict[str, Any] | None:
    import json

    if not isinstance(text, str) or not text:
        return None
    try:
        vals = json.loads(text)
    except ValueError:
        return None
    return vals if isinstance(vals, dict) else None


def _ffill(arr: np.ndarray) -> np.ndarray:
    out = arr.copy()
    for j in range(1, out.shape[1]):
        missing = ~np.isfinite(out[:, j])
        out[missing, j] = out[missing, j - 1]
    return out


def final_table(
    evaluations: pd.DataFrame, cells: pd.DataFrame, meta: dict[str, Any]
) -> pd.DataFrame:
    """The final value of every cell's metric (regret, or best value when the optimum is unknown).

    Returns:
        Columns ``problem, method, seed, final, metric`` (``final`` is NaN for a failed cell).
    """
    import pandas as pd

    rows = []
    ev = _with_method(evaluations) if len(evaluations) else evaluations
    for cell in _with_method(cells).itertuples(index=False):
        column, _ = _metric(cell.problem, meta)
        final = math.nan
        if len(ev):
            g = ev[
                (ev["problem"] == cell.problem)
                & (ev[METHOD] == cell.method)
                & (ev["seed"] == cell.seed)
            ]
            vals = g.sort_values("trial")[column].dropna()
            if cell.status == "ok" and len(vals):
                final = float(vals.iloc[-1])
        rows.append(
            {
                "problem": cell.problem,
                METHOD: cell.method,
                "seed": cell.seed,
                "final": final,
                "metric": column,
            }
        )
    return pd.DataFrame(rows, columns=["problem", METHOD, "seed", "final", "metric"])


def rank_table(final: pd.DataFrame, meta: dict[str, Any]) -> pd.DataFrame:
    """Median final metric per problem and method, its rank within the problem (1 = best; ties share
    the average rank; a method without results ranks last), and the mean rank over problems.

    Returns:
        One row per method (sorted by mean rank) with columns ``<problem>`` (median),
        ``<problem> q25``, ``<problem> q75``, ``<problem> rank`` and ``mean rank``.
    """
    import pandas as pd

    problems = list(dict.fromkeys(final["problem"]))
    methods = list(dict.fromkeys(final[METHOD]))
    table = pd.DataFrame(index=pd.Index(methods, name=METHOD))
    for p in problems:
        _, sign = _metric(p, meta)
        g = final[final["problem"] == p].groupby(METHOD)["final"]
        med = g.median().reindex(methods)
        table[p] = med
        table[f"{p} q25"] = g.quantile(0.25).reindex(methods)
        table[f"{p} q75"] = g.quantile(0.75).reindex(methods)
        table[f"{p} rank"] = (sign * med).rank(method="average", na_option="bottom")
    rank_cols = [f"{p} rank" for p in problems]
    table["mean rank"] = table[rank_cols].mean(axis=1)
    return table.sort_values("mean rank", kind="stable")


def timing_table(evaluations: pd.DataFrame) -> pd.DataFrame:
    """Mean seconds per model-based iteration, fit vs acquisition, per problem and method."""
    import pandas as pd

    ev = evaluations[evaluations["phase"] == "model"]
    if ev.empty:
        return pd.DataFrame(
            columns=["problem", METHOD, "fit", "acquisition", "total", "iterations"]
        )
    ev = _with_method(ev)
    g = ev.groupby(["problem", METHOD], sort=False)
    out = pd.DataFrame(
        {
            "fit": g["fit_seconds"].mean(),
            "acquisition": g["acq_seconds"].mean(),
            "iterations": g.size(),
        }
    ).reset_index()
    out["total"] = out["fit"] + out["acquisition"]
    return out[["problem", METHOD, "fit", "acquisition", "total", "iterations"]]


def calibration_table(calibration: pd.DataFrame) -> pd.DataFrame:
    """Mean held-out log-likelihood, 90% coverage and RMSE over all refits and seeds, per problem and
    method (and the last refit's log-likelihood, after the most data)."""
    import pandas as pd

    cols = ["problem", METHOD, "loglik", "loglik (last refit)", "coverage", "rmse", "refits"]
    if calibration.empty:
        return pd.DataFrame(columns=cols)
    cal = _with_method(calibration)
    g = cal.groupby(["problem", METHOD], sort=False)
    last = cal.sort_values("refit").groupby(["problem", METHOD, "seed"], sort=False).tail(1)
    out = pd.DataFrame(
        {
            "loglik": g["loglik"].mean(),
            "loglik (last refit)": last.groupby(["problem", METHOD], sort=False)["loglik"].mean(),
            "coverage": g["coverage"].mean(),
            "rmse": g["rmse"].mean(),
            "refits": g.size(),
        }
    ).reset_index()
    return out[cols]


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------


def _num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, int | np.integer):
        return str(int(v))
    v = float(v)
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}"


def _rank(v: Any) -> str:
    return "–" if not math.isfinite(float(v)) else f"{float(v):g}"


def markdown_rank_table(ranks: pd.DataFrame, problems: list[str], meta: dict[str, Any]) -> str:
    """The rank table as Markdown: ``median (rank)`` per problem, then the mean rank."""
    head = ["method", *[f"{p} ({METRIC_LABELS[_metric(p, meta)[0]]})" for p in problems]]
    head.append("mean rank")
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    for method, row in ranks.iterrows():
        cells = [str(method)]
        cells += [f"{_num(row[p])} ({_rank(row[f'{p} rank'])})" for p in problems]
        cells.append(f"{row['mean rank']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _colors(methods: list[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(methods) <= 10 else "tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(methods)}


def _curve_figure(
    problem: str, data: dict[str, dict[str, np.ndarray]], column: str, colors: dict
) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    log = column == "regret"  # log_hv_regret is a log10 already: a linear axis
    positive = [v for d in data.values() for v in d["q25"] if np.isfinite(v) and v > 0]
    floor = (min(positive) / 10) if positive else 1e-12
    for method, d in data.items():
        med, lo, hi = d["median"], d["q25"], d["q75"]
        if log:
            med, lo, hi = (np.maximum(a, floor) for a in (med, lo, hi))
        ax.plot(d["x"], med, label=f"{method} (n={int(d['seeds'])})", color=colors[method], lw=1.8)
        ax.fill_between(d["x"], lo, hi, color=colors[method], alpha=0.18, lw=0)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("evaluation")
    ax.set_ylabel(
        {
            "regret": "best-so-far regret",
            "hypervolume": "hypervolume so far",
            "log_hv_regret": "log10 hypervolume regret",
        }.get(column, "best value so far")
    )
    ax.set_title(f"{problem}: median and interquartile range over seeds")
    ax.grid(True, which="both", alpha=0.25)
    if data:
        ax.legend(fontsize=8, frameon=False)
    return _png(fig)


def _axis_label(objective: dict[str, Any]) -> str:
    direction = objective.get("direction", "minimize")
    better = "lower" if direction == "minimize" else "higher"
    return f"{objective['name']} ({direction}: {better} is better)"


def _front_figure(
    problem: str,
    data: dict[str, dict[str, np.ndarray]],
    objectives: list[dict[str, Any]],
    colors: dict,
) -> str:
    """One panel per method (two objectives), or per method and pair of objectives (three or more):
    dominated points faded, Pareto points highlighted, infeasible ones as faded crosses, the
    reference point (the thresholds) dashed."""
    import itertools

    import matplotlib.pyplot as plt

    m = len(objectives)
    pairs = list(itertools.combinations(range(m), 2))[:6]
    methods = list(data)
    if m == 2:
        nrows, ncols = 1 + (len(methods) - 1) // 3, min(3, len(methods))
        grid = [(method, pairs[0]) for method in methods]
    else:
        nrows, ncols = len(methods), len(pairs)
        grid = [(method, pair) for method in methods for pair in pairs]
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.9 * ncols, 3.5 * nrows), squeeze=False)
    ref = [o.get("threshold") for o in objectives]
    # axes cover every method's Pareto points and the reference point (the region the
    # hypervolume measures), the same for every panel of a pair, so methods compare by eye
    limits: dict[int, tuple[float, float]] = {}
    for k in range(m):
        vals = [d["Y"][d["pareto"], k] for d in data.values()]
        pts = np.concatenate(vals) if vals else np.array([])
        if ref[k] is not None:
            pts = np.append(pts, float(ref[k]))
        if not len(pts):
            pts = np.concatenate([d["Y"][:, k] for d in data.values()])
        lo, hi = float(np.min(pts)), float(np.max(pts))
        pad = 0.08 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.1
        limits[k] = (lo - pad, hi + pad)
    flat = [ax for row in axes for ax in row]
    for ax, (method, (i, j)) in zip(flat, grid, strict=False):
        d = data[method]
        Y, feas, front = d["Y"], d["feasible"], d["pareto"]
        color = colors.get(method, "C0")
        dom = feas & ~front
        ax.scatter(Y[dom, i], Y[dom, j], s=14, color=color, alpha=0.22, lw=0, label="dominated")
        if (~feas).any():
            ax.scatter(Y[~feas, i], Y[~feas, j], s=16, marker="x", color="0.55", alpha=0.5,
                       lw=0.8, label="infeasible")  # fmt: skip
        ax.scatter(Y[front, i], Y[front, j], s=30, color=color, edgecolor="black", lw=0.6,
                   zorder=3, label="Pareto")  # fmt: skip
        if m == 2 and front.any():
            order = np.argsort(Y[front, i])
            # the attainment staircase: after a point, the next one's value when x is maximized
            where = "post" if objectives[i].get("direction", "minimize") == "minimize" else "pre"
            ax.step(Y[front, i][order], Y[front, j][order], where=where, color=color, lw=0.9,
                    alpha=0.7, zorder=2)  # fmt: skip
        for k, axline in ((i, ax.axvline), (j, ax.axhline)):
            if ref[k] is not None:
                axline(float(ref[k]), color="0.4", ls="--", lw=0.8)
        ax.set_xlim(*limits[i])
        ax.set_ylim(*limits[j])
        ax.set_xlabel(_axis_label(objectives[i]), fontsize=8)
        ax.set_ylabel(_axis_label(objectives[j]), fontsize=8)
        ax.set_title(
            f"{method}: {int(front.sum())} Pareto of {len(Y)} (n={int(d['seeds'])})", fontsize=9
        )
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.25)
    for ax in flat[len(grid) :]:
        ax.set_visible(False)
    legend: dict[str, Any] = {}  # every kind of point any panel shows, once
    for ax in flat[: len(grid)]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    handles, labels = list(legend.values()), list(legend)
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.0))  # fmt: skip
    fig.suptitle(f"{problem}: final data, seeds pooled", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _timing_figure(timing: pd.DataFrame, colors: dict) -> str:
    import matplotlib.pyplot as plt

    problems = list(dict.fromkeys(timing["problem"]))
    fig, axes = plt.subplots(
        1, len(problems), figsize=(4.2 * len(problems), 0.5 + 0.45 * timing[METHOD].nunique() + 1.2),
        squeeze=False,
    )  # fmt: skip
    for ax, p in zip(axes[0], problems, strict=True):
        t = timing[timing["problem"] == p]
        y = np.arange(len(t))
        ax.barh(y, t["fit"], color="#4c72b0", label="fit")
        ax.barh(y, t["acquisition"], left=t["fit"], color="#dd8452", label="acquisition")
        ax.set_yticks(y, t[METHOD])
        ax.invert_yaxis()
        ax.set_xlabel("seconds per iteration")
        ax.set_title(p)
        ax.grid(True, axis="x", alpha=0.25)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=2, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.0))  # fmt: skip
    fig.tight_layout()
    return _png(fig)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;padding:0 1em;line-height:1.4}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}
thead th{background:#f3f3f3}
td.best{font-weight:bold;background:#eaf5ea}
figure{margin:1em 0}figure img{max-width:100%;height:auto}
.plots{display:flex;flex-wrap:wrap;gap:1em}.plots figure{flex:1 1 480px}
code,pre{background:#f6f6f6;padding:.1em .3em;font-size:.9em}pre{padding:.6em;overflow-x:auto}
.muted{color:#666;font-size:.9em}
"""


def _head(title: str) -> str:
    """The page's start, up to and including ``<body>``: one skeleton and CSS for every report."""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
    )


def _table_html(
    head: list[str],
    rows: list[list[str]],
    best: frozenset[tuple[int, int]] | set[tuple[int, int]] = frozenset(),
) -> str:
    e = html.escape
    out = ["<table><thead><tr>", *[f"<th>{e(h)}</th>" for h in head], "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        out.append("<tr>")
        for j, c in enumerate(row):
            cls = ' class="best"' if (i, j) in best else ""
            out.append(f"<td{cls}>{e(c)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def build_report(results: dict[str, Any]) -> dict[str, Any]:
    """All tables of a report from :func:`bocli.compare.load_results` output."""
    meta, ev, cells = results["meta"], results["evaluations"], results["cells"]
    problems = [p for p in meta.get("config", {}).get("problems", []) if p in set(cells["problem"])]
    problems += [p for p in dict.fromkeys(cells["problem"]) if p not in problems]
    final = final_table(ev, cells, meta)
    methods = list(dict.fromkeys(_with_method(cells)[METHOD])) if len(cells) else []
    return {
        "problems": problems,
        "final": final,
        "ranks": rank_table(final, meta) if len(final) else None,
        "timing": _in_order(timing_table(ev), problems, methods) if len(ev) else None,
        "calibration": _in_order(calibration_table(results["calibration"]), problems, methods),
    }


def _in_order(df: pd.DataFrame, problems: list[str], methods: list[str]) -> pd.DataFrame:
    """Rows in the grid's order: problems as given, methods as first run."""
    if df.empty:
        return df
    key = df["problem"].map({p: i for i, p in enumerate(problems)}) * (len(methods) + 1)
    key = key + df[METHOD].map({m: i for i, m in enumerate(methods)})
    return df.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True)


def write_report(results: dict[str, Any], path: str | Path | None, fmt: str = "html") -> str:
    """Render the report; write it to ``path`` (if given) and return the text."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    tables = build_report(results)
    text = _markdown(results, tables) if fmt == "md" else _html(results, tables)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def _markdown(results: dict[str, Any], tables: dict[str, Any]) -> str:
    meta, cells = results["meta"], results["cells"]
    if tables["ranks"] is None:
        return "No finished cells yet.\n"
    cfg = meta.get("config", {})
    lines = [
        f"Final {'regret' if any(_metric(p, meta)[0] in ('regret', 'log_hv_regret') for p in tables['problems']) else 'value'}"
        f": median over {len(cfg.get('seeds', []))} seeds after {cfg.get('budget')} evaluations "
        "(rank within the problem; lower is better).",
        "",
        markdown_rank_table(tables["ranks"], tables["problems"], meta),
    ]
    failed = cells[cells["status"] == "failed"]
    if len(failed):
        lines.append(f"{len(failed)} of {len(cells)} cells failed; see the HTML report.\n")
    return "\n".join(lines)


def _html(results: dict[str, Any], tables: dict[str, Any]) -> str:
    e = html.escape
    meta, ev, cells = results["meta"], results["evaluations"], results["cells"]
    cfg = meta.get("config", {})
    problems: list[str] = tables["problems"]
    methods = list(dict.fromkeys(_with_method(cells)[METHOD])) if len(cells) else []
    colors = _colors(methods)
    parts = [
        _head("bocli surrogate comparison"),
        "<h1>Surrogate comparison</h1>",
        f"<p class='muted'>{len(cells)} finished cells: {len(problems)} problems × "
        f"{len(methods)} surrogate/acquisition pairs × {len(cfg.get('seeds', []))} seeds; "
        f"{e(str(cfg.get('budget')))} evaluations each (initial design "
        f"{e(str(cfg.get('n_init') or 'default'))}). Generated "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}.</p>",
    ]

    # 1. curves
    parts.append("<h2>Best-so-far regret</h2><div class='plots'>")
    for p in problems:
        column, _ = _metric(p, meta)
        data = curves(ev, p, column) if len(ev) else {}
        if not data:
            continue
        src = _curve_figure(p, data, column, colors)
        what = {
            "hypervolume": ", hypervolume of the feasible points so far against the reference "
            "point formed by the objectives' thresholds (higher is better)",
            "log_hv_regret": ", log10 of the known maximum hypervolume minus the hypervolume of "
            "the feasible points so far (lower is better)",
        }.get(column, ", log axis" if column == "regret" else "")
        parts.append(
            f"<figure><img src='{src}' alt='best-so-far {e(column)} on {e(p)}' width='704'>"
            f"<figcaption class='muted'>{e(p)}: median (line) and interquartile band over seeds"
            f"{e(what)}.</figcaption></figure>"
        )
    parts.append("</div>")

    # 1b. Pareto fronts (problems with several objectives only)
    multi = [p for p in problems if _objectives(p, meta)]
    if multi:
        parts.append("<h2>Pareto fronts</h2><div class='plots'>")
        for p in multi:
            objectives = _objectives(p, meta)
            data = pareto_data(ev, p, objectives) if len(ev) else {}
            if not data:
                parts.append(f"<p>{e(p)}: no complete evaluations with every objective.</p>")
                continue
            src = _front_figure(p, data, objectives, colors)
            view = (
                "one panel per method"
                if len(objectives) == 2
                else ("one row per method, one panel per pair of objectives")
            )
            parts.append(
                f"<figure><img src='{src}' alt='Pareto front on {e(p)}' width='900'>"
                f"<figcaption class='muted'>{e(p)}: every complete evaluation at the end of the "
                f"budget, all seeds pooled, {view}. Outlined points are Pareto-optimal among the "
                "method's pooled feasible points, faded ones dominated, grey crosses infeasible; "
                "dashed lines are the thresholds (the hypervolume's reference point). The axes "
                "cover the fronts and the reference point, so far dominated points may lie "
                "outside.</figcaption></figure>"
            )
        parts.append("</div>")

    # 2. rank table
    ranks = tables["ranks"]
    parts.append("<h2>Final regret and ranks</h2>")
    if ranks is not None:
        parts.append(
            "<p class='muted'>Median [interquartile range] of the final metric over seeds, rank "
            "within the problem in parentheses (1 = best; ties share the average; a method "
            "without results ranks last). Regret where the optimum is known, otherwise the best "
            "value found."
            + (
                " Several objectives: the final hypervolume (higher is better), or its log10 "
                "regret where the maximum hypervolume is known (lower is better)."
                if multi
                else ""
            )
            + "</p>"
        )
        head = ["method", *[f"{p} ({METRIC_LABELS[_metric(p, meta)[0]]})" for p in problems]]
        head.append("mean rank")
        rows, best = [], set()
        for i, (method, row) in enumerate(ranks.iterrows()):
            r = [str(method)]
            for j, p in enumerate(problems, start=1):
                r.append(
                    f"{_num(row[p])} [{_num(row[f'{p} q25'])}, {_num(row[f'{p} q75'])}] "
                    f"({_rank(row[f'{p} rank'])})"
                )
                if row[f"{p} rank"] == ranks[f"{p} rank"].min():
                    best.add((i, j))
            r.append(f"{row['mean rank']:.2f}")
            if row["mean rank"] == ranks["mean rank"].min():
                best.add((i, len(problems) + 1))
            rows.append(r)
        parts.append(_table_html(head, rows, best))

    # 3. timing
    timing = tables["timing"]
    parts.append("<h2>Time per iteration</h2>")
    if timing is not None and len(timing):
        parts.append(
            f"<figure><img src='{_timing_figure(timing, colors)}' alt='seconds per iteration, "
            "fit vs acquisition' width='900'></figure>"
        )
        rows = [
            [
                r.problem,
                r.method,
                _num(r.fit),
                _num(r.acquisition),
                _num(r.total),
                str(r.iterations),
            ]
            for r in timing.itertuples(index=False)
        ]
        parts.append(
            _table_html(
                ["problem", "method", "fit s", "acquisition s", "total s", "iterations"], rows
            )
        )
    else:
        parts.append("<p>No model-based iterations yet.</p>")

    # 4. calibration
    cal = tables["calibration"]
    parts.append("<h2>Calibration on held-out points</h2>")
    if len(cal):
        npts = cfg.get("calibration_points")
        parts.append(
            f"<p class='muted'>After every refit, the surrogate's posterior is scored on {npts} "
            "fixed held-out points of the known function (noiseless), in the standardized units "
            "of the fit: mean predictive log-likelihood (higher is better), fraction inside the "
            "90% interval (0.9 is calibrated), RMSE. Means over refits and seeds. Sample-based "
            "posteriors are scored through their mean and variance.</p>"
        )
        rows = [
            [
                r.problem,
                r.method,
                _num(r.loglik),
                _num(r[3]),
                _num(r.coverage),
                _num(r.rmse),
                str(r.refits),
            ]
            for r in cal.itertuples(index=False)
        ]
        parts.append(
            _table_html(
                [
                    "problem",
                    "method",
                    "log-lik",
                    "log-lik (last refit)",
                    "90% coverage",
                    "RMSE",
                    "refits",
                ],
                rows,
            )
        )
    else:
        parts.append(
            "<p>No calibration measurements (no model-based refits on known functions).</p>"
        )
    if multi:
        parts.append(
            "<p class='muted'>Problems with several objectives ("
            + e(", ".join(multi))
            + ") are not scored: calibration covers single-output models only.</p>"
        )

    # 5. failures, provenance
    failed = cells[cells["status"] == "failed"]
    parts.append("<h2>Failed cells</h2>")
    if len(failed):
        rows = [
            [r.problem, r.surrogate, r.acquisition, str(r.seed), r.error]
            for r in failed.itertuples(index=False)
        ]
        parts.append(_table_html(["problem", "surrogate", "acquisition", "seed", "error"], rows))
    else:
        parts.append("<p>None.</p>")
    parts.append("<h2>Provenance</h2><p>Commands that produced these results:</p><pre>")
    for c in meta.get("commands", []):
        argv = c.get("argv")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c.get("at", 0)))
        parts.append(e(f"[{when}] {shlex.join(argv) if argv else '(library call)'}") + "\n")
    parts.append("</pre>")
    vers = meta.get("versions", {})
    parts.append(_table_html(["package", "version"], [[k, str(v)] for k, v in vers.items()]))
    settings = {k: v for k, v in cfg.items() if k not in ("problems", "surrogates", "acquisitions")}
    parts.append(
        "<p class='muted'>Grid settings: "
        + e(", ".join(f"{k}={v}" for k, v in settings.items()))
        + "</p>"
    )
    parts.append("</body></html>\n")
    return "".join(parts)


# --------------------------------------------------------------------------------------------
# one study (a study file or a `bocli run` folder)
# --------------------------------------------------------------------------------------------
BEST_ROWS = 10  # the best trials listed for one objective


def _value(v: Any) -> str:
    """A parameter or setting in a table cell: numbers via ``_num``, anything else as text."""
    if isinstance(v, bool) or v is None:
        return "–" if v is None else str(v)
    if isinstance(v, int | float | np.integer | np.floating):
        return _num(v, 4)
    if isinstance(v, dict | list | tuple):
        import json

        return json.dumps(v, sort_keys=True, default=str) if v else "–"
    return str(v)


def study_tables(loaded: Any, progress: Any) -> dict[str, tuple[list[str], list[list[str]]]]:
    """The tables of a study's report, each as ``(head, rows)`` of text cells.

    Args:
        loaded: A :class:`bocli.plot.LoadedStudy`.
        progress: Its :class:`bocli.plot.StudyProgress`.

    Returns:
        ``best`` (one objective: the ``BEST_ROWS`` best feasible complete trials, best first;
        several: the feasible Pareto set by trial id), ``parameters``, ``objectives``,
        ``outcome_constraints``, ``parameter_constraints`` and ``metadata`` (both empty where the
        space has none), ``settings`` (the last ``bocli run``'s settings when the study holds
        them, else the study's own), ``trials`` (counts by state).
    """
    s = loaded.settings
    space = s.space
    names, outcomes = space.names, space.outcome_names
    ok = np.flatnonzero(progress.feasible)
    if space.is_multi_objective:
        chosen = [int(i) for i in np.flatnonzero(progress.best)]
    else:
        y = progress.outcomes[ok, 0] * space.objective.sign
        chosen = [int(ok[i]) for i in np.argsort(-y, kind="stable")[:BEST_ROWS]]
    best_rows = [
        [str(progress.trial_id[i])]
        + [_value(progress.params.iloc[i][n]) for n in names]
        + [_num(progress.outcomes[i, j], 4) for j in range(len(outcomes))]
        + [_num(progress.pred_mean[i, j], 4) for j in range(len(outcomes))]
        for i in chosen
    ]
    best_head = ["trial", *names, *outcomes, *[f"predicted {o}" for o in outcomes]]

    params = []
    for p in space.parameters:
        if hasattr(p, "choices"):
            what = ", ".join(map(str, p.choices))
            scale = "ordered" if p.type == "ordinal" else "unordered"
        else:
            what = f"[{_value(p.low)}, {_value(p.high)}]"
            scale = "log" if p.log else "linear"
        params.append([p.name, p.type, what, scale])
    objectives = [
        [o.name, o.direction, "–" if o.threshold is None else _num(o.threshold, 4)]
        for o in space.objectives
    ]
    if space.is_multi_objective and loaded.ref_point is not None:
        how = "inferred from the data" if loaded.ref_inferred else "the thresholds"
        for row, r in zip(objectives, loaded.ref_point, strict=True):
            row.append(f"{_num(r, 4)} ({how})")
    constraints = [[c.name, c.describe()] for c in space.outcome_constraints]
    # other engineers add these to Space; older spaces have neither
    linear = [
        [str(getattr(c, "text", c))] for c in getattr(space, "parameter_constraints", ()) or ()
    ]
    metadata = [[str(m)] for m in getattr(space, "metadata", ()) or ()]

    run = loaded.run_config
    if run is not None:
        settings = [["source", "bocli run (the settings the study's last run was started with)"]]
        settings += [[k, _value(v)] for k, v in run.items()]
    else:
        settings = [["source", "study (bocli init; ask uses these unless told otherwise)"]]
        settings += [
            ["problem", _value(s.problem)],
            ["surrogate", s.surrogate],
            ["acquisition", s.acquisition],
            ["surrogate_options", _value(s.surrogate_options)],
            ["acquisition_options", _value(s.acquisition_options)],
            ["seed", str(s.seed)],
            ["n_init", str(s.n_init)],
        ]
    settings.append(["created_at", s.created_at or "–"])
    counts = [
        [state, str(int((progress.state == state).sum()))]
        for state in ("complete", "pending", "failed", "abandoned")
    ]
    if not space.is_single_outcome:
        counts.append(["feasible", str(int(progress.feasible.sum()))])
    obj_head = ["objective", "direction", "threshold"]
    if space.is_multi_objective and loaded.ref_point is not None:
        obj_head.append("reference point")
    return {
        "best": (best_head, best_rows),
        "parameters": (["parameter", "type", "range / choices", "scale"], params),
        "objectives": (obj_head, objectives),
        "outcome_constraints": (["outcome", "constraint"], constraints),
        "parameter_constraints": (["parameter constraint"], linear),
        "metadata": (["metadata column"], metadata),
        "settings": (["setting", "value"], settings),
        "trials": (["state", "trials"], counts),
    }


_SECTIONS = (  # (key, heading) of the space's tables, shown when not empty
    ("parameters", "Parameters"),
    ("objectives", "Objectives"),
    ("outcome_constraints", "Outcome constraints"),
    ("parameter_constraints", "Parameter constraints"),
    ("metadata", "Metadata columns"),
)


def write_study_report(study: str | Path, path: str | Path | None, fmt: str = "html") -> str:
    """Render the report of one study (a study file or a ``bocli run`` folder); write it to
    ``path`` (if given) and return the text.

    HTML: the progress, prediction and parameter plots (``bocli.plot``) as embedded PNGs, then
    the best trials, the space and the settings as tables. Markdown (``fmt="md"``): the same
    tables without the plots.
    """
    import matplotlib

    from bocli.plot import load_study, study_progress

    matplotlib.use("Agg", force=True)
    loaded = load_study(study)
    progress = study_progress(loaded.settings.space, loaded.trials, loaded.ref_point)
    tables = study_tables(loaded, progress)
    title = loaded.settings.problem or loaded.path.name
    if fmt == "md":
        text = _study_markdown(title, loaded, tables)
    else:
        text = _study_html(title, loaded, progress, tables)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def _best_caption(space: Any) -> str:
    if space.is_multi_objective:
        return (
            "The feasible Pareto set: complete trials that satisfy every outcome constraint and "
            "that no other such trial beats in every objective. Predicted: the model's mean when "
            "the trial was proposed (– for the initial design)."
        )
    return (
        f"The {BEST_ROWS} best complete trials that satisfy every outcome constraint, best "
        "first. Predicted: the model's mean when the trial was proposed (– for the initial "
        "design)."
    )


def _study_html(title: str, loaded: Any, progress: Any, tables: dict[str, Any]) -> str:
    from bocli.plot import progress_figure

    e = html.escape
    space = loaded.settings.space
    n_done = int(progress.complete.sum())
    parts = [
        _head(f"bocli study {title}"),
        f"<h1>Study {e(title)}</h1>",
        f"<p class='muted'>{e(str(loaded.path))}: {len(loaded.trials)} trials, {n_done} "
        f"complete; {e(space.describe_outcomes())}. Generated "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}.</p>",
        _table_html(*tables["trials"]),
    ]
    figures = (
        ("progress", "Progress",
         "Hypervolume of the feasible trials so far against the reference point."
         if space.is_multi_objective else
         "Best value so far (line), every measured value (dots), the best trial (star)."),
        ("predictions", "Measured vs predicted",
         "Each measured value with the model's predicted mean and central 90% interval "
         "(mean ± 1.645 sd of a noisy measurement) when the trial was proposed; trials of the "
         "initial design have no prediction."),
        ("parameters", "Objective against each parameter",
         "The Pareto-optimal trials starred." if space.is_multi_objective else
         "The best trial starred."),
    )  # fmt: skip
    marks = []  # explain only the kinds of point the plots show
    if space.outcome_constraints:
        marks.append("grey crosses: infeasible (an outcome constraint fails)")
    if (progress.state == "failed").any():
        marks.append("red triangles: failed trials")
    if (progress.state == "pending").any():
        marks.append("ticks along the bottom: pending trials")
    legend = (" " + "; ".join(marks) + ".") if marks else ""
    for key, heading, caption in figures:
        src = _png(progress_figure(progress, panels=(key,)))
        parts.append(  # natural size, shrunk to the page by the CSS
            f"<h2>{e(heading)}</h2><figure><img src='{src}' alt='{e(heading.lower())}'>"
            f"<figcaption class='muted'>{e(caption + legend)}</figcaption></figure>"
        )
    head, rows = tables["best"]
    parts.append("<h2>Best trials</h2>" if not space.is_multi_objective else "<h2>Pareto set</h2>")
    if rows:
        parts.append(f"<p class='muted'>{e(_best_caption(space))}</p>")
        parts.append(_table_html(head, rows))
    else:
        parts.append("<p>No complete feasible trials yet.</p>")
    parts.append("<h2>Search space</h2>")
    for key, heading in _SECTIONS:
        head, rows = tables[key]
        if rows:
            parts.append(f"<h3>{e(heading)}</h3>" + _table_html(head, rows))
    parts.append("<h2>Settings</h2>")
    parts.append(_table_html(*tables["settings"]))
    parts.append("</body></html>\n")
    return "".join(parts)


def _markdown_table(head: list[str], rows: list[list[str]]) -> str:
    def cell(c: str) -> str:
        return c.replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(map(cell, head)) + " |",
        "|" + "|".join(["---"] * len(head)) + "|",
    ]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _study_markdown(title: str, loaded: Any, tables: dict[str, Any]) -> str:
    space = loaded.settings.space
    out = [f"# Study {title}", "", f"{len(loaded.trials)} trials; {space.describe_outcomes()}.", ""]
    out += [_markdown_table(*tables["trials"])]
    head, rows = tables["best"]
    out += ["## Pareto set" if space.is_multi_objective else "## Best trials", ""]
    out += [_best_caption(space), "", _markdown_table(head, rows)] if rows else ["None yet.", ""]
    out += ["## Search space", ""]
    for key, heading in _SECTIONS:
        head, rows = tables[key]
        if rows:
            out += [f"### {heading}", "", _markdown_table(head, rows)]
    out += ["## Settings", "", _markdown_table(*tables["settings"])]
    return "\n".join(out)
