"""The page's bundled proof checker (static/verify.js) run under Node against the Python registry: the §8
vectors, every inclusion proof of a 300-entry log at several sizes (around the 256-leaf tile boundary),
consistency between signed checkpoints, and mutations that must all be refused — with WebCrypto's Ed25519 and
with the bundled RFC 8032 implementation. (The same file runs in Chromium in test_service_browser.py.)"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from optout_registry.proof import format_proof
from optout_registry.registry import Registry
from tests.support.registry import make_records

VERIFY_JS = Path(__file__).resolve().parent.parent / "optout_registry" / "service" / "static" / "verify.js"
VKEY8 = "example.org/optout-registry-test+f71aa335+ATU3X3uXFRrwJ0IuNRTfkD9bheb/pT3ZMptMWqCoH/b+"
CP8 = (
    "example.org/optout-registry-test\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n"
    "\u2014 example.org/optout-registry-test 9xqjNdsjr/y2WwaiqWG5735IMVjFbUYbbhNaZBvJOgJOK7TPoocyAMRFZojhVeNE2LW2Om"
    "dMUZ3EVoC73ibOaQLPKwg=\n"
)
PROOF8 = (
    "c2sp.org/tlog-proof@v1\nindex 5\nvBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=\n"
    "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=\n037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=\n\n" + CP8
)

RUNNER = r"""
const fs = require("fs"), vm = require("vm");
vm.runInThisContext(fs.readFileSync(process.argv[1], "utf8"));
const V = globalThis.OptoutVerify;
const input = JSON.parse(fs.readFileSync(0, "utf8"));
(async () => {
  const out = {records: [], history: [], vector: null};
  for (const r of input.records) {
    const res = await V.verifyRecord(r, {forceBundled: !!r.bundled});
    const via = res.steps.map(s => s.detail).join(" | ");
    out.records.push({ok: res.ok, last: res.steps[res.steps.length - 1].detail, via});
  }
  for (const h of input.history) {
    try {
      await V.verifyHistory(h.old, h.new, h.proof, input.vkey, {forceBundled: !!h.bundled});
      out.history.push(true);
    } catch (e) { out.history.push(e.message); }
  }
  const v = input.vector;
  const leaf = new Uint8Array([0x40, 0x41, 0x42, 0x43]);
  const p = V.parseTlogProof(v.proof);
  const cp = await V.openCheckpoint(p.checkpoint, v.vkey);
  const root = await V.rootFromInclusionProof(p.index, cp.size, await V.leafHash(leaf), p.hashes);
  out.vector = {root: V.b64encode(root), size: cp.size.toString(), signedRoot: V.b64encode(cp.root)};
  process.stdout.write(JSON.stringify(out));
})().catch(e => { process.stderr.write(String(e && e.stack || e)); process.exit(3); });
"""


def run_node(payload: dict[str, Any]) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        print("SKIP verify.js tests: node is not installed")
        pytest.skip("node is not installed")
    proc = subprocess.run(
        [node, "-e", RUNNER, str(VERIFY_JS)], input=json.dumps(payload), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_verify_js_against_the_registry(tmp_path: Path) -> None:
    with Registry.open(tmp_path / "reg.db", batch_size=100) as reg:
        reg.append(make_records(300))
        vkey = reg.vkey
        cps = {size: note for size, _, note in reg._store.checkpoints()}
        assert sorted(cps) == [100, 200, 300]
        records, expect = [], []
        for size in (100, 300):
            note = cps[size]
            for index in sorted({0, 1, 98, 99, size - 1, size // 2, 255 % size, 256 % size}):
                leaf = reg.leaf(index)
                proof = reg.inclusion_proof(index, size)
                item = {
                    "leaf": leaf.decode(),
                    "index": index,
                    "tlogProof": format_proof(index, proof, note),
                    "checkpoint": note,
                    "vkey": vkey,
                    "site": "example.net",
                    "bundled": index == 1,
                }
                records.append(item)
                expect.append(True)
        good = records[-1]
        flipped = base64.b64encode(bytes([proof[0][0] ^ 1]) + proof[0][1:]).decode()
        wrong_key = "optout-registry.local/x+00000000+" + vkey.split("+", 2)[2]
        mutations = [
            {**good, "leaf": good["leaf"].replace("not_fetched", "purged")},  # doctored record
            {**good, "index": good["index"] - 1},  # proof for another index
            {**good, "tlogProof": good["tlogProof"].replace(base64.b64encode(proof[0]).decode(), flipped)},
            {**good, "tlogProof": good["tlogProof"].replace("\n300\n", "\n301\n")},  # size altered: signature breaks
            {**good, "tlogProof": good["tlogProof"].replace(cps[300], cps[200])},  # embedded checkpoint != shown
            {**good, "vkey": wrong_key},
            {**good, "site": "other.org"},
            {**good, "bundled": True, "tlogProof": good["tlogProof"].replace("\n300\n", "\n301\n")},
            {**good, "tlogProof": good["tlogProof"].replace("index 299\n", "index 299\n" + flipped + "\n")},
        ]
        records += mutations
        expect += [False] * len(mutations)
        history = [
            {
                "old": cps[100],
                "new": cps[300],
                "proof": [base64.b64encode(h).decode() for h in reg.consistency_proof(100, 300)],
            },
            {
                "old": cps[200],
                "new": cps[300],
                "proof": [base64.b64encode(h).decode() for h in reg.consistency_proof(200, 300)],
                "bundled": True,
            },
            {
                "old": cps[100],
                "new": cps[300],
                "proof": [base64.b64encode(h).decode() for h in reg.consistency_proof(200, 300)],
            },
            {
                "old": cps[200],
                "new": cps[300],
                "proof": [base64.b64encode(h).decode() for h in reg.consistency_proof(200, 300)][:-1],
            },
        ]
    out = run_node({"records": records, "history": history, "vkey": vkey, "vector": {"proof": PROOF8, "vkey": VKEY8}})
    assert [r["ok"] for r in out["records"]] == expect, [
        r for r, e in zip(out["records"], expect, strict=True) if r["ok"] != e
    ]
    assert "bundled Ed25519" in out["records"][1]["via"] and "WebCrypto Ed25519" in out["records"][0]["via"]
    assert out["history"][:2] == [True, True] and all(h is not True for h in out["history"][2:]), out["history"]
    assert out["vector"] == {
        "root": "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
        "size": "8",
        "signedRoot": "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
    }
