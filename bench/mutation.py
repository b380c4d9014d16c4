"""Mutation testing of the pure parsers, the policy combiner and the registry's Merkle and verify code (issue 14).

A line that every test passes with, whatever it says, is a rule nobody checks. This runs mutmut (the ``dev``
extra) on one module at a time, each against only the fast unit tests that cover it, and prints the mutation score
per module. It is a developer tool, not a CI step: a full run takes far longer than the suite.

Each module runs in its own throw-away copy of the tree under ``--workdir`` (mutmut writes a ``mutants/`` folder
and a config next to the code, which must not land in a working tree that others share). The machine is small
and shared, so each module gets a time budget: when it runs out, mutmut is interrupted and the mutants it did not
reach are reported as "not run", never counted as killed or survived.

    python bench/mutation.py                       # every module, 240 s each
    python bench/mutation.py blocklist policy      # some modules (names as in the table)
    python bench/mutation.py blocklist --survivors # also print the diff of every surviving mutant

Score = killed / (killed + survived). "Survived" includes mutants no selected test even executes.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = [sys.executable, "-c", "import sys; from mutmut.__main__ import cli; sys.exit(cli())"]

# module name -> (source file, the fast unit tests that exercise it)
MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "access": ("middlewares/protocols/access.py", ("test_access.py",)),
    "ai_txt": ("middlewares/protocols/ai_txt.py", ("test_ai_txt.py",)),
    "blocklist": ("middlewares/protocols/blocklist.py", ("test_blocklist.py",)),
    "bytesearch": ("middlewares/protocols/bytesearch.py", ("test_bytesearch.py",)),
    "c2pa": ("middlewares/protocols/c2pa.py", ("test_media.py",)),
    "content_signal": ("middlewares/protocols/content_signal.py", ("test_content_signal.py",)),
    "content_usage": ("middlewares/protocols/content_usage.py", ("test_content_usage.py",)),
    "html": ("middlewares/protocols/html.py", ("test_html.py", "test_robots_tag.py", "test_rsl.py")),
    "iptc": ("middlewares/protocols/iptc.py", ("test_media.py",)),
    "media": ("middlewares/protocols/media.py", ("test_media.py",)),
    "pathmatch": ("middlewares/protocols/pathmatch.py", ("test_pathmatch.py", "test_robots_google.py")),
    "robots_parse": ("middlewares/protocols/robots_parse.py", ("test_robots.py", "test_robots_google.py")),
    "robots_match": ("middlewares/protocols/robots_match.py", ("test_robots.py", "test_robots_google.py")),
    "robots_signals": ("middlewares/protocols/robots_signals.py", ("test_robots.py", "test_policy.py")),
    "robots_tag": ("middlewares/protocols/robots_tag.py", ("test_robots_tag.py",)),
    "rsl": ("middlewares/protocols/rsl.py", ("test_rsl.py",)),
    "signals": ("middlewares/protocols/signals.py", ("test_policy.py", "test_tdmrep.py")),
    "tdmrep": ("middlewares/protocols/tdmrep.py", ("test_tdmrep.py",)),
    "xmp": ("middlewares/protocols/xmp.py", ("test_media.py", "test_tdmrep.py")),
    "policy": ("middlewares/policy.py", ("test_policy.py",)),
    "merkle": ("optout_registry/merkle.py", ("test_registry_merkle.py", "test_registry_verify.py")),
    "verify": ("optout_registry/verify.py", ("test_registry_verify.py",)),
}

# Tests that read a module's source for its imports: mutmut's rewritten copy imports mutmut, so they always fail.
SKIP = "not _imports"

KILLED = {"killed", "timeout", "segfault", "caught by type check"}
SURVIVED = {"survived", "no tests"}
NOT_RUN = {"not checked", "check was interrupted by user", "skipped"}
_RESULT_LINE = re.compile(r"^\s+(\S+): (.+)$")


@dataclass
class Score:
    module: str
    statuses: dict[str, str]  # mutant name -> mutmut status
    seconds: float
    out_of_time: bool

    def count(self, group: set[str]) -> int:
        return sum(1 for status in self.statuses.values() if status in group)

    @property
    def killed(self) -> int:
        return self.count(KILLED)

    @property
    def survived(self) -> int:
        return self.count(SURVIVED)

    @property
    def not_run(self) -> int:
        return self.count(NOT_RUN)

    @property
    def other(self) -> int:
        """Mutants mutmut calls suspicious: the tests failed oddly, so they count neither way."""
        return len(self.statuses) - self.killed - self.survived - self.not_run

    @property
    def score(self) -> float | None:
        tested = self.killed + self.survived
        return self.killed / tested if tested else None

    def survivors(self) -> list[str]:
        return sorted(name for name, status in self.statuses.items() if status in SURVIVED)


def prepare(root: Path, workdir: Path, source: str, tests: tuple[str, ...]) -> None:
    """A fresh copy of the packages and tests, with a config that mutates ``source`` only."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    for package in ("middlewares", "optout_registry", "crawler", "tests"):
        shutil.copytree(root / package, workdir / package, ignore=ignore)
    lines = [
        "[tool.mutmut]",
        'source_paths = ["middlewares", "optout_registry"]',
        f'only_mutate = ["{source}"]',
        'also_copy = ["crawler/"]',
        "use_git_change_detection = false",
        f'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-k", "{SKIP}"]',
        "pytest_add_cli_args_test_selection = [" + ", ".join(f'"tests/{t}"' for t in tests) + "]",
    ]
    (workdir / "pyproject.toml").write_text("\n".join(lines) + "\n", "utf-8")


def run_mutmut(workdir: Path, budget: float, children: int, log: Path) -> tuple[float, bool]:
    """Run mutmut until done or out of budget; an interrupt keeps the results it has so far."""
    start = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*MUTMUT, "run", "--max-children", str(children)],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=budget)
            return time.monotonic() - start, False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            return time.monotonic() - start, True


def read_results(workdir: Path) -> dict[str, str]:
    proc = subprocess.run([*MUTMUT, "results", "--all", "true"], cwd=workdir, capture_output=True, text=True)
    statuses = {}
    for line in proc.stdout.splitlines():
        match = _RESULT_LINE.match(line)
        if match:
            statuses[match.group(1)] = match.group(2).strip()
    return statuses


def show(workdir: Path, mutant: str) -> str:
    return subprocess.run([*MUTMUT, "show", mutant], cwd=workdir, capture_output=True, text=True).stdout


def fmt(score: float | None) -> str:
    return "-" if score is None else f"{100 * score:.1f}%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help=f"default: all of {', '.join(MODULES)}")
    parser.add_argument("--budget", type=float, default=240.0, help="seconds per module (default 240)")
    parser.add_argument("--children", type=int, default=1, help="parallel mutmut workers (default 1)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/optout-mutation"))
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="tree to test, e.g. an earlier commit's `git archive` (default: here)"
    )
    parser.add_argument("--survivors", action="store_true", help="print the diff of each surviving mutant")
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s): {', '.join(unknown)}")
    try:
        import mutmut  # noqa: F401
    except ImportError:
        parser.error("mutmut is not installed: pip install -e '.[dev]'")

    scores = []
    for name in args.modules or list(MODULES):
        source, tests = MODULES[name]
        workdir = args.workdir / name
        prepare(args.root, workdir, source, tests)
        seconds, out_of_time = run_mutmut(workdir, args.budget, args.children, args.workdir / f"{name}.log")
        score = Score(name, read_results(workdir), seconds, out_of_time)
        scores.append(score)
        budget_note = f", budget of {args.budget:.0f} s ran out" if out_of_time else ""
        print(
            f"{name}: {len(score.statuses)} mutants, {score.killed} killed, {score.survived} survived, "
            f"{score.not_run} not run, score {fmt(score.score)} ({seconds:.0f} s{budget_note})",
            flush=True,
        )
        if not score.statuses:
            print(f"  no results: see {args.workdir / f'{name}.log'}", flush=True)
        if args.survivors:
            for mutant in score.survivors():
                print(show(workdir, mutant), flush=True)

    print()
    print(f"Mutation testing, mutmut, {datetime.date.today().isoformat()}")
    print()
    print("| module | mutants | killed | survived | not run | score |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for s in scores:
        print(
            f"| `{MODULES[s.module][0]}` | {len(s.statuses)} | {s.killed} | {s.survived} | {s.not_run} | "
            f"{fmt(s.score)} |"
        )
    others = sum(s.other for s in scores)
    if others:
        print(f"\n{others} mutant(s) marked suspicious by mutmut are in 'mutants' only.")
    if any(s.out_of_time for s in scores):
        print("\nOut of time for: " + ", ".join(s.module for s in scores if s.out_of_time) + " (see 'not run').")
    return 0


if __name__ == "__main__":
    sys.exit(main())
