"""Bad command-line values (issue 13, part 7): every one a user can type is refused as ONE line on stderr that names
it, exit status 2, no traceback, and nothing is started, written or served with it.

Most cases run ``crawler.cli.main`` in-process (the function the ``optout`` script calls), with the server and the
crawl replaced by a sentinel that fails the test if a bad value got that far. A few run the real process, as a user
would."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler.cli import main
from optout_registry import cliargs
from optout_registry.registry import Registry
from tests.support.registry import ROBOTS, make_records
from tests.support.run import run_cli

UNREACHABLE = "http://127.0.0.1:1/"


class Started(BaseException):
    """Raised instead of starting a server or a crawl: a BaseException, so no CLI handler turns it into a message."""


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Placeholders the cases refer to, and no server or crawl can really start."""
    import uvicorn

    import crawler.crawl

    def started(*args: object, **kwargs: object) -> None:
        raise Started(args)

    monkeypatch.setattr(uvicorn, "run", started)
    monkeypatch.setattr(crawler.crawl, "run_crawl", started)
    monkeypatch.delenv("OPTOUT_REGISTRY_URL", raising=False)
    monkeypatch.delenv("OPTOUT_SERVICE_ADMIN_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    reg = tmp_path / "reg.db"
    with Registry.open(reg, key=tmp_path / "reg.key") as r:
        r.append(make_records(3), evidence=[ROBOTS])
        r.checkpoint()
    (tmp_path / "blocker").write_text("a file where a folder must be")
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00 not text" * 4)
    (tmp_path / "text.db").write_text("not a database\n")
    with socket.socket() as s:  # a port nobody listens on, so only the bad value can fail the command
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    yield {
        "reg": str(reg),
        "out": str(tmp_path / "out"),
        "blocker": str(tmp_path / "blocker"),
        "empty": str(tmp_path / "empty"),
        "binary": str(tmp_path / "binary"),
        "notdb": str(tmp_path / "text.db"),
        "port": port,
    }


def run_main(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


def assert_refused(code: int, err: str, *named: str) -> None:
    assert code == 2, (code, err)
    assert "Traceback" not in err and "internal error" not in err, err
    assert err.endswith("\n") and err.count("\n") == 1, err
    for text in named:  # the value (or option) as a token of its own, not inside another word or number
        assert re.search(rf"(?<![\w.-]){re.escape(text)}(?![\w-])", err), (text, err)


SERVE = ["serve", "--registry", "{reg}", "--port", "{port}"]
EXPORT = ["registry", "export", "--registry", "{reg}", "--site", "a.com"]
# (arguments, what the error line must name); {name} is one of the `files` placeholders.
CASES = {
    # values that were accepted and did something else than asked
    "serve port out of range": ([*SERVE, "--port", "99999"], ["--port", "99999"]),
    "serve port 0": ([*SERVE, "--port", "0"], ["--port", "0"]),
    "serve no workers": ([*SERVE, "--workers", "0"], ["--workers", "0"]),
    "serve negative challenge ttl": ([*SERVE, "--challenge-ttl", "-5"], ["--challenge-ttl", "-5"]),
    "serve zero token ttl": ([*SERVE, "--token-ttl", "0"], ["--token-ttl", "0"]),
    "serve zero burst": ([*SERVE, "--burst", "0"], ["--burst", "0"]),
    "serve nan rate": ([*SERVE, "--rate-limit", "nan"], ["--rate-limit", "nan"]),
    "serve empty admin token file": ([*SERVE, "--admin-token-file", "{empty}"], ["'{empty}'"]),
    "serve contact": ([*SERVE, "--contact", "notanemail"], ["--contact", "notanemail"]),
    "registry records empty site": (["registry", "records", "--registry", "{reg}", "--site", ""], ["--site", "''"]),
    "registry export empty site": (
        ["registry", "export", "--registry", "{reg}", "--site", " ", "--out", "{out}"],
        ["--site", "' '"],
    ),
    "disclose javascript info url": (
        ["disclose", "--out", "{out}", "--info-url", "javascript:alert(1)"],
        ["--info-url", "javascript:alert(1)"],
    ),
    "disclose ip range": (["disclose", "--out", "{out}", "--ip-range", "notanip"], ["--ip-range", "'notanip'"]),
    "disclose ip range host bits": (
        ["disclose", "--out", "{out}", "--ip-range", "192.0.2.1/24"],
        ["--ip-range", "192.0.2.1/24"],
    ),
    "disclose contact": (["disclose", "--out", "{out}", "--contact", "notanemail"], ["--contact", "notanemail"]),
    "disclose complaints": (
        ["disclose", "--out", "{out}", "--complaints", "ftp://example.org/x"],
        ["--complaints", "ftp://example.org/x"],
    ),
    "disclose empty mode": (["disclose", "--out", "{out}", "--mode", ""], ["--mode", "''"]),
    "crawl no concurrency": (["crawl", UNREACHABLE, "--out", "{out}", "--concurrency", "0"], ["--concurrency", "0"]),
    "crawl endless delay": (["crawl", UNREACHABLE, "--out", "{out}", "--delay", "inf"], ["--delay", "inf"]),
    "crawl javascript info url": (
        ["crawl", UNREACHABLE, "--out", "{out}", "--info-url", "javascript:x"],
        ["--info-url", "javascript:x"],
    ),
    "crawl empty out": (["crawl", UNREACHABLE, "--out", ""], ["--out", "''"]),
    "crawl negative depth": (["crawl", UNREACHABLE, "--out", "{out}", "--depth", "-1"], ["--depth", "-1"]),
    # values that ended in "internal error: <exception>"
    "check endless timeout (OverflowError)": (["check", "--timeout", "inf", UNREACHABLE], ["--timeout", "inf"]),
    "registry checkpoint endless interval (OverflowError)": (
        ["registry", "checkpoint", "--registry", "{reg}", "--every", "1e300"],
        ["--every", "1e300"],
    ),
    "registry records date before year 1 in UTC (OverflowError)": (
        ["registry", "records", "--registry", "{reg}", "--until", "0001-01-01T00:00:00+01:00"],
        ["--until", "0001-01-01T00:00:00+01:00"],
    ),
    "registry export date after year 9999 in UTC (OverflowError)": (
        [*EXPORT, "--out", "{out}", "--since", "9999-12-31T23:59:59-01:00"],
        ["--since", "9999-12-31T23:59:59-01:00"],
    ),
    "registry key under a file (FileExistsError)": (
        ["registry", "key", "--registry", "{blocker}/x.db"],
        ["{blocker}"],
    ),
    "registry export under a file (FileExistsError)": (
        [*EXPORT, "--out", "{blocker}/x"],
        ["{blocker}"],
    ),
    "disclose relative settings module (TypeError)": (
        ["disclose", "--out", "{out}", "--settings", ".nope"],
        ["'.nope'"],
    ),
    "serve binary admin token file (UnicodeDecodeError)": (
        [*SERVE, "--admin-token-file", "{binary}"],
        ["'{binary}'"],
    ),
    "serve unknown log level (KeyError)": ([*SERVE, "--log-level", "bogus"], ["--log-level", "'bogus'"]),
    "serve service db not SQLite (DatabaseError)": ([*SERVE, "--service-db", "{notdb}"], ["{notdb}"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_value_is_one_line_exit_2(case: str, files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    args, named = CASES[case]
    code, err = run_main(capsys, [a.format(**files) for a in args])
    assert_refused(code, err, *(n.format(**files) for n in named))
    assert not Path(files["out"]).exists()  # nothing was written with the bad value


def test_debug_still_shows_the_traceback_of_an_unexpected_error(
    files: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-line rule is for errors a user causes; --debug keeps its promise for everything else."""
    import optout_registry.cli

    def broken(args: object) -> int:
        raise KeyError("bug")

    monkeypatch.setitem(optout_registry.cli._HANDLERS, "stats", broken)
    code, err = run_main(capsys, ["registry", "stats", "--registry", files["reg"]])
    assert code == 2 and "internal error: KeyError" in err and err.count("\n") == 1
    with pytest.raises(KeyError):
        main(["--debug", "registry", "stats", "--registry", files["reg"]])


def test_settings_values_are_checked_like_options(
    files: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What `optout disclose` publishes must not depend on whether it came from an option or a settings module."""
    (tmp_path / "badsettings.py").write_text(
        "from crawler.settings import *\nOPTOUT_INFO_URL = 'javascript:alert(1)'\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code, err = run_main(capsys, ["disclose", "--out", files["out"], "--settings", "badsettings"])
    assert_refused(code, err, "OPTOUT_INFO_URL", "javascript:alert(1)")
    code, err = run_main(
        capsys, ["disclose", "--out", files["out"], "--settings", "badsettings", "--info-url", "https://a.example/"]
    )
    assert code == 0, err  # the option overrides the setting


def test_good_values_still_pass(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """The checks refuse the bad, not the unusual: the edges of every range, IPv6, URLs as contact."""
    assert cliargs.port("1") == 1 and cliargs.port("65535") == 65535
    with pytest.raises(Started) as started:
        main([*(a.format(**files) for a in SERVE), "--workers", "1", "--challenge-ttl", "1", "--rate-limit", "0"])
    assert started.value.args[0][0] is not None  # uvicorn.run got the app
    args = ["disclose", "--out", files["out"], "--ip-range", "2001:db8::/32", "--ip-range", "192.0.2.7"]
    args += ["--contact", "https://example.org/contact", "--complaints", "legal+ai@example.co.uk"]
    args += ["--info-url", "https://example.org/bot"]
    code, err = run_main(capsys, args)
    assert code == 0, err
    data = (Path(files["out"]) / "crawler.json").read_text()
    assert '"2001:db8::/32"' in data and '"192.0.2.7/32"' in data
    with pytest.raises(Started):
        main(["crawl", UNREACHABLE, "--out", files["out"] + "-crawl", "--concurrency", "1", "--delay", "0"])


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ([*EXPORT, "--out", "{blocker}/x"], "{blocker}"),
        (["serve", "--registry", "{reg}", "--port", "99999"], "99999"),
        (["disclose", "--out", "{out}", "--ip-range", "notanip"], "notanip"),
    ],
)
def test_in_a_real_process(args: list[str], named: str, files: dict[str, str]) -> None:
    proc = run_cli(*(a.format(**files) for a in args), timeout=30)
    assert_refused(proc.returncode, proc.stderr, named.format(**files))
