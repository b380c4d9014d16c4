"""``optout registry …`` end to end: exit codes (0 ok/valid, 1 not valid, 2 usage/error), one-line errors, and the
export → verify round trip a rights holder would do."""

from __future__ import annotations

import http.server
import json
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler.cli import main
from optout_registry.note import Verifier, open_checkpoint
from optout_registry.registry import Registry
from tests.support.registry import ROBOTS, make_records, pg_schema_url

ROOT = Path(__file__).resolve().parent.parent


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["registry", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "reg.db"
    with Registry.open(path, batch_size=50) as reg:
        reg.append(make_records(60) + make_records(8, 60, site="other.org"), evidence=[ROBOTS])
    return str(path)


def test_key_and_checkpoint(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/new.db"
    code, vkey, err = run(capsys, "key", "--registry", url)
    assert code == 0 and err == ""
    assert run(capsys, "key", "--registry", url)[1] == vkey  # stable
    assert stat.S_IMODE((tmp_path / "new.db.key").stat().st_mode) == 0o600
    code, note, _ = run(capsys, "checkpoint", "--registry", url)
    cp = open_checkpoint(note, Verifier.from_vkey(vkey.strip()))
    assert code == 0 and cp.size == 0


def test_stats(capsys: pytest.CaptureFixture[str], db: str) -> None:
    code, out, _ = run(capsys, "stats", "--registry", db)
    assert code == 0 and "tree size       68" in out
    code, out, _ = run(capsys, "stats", "--registry", db, "--json")
    import json

    assert json.loads(out)["entries"] == 68


def test_records_human_and_json(capsys: pytest.CaptureFixture[str], db: str) -> None:
    code, out, err = run(capsys, "records", "--registry", db, "--site", "other.org")
    assert code == 0 and len(out.splitlines()) == 8 and "8 record(s)" in err
    assert out.splitlines()[0].startswith("#60  2026-11-") and "https://news.other.org/2026/60.html" in out
    code, out, _ = run(
        capsys,
        "records",
        "--registry",
        db,
        "--site",
        "www.example.net",
        "--json",
        "--since",
        "2026-11-01",
        "--until",
        "2026-11-01T23:59:59Z",
    )
    import json

    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["index"] for r in rows] == [0, 30] and rows[0]["record"]["target"]["site"] == "example.net"
    code, _, err = run(capsys, "records", "--registry", db, "--since", "last tuesday")
    assert code == 2 and err.count("\n") == 1 and "not a date" in err


def test_export_then_verify(capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path) -> None:
    vkey = run(capsys, "key", "--registry", db)[1].strip()
    kept = tmp_path / "kept-checkpoint.txt"
    kept.write_text(run(capsys, "checkpoint", "--registry", db)[1])
    with Registry.open(db) as reg:
        reg.append(make_records(30, 68))
    out_dir = tmp_path / "bundle"
    code, out, err = run(
        capsys, "export", "--registry", db, "--site", "example.net", "--out", str(out_dir), "--previous", str(kept)
    )
    assert code == 0, err
    assert "wrote 90 record(s) for example.net" in out
    summary = (out_dir / "summary.txt").read_text()
    assert "Opt-out registry export for example.net" in summary and vkey in summary
    (tmp_path / "vkey.txt").write_text(vkey + "\n")
    code, out, err = run(capsys, "verify", str(out_dir), "--vkey", str(tmp_path / "vkey.txt"), "--previous", str(kept))
    assert code == 0, out + err
    assert "VALID: 90 record(s) verified" in out and "consistent with checkpoint.txt (size 68 -> 98)" in out
    # a holder edits a record: not valid, and the reason is on stderr in one line
    record = out_dir / "records" / "3.json"
    record.write_bytes(record.read_bytes().replace(b"not_fetched", b"fetched_not_stored"))
    code, out, err = run(capsys, "verify", str(out_dir), "--vkey", vkey)
    assert code == 1
    assert err.count("\n") == 1 and "not valid: records/3.json" in err
    assert "NOT VALID" in out
    # a wrong pinned key is "not valid" too
    from optout_registry.note import Signer

    other = Signer.generate("someone.else/log").vkey()
    assert run(capsys, "verify", str(out_dir), "--vkey", other)[0] == 1


def test_export_refuses_a_non_empty_directory(capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    code, _, err = run(capsys, "export", "--registry", db, "--site", "example.net", "--out", str(tmp_path / "taken"))
    assert code == 2 and "not empty" in err and err.count("\n") == 1


def test_check_and_tampered_registry(capsys: pytest.CaptureFixture[str], db: str) -> None:
    code, out, _ = run(capsys, "check", "--registry", db, "--full")
    assert code == 0 and "ok: registry of size 68" in out
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER entry_no_update")
    conn.execute("UPDATE entry SET leaf = CAST(replace(CAST(leaf AS TEXT), 'node-1', 'node-2') AS BLOB) WHERE idx = 7")
    conn.commit()
    conn.close()
    code, _, err = run(capsys, "check", "--registry", db)  # quick: entry 7 sits in the newest (right-edge) tile
    assert code == 1 and "newest entries (0..67) do not hash to the stored tile 0/0" in err
    code, _, err = run(capsys, "check", "--registry", db, "--full")
    assert code == 1 and "partial tile 0/0 differs" in err and "root of the latest checkpoint" in err


def test_start_up_check_failure_is_exit_1(capsys: pytest.CaptureFixture[str], db: str) -> None:
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER entry_no_delete")
    conn.execute("DELETE FROM entry WHERE idx = 67")
    conn.commit()
    conn.close()
    code, out, err = run(capsys, "stats", "--registry", db)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "not valid: start-up self-check failed" in err


def test_usage_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for args in (
        ("stats", "--registry", str(tmp_path / "missing.db")),
        ("stats", "--registry", "mysql://db/x"),
        ("records", "--registry", "sqlite://nohost/x.db"),
        ("verify", str(tmp_path / "no-such-dir"), "--vkey", "x+1+2"),
        ("export", "--registry", str(tmp_path / "missing.db"), "--site", "a.com", "--out", str(tmp_path / "o")),
    ):
        code, _out, err = run(capsys, *args)
        assert code == 2, args
        assert err.count("\n") == 1 and "Traceback" not in err, (args, err)
    assert run(capsys)[0] == 2  # no subcommand


def test_default_registry_url(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPTOUT_REGISTRY_URL", raising=False)
    monkeypatch.delenv("OPTOUT_REGISTRY_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "key")[0] == 0
    assert (tmp_path / "optout-registry.db").exists() and (tmp_path / "optout-registry.db.key").exists()
    monkeypatch.setenv("OPTOUT_REGISTRY_URL", f"sqlite://{tmp_path}/env.db")
    assert run(capsys, "key")[0] == 0 and (tmp_path / "env.db").exists()


class _GarbageTSA(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b"not a timestamp response"
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def garbage_tsa() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _GarbageTSA)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/tsa"
    server.shutdown()
    server.server_close()


def test_rfc3161_anchoring_errors(capsys: pytest.CaptureFixture[str], db: str, garbage_tsa: str) -> None:
    """No real TSA is reachable from tests: check that failures are clean and store nothing."""
    code, _out, err = run(capsys, "checkpoint", "--registry", db, "--tsa", garbage_tsa)
    assert code == 2 and "did not send a valid RFC 3161 response" in err and err.count("\n") == 1
    code, _, err = run(capsys, "checkpoint", "--registry", db, "--tsa", "http://127.0.0.1:1/tsa")
    assert code == 2 and "cannot reach TSA" in err
    with Registry.open(db) as reg:
        assert reg.stats()["anchors"] == 0


def test_real_process_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "crawler.cli", "registry", "records", "--registry", str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("optout registry records: error: no registry")


def test_postgres_through_the_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    gen = pg_schema_url()
    url = next(gen)
    try:
        key = str(tmp_path / "pg.key")
        with Registry.open(url, key=key) as reg:
            reg.append(make_records(12), evidence=[ROBOTS])
        code, out, _ = run(capsys, "stats", "--registry", url, "--key", key, "--json")
        assert code == 0 and '"pending": 12' in out
        code, note, _ = run(capsys, "checkpoint", "--registry", url, "--key", key)
        assert code == 0 and note.splitlines()[1] == "12"
        vkey = run(capsys, "key", "--registry", url, "--key", key)[1].strip()
        out_dir = tmp_path / "pg-bundle"
        assert (
            run(capsys, "export", "--registry", url, "--key", key, "--site", "example.net", "--out", str(out_dir))[0]
            == 0
        )
        assert run(capsys, "verify", str(out_dir), "--vkey", vkey)[0] == 0
    finally:
        for _ in gen:
            pass


def test_stats_shows_the_file_that_is_opened(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sqlite:////abs (four slashes) and a relative path both show as the absolute path of the file opened."""
    monkeypatch.chdir(tmp_path)
    for url in (f"sqlite:///{tmp_path / 'reg.db'}", "reg.db", "sqlite:reg.db"):
        code, out, _ = run(capsys, "stats", "--registry", url, "--json")
        stats = json.loads(out)
        assert code == 0 and stats["location"] == str(tmp_path / "reg.db"), (url, stats["location"])
        assert stats["key_file"] == str(tmp_path / "reg.db.key"), (url, stats["key_file"])
    code, _, err = run(capsys, "stats", "--registry", "sqlite:///reg.db")  # three slashes: an absolute path
    assert code != 0 and "sqlite:reg.db" in err, err
