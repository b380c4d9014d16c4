"""The tlog-proof format (§8 vector) and the offline export verifier: a valid export passes; every kind of
tampering or corruption is reported as a problem, never as a traceback. Exports are built here by hand from the
core modules; end-to-end tamper tests against the real storage live with the storage code."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
import rfc8785

from optout_registry import merkle, proof, record, sitemap
from optout_registry import verify as verify_module
from optout_registry.merkle import VerificationError, leaf_hash
from optout_registry.note import Checkpoint, Signer, open_checkpoint
from optout_registry.tiles import TileBuilder, TileReader
from optout_registry.verify import main, verify_export

SEED = hashlib.sha256(b"optout-registry test key v1").digest()
NAME = "example.org/optout-registry-test"
VKEY = "example.org/optout-registry-test+f71aa335+ATU3X3uXFRrwJ0IuNRTfkD9bheb/pT3ZMptMWqCoH/b+"
NOTE8 = (
    "example.org/optout-registry-test\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n"
    "\u2014 example.org/optout-registry-test 9xqjNdsjr/y2WwaiqWG5735IMVjFbUYbbhNaZBvJOgJOK7TPoocyAMRFZojhVeNE2LW2OmdM"
    "UZ3EVoC73ibOaQLPKwg=\n"
)
PROOF5 = (
    "c2sp.org/tlog-proof@v1\n"
    "index 5\n"
    "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=\n"
    "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=\n"
    "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=\n"
    "\n" + NOTE8
)
INPUTS8 = [bytes.fromhex(x) for x in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657")]
INPUTS8.append(bytes.fromhex("606162636465666768696a6b6c6d6e6f"))


# --- tlog-proof ---------------------------------------------------------------------------------------------------


def test_section8_tlog_proof_is_exact_and_verifies():
    leaves = [leaf_hash(x) for x in INPUTS8]
    store: dict = {}
    store.update(TileBuilder(0, lambda lv, n: store.get((lv, n))).add(leaves))
    reader = TileReader(8, lambda lv, n: store.get((lv, n)))
    text = proof.format_proof(5, reader.inclusion_proof(5), NOTE8)
    assert text == PROOF5
    index, hashes, checkpoint_text = proof.parse_proof(PROOF5)
    assert index == 5 and checkpoint_text == NOTE8
    checkpoint = open_checkpoint(checkpoint_text, Signer.from_seed(NAME, SEED).verifier())
    assert leaf_hash(bytes.fromhex("40414243")).hex().startswith("4271a26b")
    merkle.verify_inclusion(index, checkpoint.size, leaf_hash(INPUTS8[5]), hashes, checkpoint.root)
    with pytest.raises(VerificationError):
        merkle.verify_inclusion(4, checkpoint.size, leaf_hash(INPUTS8[5]), hashes, checkpoint.root)


def test_tlog_proof_extra_line_and_round_trips():
    text = proof.format_proof(0, [], NOTE8, extra=b"context")
    assert text.splitlines()[1] == "extra Y29udGV4dA=="
    assert proof.parse_proof(text) == (0, [], NOTE8)
    assert proof.parse_proof_extra(text)[3] == b"context"
    assert proof.parse_proof(text.encode()) == (0, [], NOTE8)


@pytest.mark.parametrize(
    "text",
    [
        PROOF5.replace("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2"),
        PROOF5.replace("index 5", "index 05"),
        PROOF5.replace("index 5", "index -5"),
        PROOF5.replace("index 5", "index  5"),
        PROOF5.replace("index 5", "Index 5"),
        PROOF5.replace("index 5\n", ""),
        PROOF5.replace("vBoGQ7Eu", "vBoGQ7E*"),
        PROOF5.replace("=\nyoVO", "\nyoVO"),  # missing padding
        PROOF5.replace("vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=", "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZ"),
        PROOF5.split("\n\n")[0],  # truncated: no checkpoint
        PROOF5.split("\n\n")[0] + "\n\n",
        PROOF5[:40],
        "",
        "c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n\n" + NOTE8,
        "c2sp.org/tlog-proof@v1\nindex 1\n" + "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=\n" * 65 + "\n" + NOTE8,
        b"\xff\xfe",
    ],
)
def test_parse_proof_is_strict(text):
    with pytest.raises(VerificationError):
        proof.parse_proof(text)


def test_hash_lines_format():
    hashes = [hashlib.sha256(bytes([i])).digest() for i in range(3)]
    text = proof.format_hashes(hashes)
    assert proof.parse_hashes(text) == hashes and proof.parse_hashes("") == []
    for bad in (text[:-1], text + "\n", "\n" + text, text.replace("=", ""), "AAAA\n"):
        with pytest.raises(VerificationError):
            proof.parse_hashes(bad)


# --- building exports by hand -------------------------------------------------------------------------------------


@dataclass
class Export:
    path: Path
    signer: Signer
    leaves: list[bytes]
    notes: dict[int, str]  # size -> signed checkpoint

    def rel(self, rel: str) -> Path:
        return self.path / rel

    def rewrite_manifest(self, *, resign: bool = True, **changes) -> None:
        """Recompute manifest.json over the files present and, unless ``resign`` is False, sign it again.

        Re-signing is what a forger holding the log key (the operator) would do: the checks behind the manifest
        signature must still catch what it hides. Without the key (``resign=False``) manifest.note catches it."""
        manifest = json.loads((self.path / "manifest.json").read_bytes())
        files = {}
        for p in sorted(self.path.rglob("*")):
            rel = p.relative_to(self.path).as_posix()
            if p.is_file() and rel not in ("manifest.json", "manifest.note"):
                files[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        manifest["files"] = files
        manifest.update(changes)
        data = rfc8785.dumps(manifest)
        (self.path / "manifest.json").write_bytes(data)
        if resign:
            sign_manifest(self.path, self.signer, data)


def sign_manifest(path: Path, signer: Signer, data: bytes) -> None:
    try:
        cp = Checkpoint.parse((path / "checkpoint.txt").read_text().split("\n\n")[0] + "\n")
    except (OSError, ValueError):  # a test broke checkpoint.txt on purpose: leave manifest.note as it was
        return
    (path / "manifest.note").write_text(signer.sign_note(sitemap.manifest_note_body(cp.origin, cp.size, data)))


def build_export(
    path: Path,
    *,
    size: int = 40,
    anchored: tuple[int, ...] = (7,),
    exported: tuple[int, ...] = (1, 4, 19, 38),
    signer: Signer | None = None,
) -> Export:
    signer = signer or Signer.from_seed(NAME, SEED)
    store: dict[tuple[int, int], bytes] = {}

    def read_tile(level: int, n: int) -> bytes | None:
        return store.get((level, n))

    builder = TileBuilder(0, read_tile)
    leaves, bodies, notes = [], {}, {}
    when = datetime(2026, 11, 1, tzinfo=timezone.utc)
    for i in range(size):
        body = f"User-agent: *\nDisallow: /{i % 5}/\n".encode()
        # The exported records are exactly example.net's (complete); the others belong to other.example.
        host = ("news.example.net", "www.example.net")[i % 2] if i in exported else "other.example"
        ev = record.evidence_ref(f"https://{host}/robots.txt", 200, body, when)
        rec = record.new_record(
            url=f"https://{host}/{i % 5}/page-{i}",
            mechanism="robots.txt",
            purposes="train-ai",
            rule={"group": "*", "directive": "Disallow", "pattern": f"/{i % 5}/", "line": 2},
            decision="not_fetched",
            agent_token="ExampleBot",
            operator="example-crawler.com",
            evidence=ev,
            observed_at=when,
        )
        leaves.append(record.canonical(rec))
        bodies[ev["sha256"]] = body
        store.update(builder.add([leaf_hash(leaves[-1])]))
        if builder.size in anchored or builder.size == size:
            notes[builder.size] = signer.sign(Checkpoint(NAME, builder.size, builder.root()))
    reader = TileReader(size, read_tile)
    note = notes[size]
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    files: dict[str, str] = {}

    def write(rel: str, data: bytes) -> None:
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        files[rel] = hashlib.sha256(data).hexdigest()

    write("checkpoint.txt", note.encode())
    write("log.vkey", (signer.vkey() + "\n").encode())
    write("checkpoint.tsa.example.tsr", b"\x30\x03\x02\x01\x00")  # opaque to this verifier
    for i in exported:
        write(f"records/{i}.json", leaves[i])
        write(f"proofs/{i}.tlog-proof", proof.format_proof(i, reader.inclusion_proof(i), note).encode())
        sha = json.loads(leaves[i])["evidence"]["sha256"]
        write(f"evidence/{sha}", bodies[sha])
    for m in anchored:
        write(f"anchors/{m}.txt", notes[m].encode())
        write(f"consistency/{m}-{size}.txt", proof.format_hashes(reader.consistency_proof(m)).encode())
    # Completeness (docs/completeness.md): the site map over both sites, bound to the checkpoint by sites.txt.
    by_site: dict[str, list[tuple[int, bytes]]] = {}
    for i, leaf in enumerate(leaves):
        by_site.setdefault(sitemap.site_of_record(json.loads(leaf)), []).append((i, leaf_hash(leaf)))
    trees = {s: sitemap.tree_root(entries, [len(entries)]) for s, entries in by_site.items()}  # one checkpoint: a run
    site_map = sitemap.SiteMap(trees)
    cp = open_checkpoint(note, signer.verifier())
    write(
        "sites.txt",
        signer.sign_note(sitemap.sites_note_body(NAME, size, cp.root, site_map.root, site_map.count)).encode(),
    )
    count, root = trees.get("example.net", (0, merkle.EMPTY_ROOT))
    mine = by_site.get("example.net", [])
    doc = sitemap.proof_json(
        "example.net", count, root, site_map.prove("example.net"), mine, [len(mine)] if mine else []
    )
    write("site-proof.json", rfc8785.dumps(doc))
    manifest = {"query": {"site": "example.net"}, "generated_at": "2026-11-02T00:00:00.000000Z", "files": files}
    (path / "manifest.json").write_bytes(rfc8785.dumps(manifest))
    sign_manifest(path, signer, rfc8785.dumps(manifest))
    return Export(path, signer, leaves, notes)


@pytest.fixture
def export(tmp_path: Path) -> Export:
    return build_export(tmp_path / "export")


def problems_of(path: Path, vkey: str = VKEY, **kw) -> list[str]:
    report = verify_export(path, vkey, **kw)
    assert report.ok == (not report.problems)
    return report.problems


def assert_reported(path: Path, *patterns: str, vkey: str = VKEY, **kw) -> list[str]:
    problems = problems_of(path, vkey, **kw)
    assert problems, "expected the export to be refused"
    for pattern in patterns:
        assert any(pattern in p for p in problems), (pattern, problems)
    return problems


# --- valid exports --------------------------------------------------------------------------------------------------


def test_valid_export_passes(export):
    report = verify_export(export.path, VKEY)
    assert report.ok, report.problems
    assert report.problems == []
    assert report.records == 4
    assert report.checkpoint is not None and report.checkpoint.size == 40
    text = report.text()
    assert "anchors/7.txt: consistent with checkpoint.txt (size 7 -> 40)" in text
    assert "record 38: OK" in text
    assert "complete: the bundle holds all 4 record(s)" in text
    assert "RFC 3161 timestamp token (not checked" in text
    assert text.rstrip().endswith("VALID: 4 record(s) verified")


def test_valid_export_with_previous_checkpoint(export):
    report = verify_export(export.path, VKEY, previous_checkpoint=export.notes[7])
    assert report.ok, report.problems
    assert any("previous checkpoint: consistent" in line for line in report.lines)
    same = verify_export(export.path, VKEY, previous_checkpoint=export.notes[40])
    assert same.ok, same.problems


def test_single_record_tree_and_no_anchors(tmp_path):
    path = tmp_path / "one"
    build_export(path, size=1, anchored=(), exported=(0,))
    report = verify_export(path, VKEY)
    assert report.ok and report.records == 1, report.problems


# --- tampering ------------------------------------------------------------------------------------------------------


def test_flipped_byte_in_record(export):
    target = export.rel("records/4.json")
    data = bytearray(target.read_bytes())
    data[data.index(b"not_fetched")] ^= 0x01  # "oot_fetched": still valid JSON, wrong decision
    target.write_bytes(bytes(data))
    assert_reported(export.path, "records/4.json: SHA-256", "records/4.json: record.decision")
    export.rewrite_manifest()  # the forger also fixes the manifest: the Merkle proof still catches it
    problems = assert_reported(export.path, "proofs/4.tlog-proof: inclusion")
    assert not any("manifest" in p for p in problems)


def test_record_content_swapped_keeps_schema(export):
    """A well-formed, canonical, schema-valid replacement record is still caught by the inclusion proof."""
    leaf = json.loads(export.rel("records/4.json").read_bytes())
    leaf["decision"] = "purged"
    export.rel("records/4.json").write_bytes(rfc8785.dumps(leaf))
    export.rewrite_manifest()
    problems = assert_reported(
        export.path, "proofs/4.tlog-proof: inclusion", "records/4.json: differs from entry 4 of the signed site tree"
    )
    assert len(problems) == 2


def test_record_moved_to_another_index(export):
    export.rel("records/4.json").write_bytes(export.leaves[5])
    export.rewrite_manifest()
    assert_reported(export.path, "proofs/4.tlog-proof: inclusion")


def test_removed_proof(export):
    export.rel("proofs/19.tlog-proof").unlink()
    assert_reported(
        export.path, "records/19.json: proofs/19.tlog-proof is missing", "listed in manifest.json but missing"
    )


def test_removed_record_leaves_orphan_proof(export):
    export.rel("records/19.json").unlink()
    export.rewrite_manifest()
    assert_reported(export.path, "proofs/19.tlog-proof: proof without records/19.json")


def test_wrong_vkey(export):
    other = Signer.from_seed("example.org/other", hashlib.sha256(b"other").digest())
    problems = assert_reported(export.path, "checkpoint.txt: no signature from the pinned key", vkey=other.vkey())
    assert any("cannot check inclusion" in p for p in problems)
    same_name = Signer.from_seed(NAME, hashlib.sha256(b"other").digest())
    assert_reported(export.path, "no signature from the pinned key", vkey=same_name.vkey())
    assert_reported(export.path, "pinned verifier key", vkey="garbage")
    assert_reported(export.path, "pinned verifier key", vkey="")


def test_forged_checkpoint(export):
    """A checkpoint for a rewritten history, signed by a key with the log's name but not the pinned key."""
    forger = Signer.from_seed(NAME, hashlib.sha256(b"forger").digest())
    path = export.path.parent / "forged"
    build_export(path, signer=forger)
    assert_reported(path, "checkpoint.txt: no signature from the pinned key")
    # Splice the real signature line onto a checkpoint with another root: the signature no longer verifies.
    body, sig = export.notes[40].split("\n\n")
    lines = body.split("\n")
    lines[2] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    export.rel("checkpoint.txt").write_text("\n".join(lines) + "\n\n" + sig)
    export.rewrite_manifest()
    assert_reported(export.path, "checkpoint.txt: invalid signature from the pinned key")


def test_proof_embedding_another_checkpoint(export):
    older = export.notes[7]
    text = export.rel("proofs/4.tlog-proof").read_text()
    export.rel("proofs/4.tlog-proof").write_text(text.split("\n\n")[0] + "\n\n" + older)
    export.rewrite_manifest()
    assert_reported(export.path, "proofs/4.tlog-proof: embedded checkpoint differs from checkpoint.txt")


def test_proof_for_wrong_index(export):
    export.rel("proofs/4.tlog-proof").write_bytes(export.rel("proofs/19.tlog-proof").read_bytes())
    export.rewrite_manifest()
    assert_reported(export.path, "proofs/4.tlog-proof: proof is for index 19, not 4")


def test_modified_evidence(export):
    leaf = json.loads(export.leaves[4])
    target = export.rel(f"evidence/{leaf['evidence']['sha256']}")
    target.write_bytes(target.read_bytes().replace(b"Disallow", b"Allow: /\n#"))
    assert_reported(export.path, "does not match manifest.json", "content hashes to")
    export.rewrite_manifest()
    assert_reported(export.path, "records/4.json: evidence", "content hashes to")


def test_missing_evidence(export):
    leaf = json.loads(export.leaves[4])
    export.rel(f"evidence/{leaf['evidence']['sha256']}").unlink()
    export.rewrite_manifest()
    assert_reported(export.path, f"evidence/{leaf['evidence']['sha256']} is missing from the export")


def test_declared_missing_evidence_fails_unless_accepted(export):
    sha = json.loads(export.leaves[4])["evidence"]["sha256"]
    export.rel(f"evidence/{sha}").unlink()
    reason = "the operator did not store this evidence body"
    export.rewrite_manifest(missing_evidence=[{"sha256": sha, "reason": reason}])
    # Listed as missing is still a failure: the holder cannot check the record against what the crawler saw…
    assert_reported(export.path, f"evidence {sha} is missing ({reason}); pass --allow-missing-evidence")
    # …unless the holder accepts it; the reason is then printed.
    report = verify_export(export.path, VKEY, allow_missing_evidence=True)
    assert report.ok, report.problems
    assert any(f"evidence {sha} is missing ({reason}); accepted" in line for line in report.lines)


def test_header_evidence_is_checked(tmp_path):
    path = tmp_path / "headers"
    build_export(path, size=3, anchored=(), exported=(2,))
    leaf = json.loads((path / "records/2.json").read_bytes())
    assert "headers_sha256" not in leaf["evidence"]
    # Records that hash their header block reference a second blob; a wrong one is reported.
    leaf["evidence"]["headers_sha256"] = hashlib.sha256(b"HTTP/1.1 200 OK\r\n\r\n").hexdigest()
    (path / f"evidence/{leaf['evidence']['headers_sha256']}").write_bytes(b"HTTP/1.1 200 OK\r\n\r\n")
    (path / "records/2.json").write_bytes(rfc8785.dumps(leaf))
    Export(path, Signer.from_seed(NAME, SEED), [], {}).rewrite_manifest()
    problems = problems_of(path)
    assert problems == [
        "proofs/2.tlog-proof: inclusion: proof for index 2 does not lead to the root of size 3",
        "records/2.json: differs from entry 2 of the signed site tree of example.net",
    ]
    (path / f"evidence/{leaf['evidence']['headers_sha256']}").write_bytes(b"HTTP/1.1 500\r\n\r\n")
    Export(path, Signer.from_seed(NAME, SEED), [], {}).rewrite_manifest()
    assert_reported(path, "records/2.json: evidence evidence/", "content hashes to")


def test_manifest_summary_fields_are_cross_checked(export):
    export.rewrite_manifest(records=[1, 4, 19, 38], checkpoint={"origin": NAME, "size": 40, "root": "x"})
    assert_reported(export.path, "manifest.json: 'checkpoint' does not describe checkpoint.txt")
    cp = open_checkpoint(export.notes[40], export.signer.verifier())
    good = {"origin": NAME, "size": 40, "root": base64.b64encode(cp.root).decode()}
    export.rewrite_manifest(records=[38, 1, 4, 19], checkpoint=good)
    assert verify_export(export.path, VKEY).ok
    export.rewrite_manifest(records=[1, 4, 19])
    assert_reported(export.path, "manifest.json: 'records' does not match")
    export.rewrite_manifest(records=[1, 4, 19, "38"])
    assert_reported(export.path, "manifest.json: 'records' does not match")
    (export.path / "summary.txt").write_text("cover sheet")
    export.rewrite_manifest(records=[1, 4, 19, 38])
    report = verify_export(export.path, VKEY)
    assert report.ok and not any("summary.txt" in line for line in report.lines)


def test_manifest_mismatches(export):
    manifest = json.loads(export.rel("manifest.json").read_bytes())
    manifest["files"]["records/4.json"] = "0" * 64
    manifest["files"]["records/5.json"] = "1" * 64
    del manifest["files"]["log.vkey"]
    manifest["files"]["../outside"] = "2" * 64
    manifest["files"]["bad-hash"] = "XYZ"
    export.rel("manifest.json").write_bytes(rfc8785.dumps(manifest))
    assert_reported(
        export.path,
        "records/4.json: SHA-256",
        "records/5.json: listed in manifest.json but missing",
        "log.vkey: present but not listed in manifest.json",
        "manifest.json: invalid path '../outside'",
        "manifest.json: hash for 'bad-hash' is not 64",
    )


def test_manifest_not_canonical_or_missing(export):
    manifest = json.loads(export.rel("manifest.json").read_bytes())
    export.rel("manifest.json").write_text(json.dumps(manifest, indent=2))
    assert_reported(export.path, "manifest.json: not in canonical RFC 8785 form")
    export.rel("manifest.json").unlink()
    assert_reported(export.path, "manifest.json is missing")


def test_truncated_proof(export):
    target = export.rel("proofs/19.tlog-proof")
    data = target.read_bytes()
    for cut in (len(data) // 2, 60, 10, 0):
        target.write_bytes(data[:cut])
        assert_reported(export.path, "proofs/19.tlog-proof")
    # Drop one inclusion hash but keep the format valid.
    lines = data.decode().split("\n")
    target.write_text("\n".join(lines[:2] + lines[3:]))
    export.rewrite_manifest()
    assert_reported(export.path, "proofs/19.tlog-proof: inclusion: proof has")


def test_garbage_files(export):
    rng = random.Random(1)
    export.rel("records/7.json").write_bytes(bytes(rng.randrange(256) for _ in range(300)))
    export.rel("proofs/7.tlog-proof").write_bytes(bytes(rng.randrange(256) for _ in range(300)))
    export.rel("records/notes.txt").write_text("hello")
    export.rel("evidence/xyz").write_text("junk")
    export.rel("junk.bin").write_bytes(os.urandom(100))
    export.rel("anchors/x.txt").write_text("junk")
    export.rel("consistency/7.txt").write_text("junk")
    export.rel("anchors/8.txt").write_bytes(b"\x00\xff" * 50)
    export.rewrite_manifest()
    assert_reported(
        export.path,
        "records/7.json: leaf is not valid UTF-8",
        "proofs/7.tlog-proof",
        "records/notes.txt: unexpected file name",
        "evidence/xyz: unexpected file name",
        "anchors/x.txt: unexpected file name",
        "consistency/7.txt: unexpected file name",
        "anchors/8.txt: not valid UTF-8",
    )
    report = verify_export(export.path, VKEY)
    assert any("junk.bin: unrecognised file" in line for line in report.lines)


def test_garbage_checkpoint(export):
    export.rel("checkpoint.txt").write_bytes(os.urandom(200))
    export.rewrite_manifest()
    assert_reported(export.path, "checkpoint.txt")
    export.rel("checkpoint.txt").unlink()
    export.rewrite_manifest()
    assert_reported(export.path, "checkpoint.txt is missing")


def test_deep_and_hostile_json(export):
    export.rel("manifest.json").write_bytes(b"[" * 200000 + b"]" * 200000)
    assert_reported(export.path, "manifest.json: JSON nested too deeply")
    export.rel("manifest.json").write_bytes(b'{"files":{"a":' + b"9" * 10000 + b"}}")
    assert_reported(export.path, "manifest.json")
    export.rel("manifest.json").write_bytes(b'{"files": NaN}')
    assert_reported(export.path, "manifest.json: not valid JSON")
    export.rel("manifest.json").write_bytes(b"\xff\xfe{}")
    assert_reported(export.path, "manifest.json: not valid JSON")
    export.rel("manifest.json").write_bytes(b'{"files":{},"files":{}}')
    assert_reported(export.path, "duplicate key")
    export.rel("manifest.json").write_bytes(b'"just a string"')
    assert_reported(export.path, "manifest.json: not a JSON object")
    build_export(export.path)
    export.rel("records/4.json").write_bytes(b"[" * 30000 + b"]" * 30000)
    export.rewrite_manifest()
    assert_reported(export.path, "records/4.json: leaf JSON is nested too deeply")
    export.rel("records/4.json").write_bytes(b"{" * 100000)
    export.rewrite_manifest()
    assert_reported(export.path, "records/4.json: 100000 bytes is larger than")


def test_consistency_problems(export):
    # Wrong consistency proof for an anchor.
    export.rel("consistency/7-40.txt").write_text(proof.format_hashes([hashlib.sha256(b"x").digest()] * 3))
    export.rewrite_manifest()
    assert_reported(export.path, "anchors/7.txt: consistency/7-40.txt: consistency:")
    export.rel("consistency/7-40.txt").unlink()
    export.rewrite_manifest()
    assert_reported(export.path, "anchors/7.txt: consistency/7-40.txt is missing")
    export.rel("consistency/7-41.txt").write_text("")
    export.rewrite_manifest()
    assert_reported(export.path, "consistency/7-41.txt: ends at size 41, but checkpoint.txt has size 40")


def test_anchor_from_a_fork(tmp_path):
    """An older checkpoint signed by the real key over a different history is not consistent: log misbehaviour."""
    real = build_export(tmp_path / "real")
    forked = build_export(tmp_path / "fork", size=7, anchored=(), exported=(0,))
    fork_note = forked.notes[7]
    real.rel("anchors/7.txt").write_text(fork_note)
    real.rewrite_manifest()
    assert_reported(real.path, "anchors/7.txt: consistency/7-40.txt: consistency: proof does not rebuild the old root")
    # The holder's own earlier checkpoint from the fork is reported the same way.
    rebuilt = build_export(real.path)
    assert_reported(real.path, "previous checkpoint: consistency/7-40.txt", previous_checkpoint=fork_note)
    # Same size, different root: a fork by definition (records carry random salts, so the roots differ).
    fork40 = build_export(tmp_path / "fork40", size=40, anchored=(), exported=(0,)).notes[40]
    assert fork40 != rebuilt.notes[40]
    assert_reported(real.path, "FORK - same size 40", previous_checkpoint=fork40)


def test_previous_checkpoint_problems(export):
    newer = build_export(export.path.parent / "newer", size=41, anchored=(), exported=(0,))
    assert_reported(export.path, "previous checkpoint: size 41 is newer", previous_checkpoint=newer.notes[41])
    altered = NOTE8.replace("\n8\n", "\n9\n")
    assert_reported(export.path, "previous checkpoint: invalid signature", previous_checkpoint=altered)
    assert_reported(export.path, "previous checkpoint:", previous_checkpoint="garbage")
    # A checkpoint of size 13 of *this* log would need consistency/13-40.txt, which the export lacks.
    body = Checkpoint(NAME, 13, merkle.root([leaf_hash(x) for x in export.leaves[:13]]))
    note13 = export.signer.sign(body)
    assert_reported(export.path, "previous checkpoint: consistency/13-40.txt is missing", previous_checkpoint=note13)
    other_origin = Signer.from_seed(NAME, SEED).sign(Checkpoint("example.org/other-log", 7, body.root))
    assert_reported(export.path, "previous checkpoint: origin", previous_checkpoint=other_origin)


def test_not_a_directory_and_symlinks(tmp_path, export):
    assert_reported(tmp_path / "nope", "cannot open export directory")
    (tmp_path / "file").write_text("x")
    assert_reported(tmp_path / "file", "not a directory")
    secret = tmp_path / "secret"
    secret.write_text("secret")
    os.symlink(secret, export.rel("evidence/link"))
    assert_reported(export.path, "evidence/link: symbolic link")


def test_symlinked_directory_is_reported_and_not_followed(tmp_path, export):
    """Following a link would let an export vouch for files outside it."""
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "x.json").write_text("{}")
    os.symlink(outside, export.rel("records/more"))
    problems = assert_reported(export.path, "records/more: symbolic link (not allowed)")
    assert not any("x.json" in p for p in problems), problems


def test_oversized_manifest_is_reported_as_oversized_not_missing(export, monkeypatch):
    monkeypatch.setattr(verify_module, "MAX_MANIFEST_BYTES", 10)
    problems = assert_reported(export.path, "manifest.json: ", "bytes is larger than the 10-byte limit")
    assert not any("manifest.json is missing" in p for p in problems), problems


def test_previous_checkpoint_of_the_empty_tree(export):
    empty = export.signer.sign(Checkpoint(NAME, 0, merkle.EMPTY_ROOT))
    assert problems_of(export.path, previous_checkpoint=empty) == []
    wrong = export.signer.sign(Checkpoint(NAME, 0, b"\x01" * 32))
    assert_reported(export.path, "size 0 with a root that is not the empty-tree hash", previous_checkpoint=wrong)


def test_every_single_byte_corruption_is_reported_without_crashing(export):
    """Flip one byte at several positions of every file, and truncate every file: always a report, never a
    traceback, and always NOT VALID — except inside manifest.json, which is unsigned and may change harmlessly."""
    rng = random.Random(5)
    originals = {p: p.read_bytes() for p in export.path.rglob("*") if p.is_file()}
    for path, data in originals.items():
        positions = {0, len(data) - 1, *(rng.randrange(len(data)) for _ in range(6))} if data else set()
        variants = [data[: len(data) // 2], b""]
        for pos in positions:
            mutated = bytearray(data)
            mutated[pos] ^= 1 << rng.randrange(8)
            variants.append(bytes(mutated))
        for variant in variants:
            path.write_bytes(variant)
            report = verify_export(export.path, VKEY)
            if path.name != "manifest.json":
                assert not report.ok, (path, variant[:80])
            path.write_bytes(data)
    assert verify_export(export.path, VKEY).ok


# --- command line -----------------------------------------------------------------------------------------------


def test_cli_exit_codes(export, tmp_path, capsys):
    assert main([str(export.path), "--vkey", VKEY]) == 0
    assert "VALID: 4 record(s) verified" in capsys.readouterr().out
    vkey_file = tmp_path / "log.vkey"
    vkey_file.write_text(VKEY + "\n")
    prev = tmp_path / "prev.txt"
    prev.write_text(export.notes[7])
    assert main([str(export.path), "--vkey", str(vkey_file), "--previous", str(prev), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and doc["checkpoint"]["size"] == 40 and doc["records"] == 4
    export.rel("records/4.json").write_text("{}")
    assert main([str(export.path), "--vkey", VKEY]) == 1
    assert "NOT VALID" in capsys.readouterr().out
    assert main([str(export.path), "--vkey", VKEY, "--previous", str(tmp_path / "missing")]) == 2


def test_a_bad_pinned_key_is_one_line(export, capsys):
    """A key that is not a key is bad input (exit 2, one line), not a cascade of failed signatures and proofs."""
    from tests.support.run import run_cli

    assert main([str(export.path), "--vkey", "garbage"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--vkey" in err[0], err
    proc = run_cli("registry", "verify", str(export.path), "--vkey", "garbage")
    assert proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    report = verify_export(export.path, "garbage")
    assert not report.ok and len(report.problems) == 1, report.problems


def test_cli_module_entry_point_and_no_storage_imports(export):
    """``python -m optout_registry.verify`` works, and the verifier loads only the pure modules (not tiles, not
    the storage backends, not tldextract)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    run = subprocess.run(
        [sys.executable, "-m", "optout_registry.verify", str(export.path), "--vkey", VKEY],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "VALID" in run.stdout
    assert "RuntimeWarning" not in run.stderr, run.stderr  # the package must not import verify before runpy does
    probe = (
        "import sys, json, optout_registry.verify; "
        "print(json.dumps([m for m in sys.modules if m.startswith(('optout_registry', 'tldextract', 'sqlite3', "
        "'psycopg'))]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    loaded = set(json.loads(out.stdout))
    # The package __init__ may re-export the Registry class (registry.py imports lazily); nothing that touches
    # storage, tiles or tldextract may be loaded.
    allowed = {
        f"optout_registry.{m}"
        for m in (
            "merkle",
            "note",
            "record",
            "schema",
            "canonical",
            "proof",
            "verify",
            "registry",
            "vocabulary",
            "sitemap",
        )
    }
    assert loaded <= allowed | {"optout_registry"}, loaded - allowed
    # And verify.py itself imports only the pure modules.
    tree = ast.parse(Path(verify_module.__file__).read_text(encoding="utf-8"))
    relative = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level}
    assert relative <= {"merkle", "note", "record", "proof", "vocabulary", "sitemap"}, relative
    absolute = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    } | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and not node.level}
    assert absolute <= {"__future__", "rfc8785", "cryptography"} | set(sys.stdlib_module_names), absolute
