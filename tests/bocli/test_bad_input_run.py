"""Every user mistake in run / compare / report / pfn / the listings gets one line, before any work.

Each wrong invocation goes through the real CLI and must: exit with code 2, print exactly one
non-empty line on stderr, show no traceback, and leave every file of the working folder
byte-identical (no file or folder added, none changed). Nothing here fits a model: a wrong input
must fail before any work, which is the point.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bocli.cli import cli

SPACE = """\
parameters:
  - {name: x, type: float, low: 0, high: 1}
  - {name: y, type: float, low: 0, high: 1}
objective: {name: f, direction: minimize}
"""
TYPO_SPACE = SPACE.replace("{name: y, type: float", "{name: y, type: flaot")


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a space file, objectives, a finished run and a finished comparison."""
    d = tmp_path_factory.mktemp("bad-input")
    (d / "space.yaml").write_text(SPACE)
    (d / "typo.yaml").write_text(TYPO_SPACE)
    (d / "obj.py").write_text("def f(p):\n    return (p['x'] - 0.3) ** 2 + p['y']\n")
    (d / "badimp.py").write_text("import no_such_module_bocli_xyz\n\ndef f(p):\n    return 1.0\n")
    (d / "afile.txt").write_text("not a study, not a folder\n")
    (d / "cbad").mkdir()
    (d / "cbad" / "compare.json").write_text("{bad json")
    old = os.getcwd()
    os.chdir(d)
    try:
        runner = CliRunner()
        r = runner.invoke(
            cli, ["run", "branin", "--budget", "2", "--init", "2", "-a", "random", "--out", "r1"]
        )
        assert r.exit_code == 0, r.output
        c = runner.invoke(
            cli,
            [
                *("compare", "--problems", "branin", "--acquisitions", "random", "--budget", "2"),
                *("--init", "2", "--seeds", "1", "--calibration-points", "0", "--out", "c0"),
            ],
        )
        assert c.exit_code == 0, c.output
    finally:
        os.chdir(old)
    return d


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under ``root``."""
    out: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = None if p.is_dir() else p.read_bytes()
    return out


def assert_unchanged(before: dict[str, bytes | None], after: dict[str, bytes | None]) -> None:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert not (added or removed or changed), f"added {added} removed {removed} changed {changed}"


RUN = ["run", "branin", "--budget", "2", "--init", "2", "-a", "random"]
OBJ = ["run", "obj:f", "--space", "space.yaml", "--budget", "2", "--init", "2", "-a", "random"]
CMD = ["run", "--space", "space.yaml", "--budget", "2", "--init", "2", "-a", "random"]
CMP = ["compare", "--problems", "branin", "--budget", "2", "--init", "2", "--seeds", "1"]

CASES: dict[str, list[str]] = {
    # ----- run: options and values
    "run-unknown-option": ["run", "--bogus"],
    "run-no-problem": ["run"],
    "run-unknown-problem": ["run", "nosuchproblem", "--out", "x"],
    "run-problem-bad-setting": ["run", "branin:dim=abc", "--out", "x"],
    "run-budget-0": [*RUN, "--budget", "0", "--out", "x"],
    "run-budget-text": [*RUN, "--budget", "ten", "--out", "x"],
    "run-batch-0": [*RUN, "--batch", "0", "--out", "x"],
    "run-workers-0": [*RUN, "--workers", "0", "--out", "x"],
    "run-init-negative": [*RUN, "--init", "-1", "--out", "x"],
    "run-seed-negative": [*RUN, "--seed", "-1", "--out", "x"],
    "run-seed-huge": [*RUN, "--seed", str(2**70), "--out", "x"],
    "run-surrogate-typo": [*RUN, "-s", "gpp", "--out", "x"],
    "run-acquisition-typo": [*RUN, "-a", "eii", "--out", "x"],
    "run-device-unknown": [*RUN, "--device", "tpu", "--out", "x"],
    "run-format-unknown": [*RUN, "--format", "xml", "--out", "x"],
    "run-timeout-0": [*OBJ, "--timeout", "0", "--out", "x"],
    "run-timeout-nan": [*OBJ, "--timeout", "nan", "--out", "x"],
    "run-timeout-inf": [*OBJ, "--timeout", "inf", "--out", "x"],
    "run-scheduler-local-abc": [*RUN, "--scheduler", "local:abc", "--out", "x"],
    "run-scheduler-local-0": [*RUN, "--scheduler", "local:0", "--out", "x"],
    "run-scheduler-unreachable": [*RUN, "--scheduler", "tcp://127.0.0.1:1", "--out", "x"],
    "run-scheduler-scheme": [*RUN, "--scheduler", "ftp://host:1", "--out", "x"],
    "run-scheduler-no-port": [*RUN, "--scheduler", "tcp://host", "--out", "x"],
    "run-surrogate-option-json": [*RUN, "--surrogate-option", "{bad", "--out", "x"],
    "run-surrogate-option-not-kv": [*RUN, "--surrogate-option", "[1]", "--out", "x"],
    "run-surrogate-option-key": [*RUN, "--surrogate-option", "foo=1", "--out", "x"],
    "run-surrogate-option-nan": [
        *RUN,
        "-s",
        "gp",
        "--surrogate-option",
        "min_noise=nan",
        "--out",
        "x",
    ],
    "run-acquisition-option-value": [
        "run",
        "branin",
        "-a",
        "ucb",
        "--acquisition-option",
        "beta=abc",
        "--out",
        "x",
    ],
    "run-acquisition-option-key": [
        "run",
        "branin",
        "-a",
        "ucb",
        "--acquisition-option",
        "zzz=1",
        "--out",
        "x",
    ],
    "run-pfn-checkpoint-missing": [
        "run",
        "branin",
        "-s",
        "pfn",
        "--surrogate-option",
        "checkpoint=missing.pt",
        "--out",
        "x",
    ],
    # ----- run: objectives and space files
    "run-objective-no-space": ["run", "obj:f", "--out", "x"],
    "run-objective-module-missing": [*OBJ[:1], "nomod:f", *OBJ[2:], "--out", "x"],
    "run-objective-import-fails": [*OBJ[:1], "badimp:f", *OBJ[2:], "--out", "x"],
    "run-objective-function-missing": [*OBJ[:1], "obj:g", *OBJ[2:], "--out", "x"],
    "run-space-typo": ["run", "obj:f", "--space", "typo.yaml", "--out", "x"],
    "run-space-missing": ["run", "obj:f", "--space", "missing.yaml", "--out", "x"],
    "run-space-not-yaml": ["run", "obj:f", "--space", "obj.py", "--out", "x"],
    "run-command-missing": [*CMD, "--command", "/no/such/program", "--out", "x"],
    "run-command-not-executable": [*CMD, "--command", "./space.yaml", "--out", "x"],
    "run-command-not-on-path": [*CMD, "--command", "no-such-program-bocli", "--out", "x"],
    "run-command-empty": [*CMD, "--command", "", "--out", "x"],
    "run-command-unclosed-quote": [*CMD, "--command", "'unclosed", "--out", "x"],
    "run-command-mode": [*CMD, "--command", "true", "--command-mode", "env", "--out", "x"],
    # ----- run: folders and studies
    "run-out-holds-a-run": [*RUN, "--out", "r1"],
    "run-out-is-a-file": [*RUN, "--out", "afile.txt"],
    "run-resume-nothing": ["run", "--out", "nodir", "--resume"],
    "run-resume-change-seed": ["run", "--out", "r1", "--resume", "--seed", "5"],
    "run-study-missing": ["run", "branin", "--study", "missing.db"],
    "run-study-not-a-study": ["run", "branin", "--study", "afile.txt"],
    "run-study-and-out": ["run", "branin", "--study", "r1/study.db", "--out", "x"],
    # ----- compare
    "compare-no-out": ["compare", "--problems", "branin"],
    "compare-no-problems": ["compare", "--out", "x"],
    "compare-unknown-problem": ["compare", "--problems", "branin,nope", "--out", "x"],
    "compare-unknown-surrogate": [*CMP, "--surrogates", "gp,nope", "--out", "x"],
    "compare-unknown-acquisition": [*CMP, "--acquisitions", "ei,nope", "--out", "x"],
    "compare-empty-list": ["compare", "--problems", ",", "--out", "x"],
    "compare-repeated": [*CMP, "--surrogates", "gp,gp", "--out", "x"],
    "compare-seeds-0": [*CMP, "--seeds", "0", "--out", "x"],
    "compare-budget-below-init": [*CMP, "--budget", "3", "--init", "5", "--out", "x"],
    "compare-preset-typo": ["compare", "--preset", "quik", "--out", "x"],
    "compare-table": [*CMP, "--table", "xlsx", "--out", "x"],
    "compare-scheduler-local-abc": [*CMP, "--scheduler", "local:abc", "--out", "x"],
    "compare-scheduler-unreachable": [*CMP, "--scheduler", "tcp://127.0.0.1:1", "--out", "x"],
    "compare-surrogate-option-key": [*CMP, "--surrogate-option", "gp.zzz=1", "--out", "x"],
    "compare-surrogate-option-form": [*CMP, "--surrogate-option", "gpzzz", "--out", "x"],
    "compare-acquisition-option-not-in-grid": [
        *CMP,
        "--acquisition-option",
        "ucb.beta=1",
        "--out",
        "x",
    ],
    "compare-acquisition-option-value": [
        *CMP,
        "--acquisitions",
        "ucb",
        "--acquisition-option",
        "ucb.beta=abc",
        "--out",
        "x",
    ],
    "compare-out-damaged": [*CMP, "--out", "cbad"],
    "compare-out-other-grid": [*CMP, "--budget", "5", "--out", "c0"],
    "compare-out-is-a-file": [*CMP, "--out", "afile.txt"],
    # ----- report
    "report-missing": ["report", "missing"],
    "report-file": ["report", "afile.txt"],
    "report-output-is-the-study": ["report", "r1", "-o", "r1/study.db"],
    "report-damaged": ["report", "cbad"],
    "report-format-json": ["report", "c0", "--format", "json"],
    "report-output-folder-missing": ["report", "c0", "-o", "nodir/report.html"],
    "report-output-is-a-folder": ["report", "c0", "-o", "c0"],
    # ----- pfn
    "pfn-unknown-subcommand": ["pfn", "nosub"],
    "pfn-info-missing": ["pfn", "info", "missing.pt"],
    "pfn-info-not-torch": ["pfn", "info", "afile.txt"],
    "pfn-info-format": ["pfn", "info", "--format", "xml"],
    "pfn-train-steps-0": ["pfn", "train", "--out", "pz", "--steps", "0"],
    "pfn-train-heads": ["pfn", "train", "--out", "pz", "--emsize", "10", "--heads", "4"],
    "pfn-train-lr-nan": ["pfn", "train", "--out", "pz", "--lr", "nan"],
    "pfn-train-lr-negative": ["pfn", "train", "--out", "pz", "--lr", "-1"],
    "pfn-train-max-minutes": ["pfn", "train", "--out", "pz", "--max-minutes", "-1"],
    "pfn-train-checkpoint-every": ["pfn", "train", "--out", "pz", "--checkpoint-every", "0"],
    "pfn-train-name": ["pfn", "train", "--out", "pz", "--name", "a/b"],
    "pfn-train-resume-nothing": ["pfn", "train", "--out", "pz", "--resume"],
    "pfn-train-out-file": ["pfn", "train", "--out", "afile.txt"],
    # ----- listings
    "problems-format": ["problems", "--format", "xml"],
    "surrogates-option": ["surrogates", "--bogus"],
    "acquisitions-argument": ["acquisitions", "extra"],
    "unknown-command": ["optimise"],
    "top-level-option": ["--bogus", "run"],
}
if not _has_cuda():
    CASES["run-device-cuda"] = [*RUN, "--device", "cuda", "--out", "x"]
    CASES["compare-device-cuda"] = [*CMP, "--device", "cuda", "--out", "x"]
    CASES["pfn-train-device-cuda"] = ["pfn", "train", "--out", "pz", "--device", "cuda"]


def check_refused(code: int, stderr: str, output: str) -> None:
    lines = stderr.splitlines()
    assert code == 2, (code, output)
    assert len(lines) == 1 and lines[0].strip(), stderr
    assert lines[0].startswith("Error: "), lines[0]
    assert "Traceback" not in output + stderr


def test_enough_cases() -> None:
    assert len(CASES) >= 45


@pytest.mark.parametrize("args", list(CASES.values()), ids=list(CASES))
def test_wrong_invocation_is_one_line(
    args: list[str], workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("XDG_CACHE_HOME", str(workdir / ".cache"))  # an internal error would show
    monkeypatch.delenv("BOCLI_DEBUG", raising=False)
    before = snapshot(workdir)
    result = CliRunner().invoke(cli, args)
    check_refused(result.exit_code, result.stderr, result.output)
    assert result.stdout == ""
    assert_unchanged(before, snapshot(workdir))


SUBPROCESS_CASES = {
    "run-budget-0": [*RUN, "--budget", "0", "--out", "x"],
    "run-module-missing": [*OBJ[:1], "nomod:f", *OBJ[2:], "--out", "x"],
    "compare-unknown-problem": ["compare", "--problems", "nope", "--out", "x"],
    "pfn-train-lr-nan": ["pfn", "train", "--out", "pz", "--lr", "nan"],
}


@pytest.mark.parametrize("args", list(SUBPROCESS_CASES.values()), ids=list(SUBPROCESS_CASES))
def test_wrong_invocation_in_a_real_process(args: list[str], workdir: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "XDG_CACHE_HOME": str(workdir / ".cache")}
    env.pop("BOCLI_DEBUG", None)
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    before = snapshot(workdir)
    p = subprocess.run(
        [sys.executable, "-m", "bocli", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    check_refused(p.returncode, p.stderr, p.stdout)
    assert p.stdout == ""
    assert_unchanged(before, snapshot(workdir))


# ----- random option values: validated and accepted, or refused with one line -----------------------
INTS = st.sampled_from(["0", "-1", "1", "2", "x", "1.5", "", " 1"])
TIMEOUTS = st.sampled_from(["nan", "inf", "-inf", "0", "-1", "1e-9", "5", "1e400", "abc"])
SCHEDULERS = st.sampled_from(
    ["local:abc", "local:0", "local:-1", "ftp://h:1", "tcp://127.0.0.1:1", "tcp://:1", "h", ":"]
)
DEVICES = st.sampled_from(["cpu", "auto", "gpu", "", "CPU"] + ([] if _has_cuda() else ["cuda"]))
SURROGATE_OPTIONS = st.one_of(
    st.sampled_from(["min_noise=1e-3", "min_noise=0", "min_noise=2", "min_noise=x", "{}", "{1}"]),
    st.text(max_size=12).map(lambda t: f"min_noise={t}"),
    st.text(max_size=12),
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    options=st.dictionaries(
        st.sampled_from(
            [
                *("--budget", "--batch", "--workers", "--init", "--seed", "--timeout"),
                *("--scheduler", "--device", "--surrogate-option"),
            ]
        ),
        st.none(),
        max_size=4,
    ).flatmap(
        lambda keys: st.fixed_dictionaries(
            {
                k: {
                    "--timeout": TIMEOUTS,
                    "--scheduler": SCHEDULERS,
                    "--device": DEVICES,
                    "--surrogate-option": SURROGATE_OPTIONS,
                }.get(k, INTS)
                for k in keys
            }
        )
    )
)
def test_random_run_options(options: dict[str, str]) -> None:
    """Any mix of values: a cheap run (random acquisition, at most 2 evaluations of branin, no
    model fitted) that is accepted and validated, or exit 2 with one line and nothing written."""
    if options.get("--workers") not in (None, "1", " 1"):
        options["--workers"] = "0"  # accepted values > 1 would start a process pool: not cheap
    args = ["run", "branin", "-a", "random", "--format", "json", "--out", "out"]
    args += ["--budget", "1", "--init", "1"]  # overridden by a drawn value (the last one wins)
    for key, value in options.items():
        args += [key, value]
    with tempfile.TemporaryDirectory() as tmp:
        old = os.getcwd()
        os.chdir(tmp)
        try:
            result = CliRunner().invoke(cli, args)
        finally:
            os.chdir(old)
        assert "Traceback" not in result.output
        if result.exit_code == 0:
            assert (Path(tmp) / "out" / "study.db").is_file()
            assert result.stdout.startswith("{")
        else:
            check_refused(result.exit_code, result.stderr, result.output)
            assert list(Path(tmp).iterdir()) == []
