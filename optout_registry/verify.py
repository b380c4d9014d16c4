"""Offline verifier for a registry export (REGISTRY.md §6.7, §6.8), for rights holders and auditors.

It trusts nothing in the export except what the *pinned* verifier key signs, and imports only the pure modules
(merkle, note, record, proof, sitemap), the standard library, ``rfc8785`` and ``cryptography`` — never the storage
code — so it checks the format rather than re-running the implementation that wrote it.

Checks: checkpoint.txt is signed by the pinned key; manifest.json is canonical JCS, signed by the same key through
manifest.note (so no file, query or list in the bundle can be edited), and every file hash matches, with no file
missing or unlisted; sites.txt (signed, bound to checkpoint.txt) commits to the site's (count, site-tree root) that
site-proof.json proves, and the site tree recomputed from the exported records must give exactly that (a missing,
dropped, reordered or foreign record fails, docs/completeness.md); each records/<i>.json is canonical,
schema-valid and included at index i in the
signed tree according to proofs/<i>.tlog-proof (whose embedded checkpoint must be checkpoint.txt, byte for byte);
evidence files hash to their names and match the records' hashes and lengths; the tree is consistent with every
older anchored checkpoint in anchors/ and with the holder's own previous checkpoint. Corrupt input never raises:
every problem becomes a line in ``VerifyReport.problems``.

What it cannot show (state it to users): that the crawler logged everything it honoured, that the crawler's claims
are true, or RFC 3161 timestamp validity (tokens are listed, not checked, here). Evidence the manifest lists as not
stored is a failure unless ``--allow-missing-evidence`` is given (the reason is then printed).

Why one module of ~750 lines: an auditor reads the verifier whole, and it is short only measured against what it
checks (bundle inventory, manifest and its signed note, sites note and site proof, records, inclusion proofs,
evidence, consistency with anchors and earlier exports). Each check is one function over one shared context, in
the order ``_verify`` runs them; splitting reading from checking would make the reader follow two files for every
check, and a second module would also have to be proven pure (tests/test_registry_verify.py pins the modules the
verifier may load).

Usage: ``python -m optout_registry.verify EXPORT_DIR --vkey VKEY_OR_FILE [--previous CHECKPOINT_FILE]
[--previous-export DIR] [--allow-missing-evidence] [--json]``
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import json
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785

from .merkle import EMPTY_ROOT, VerificationError, leaf_hash, verify_consistency, verify_inclusion
from .note import Checkpoint, NoteError, Verifier, open_checkpoint, open_note
from .proof import MAX_PROOF_BYTES, parse_hashes, parse_proof
from .record import MAX_LEAF_BYTES, RecordError, parse_leaf
from .sitemap import (
    parse_manifest_note,
    parse_proof_json,
    parse_sites_note,
    site_of_record,
    tree_root,
    verify_site,
)
from .vocabulary import label

__all__ = ["VerifyReport", "main", "verify_export"]

MAX_MANIFEST_BYTES = 64 << 20
MAX_NOTE_FILE_BYTES = 1 << 20
MAX_VKEY_BYTES = 4096
_INDEX = r"(?:0|[1-9][0-9]{0,18})"
_RECORD = re.compile(rf"records/({_INDEX})\.json\Z")
_PROOF = re.compile(rf"proofs/({_INDEX})\.tlog-proof\Z")
_EVIDENCE = re.compile(r"evidence/([0-9a-f]{64})\Z")
_CONSISTENCY = re.compile(rf"consistency/({_INDEX})-({_INDEX})\.txt\Z")
_ANCHOR = re.compile(rf"anchors/({_INDEX})\.txt\Z")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
# Files the layout allows but this tool does not check cryptographically (RFC 3161 tokens, TSA chains, notes).
_INFORMATIONAL = re.compile(
    r"(?:checkpoint\.[A-Za-z0-9._-]+\.tsr|anchors/[0-9]+\.[A-Za-z0-9._-]+\.tsr|(?:anchors/)?[A-Za-z0-9._-]*\.pem"
    r"|README[A-Za-z0-9._-]*|summary\.txt|log\.vkey)\Z"
)


@dataclass
class VerifyReport:
    """Outcome of verify_export. ``records`` counts records that passed every check; ``ok`` means no problems."""

    ok: bool
    checkpoint: Checkpoint | None
    records: int
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The report as people read it: each check's line, each problem, then a final VALID or NOT VALID line."""
        out = list(self.lines)
        out += [f"PROBLEM: {p}" for p in self.problems]
        verdict = "VALID" if self.ok else f"NOT VALID ({len(self.problems)} problem(s))"
        out.append(f"{verdict}: {self.records} record(s) verified")
        return "\n".join(out) + "\n"


class _Ctx:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[str] = []
        self.lines: list[str] = []
        self.files: dict[str, Path] = {}  # relative posix path -> absolute path (regular files only)
        self.sizes: dict[str, int] = {}
        self._digests: dict[str, str] = {}
        self.allow_missing_evidence = False
        self.leaf_hashes: dict[int, bytes] = {}  # records/<i>.json -> leaf hash, for the site tree
        self.sites: dict[int, str | None] = {}  # records/<i>.json -> its site key

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def read(self, rel: str, limit: int) -> bytes | None:
        """Read an inventoried file, refusing oversize ones; None (and a problem) on any failure."""
        path = self.files.get(rel)
        if path is None:
            return None
        if self.sizes[rel] > limit:
            self.problem(f"{rel}: {self.sizes[rel]} bytes is larger than the {limit}-byte limit for this file")
            return None
        try:
            with open(path, "rb") as fh:
                data = fh.read(limit + 1)
        except OSError as exc:
            self.problem(f"{rel}: cannot read ({exc.strerror or exc})")
            return None
        if len(data) > limit:
            self.problem(f"{rel}: larger than the {limit}-byte limit for this file")
            return None
        return data

    def digest(self, rel: str) -> str | None:
        """SHA-256 hex of an inventoried file, streamed (evidence may be large)."""
        if rel in self._digests:
            return self._digests[rel]
        path = self.files.get(rel)
        if path is None:
            return None
        h = hashlib.sha256()
        try:
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except OSError as exc:
            self.problem(f"{rel}: cannot read ({exc.strerror or exc})")
            return None
        self._digests[rel] = h.hexdigest()
        return self._digests[rel]


def _inventory(ctx: _Ctx) -> bool:
    """List every regular file under the export; symlinks and special files are problems (never followed)."""
    try:
        st = os.lstat(ctx.root)
    except OSError as exc:
        ctx.problem(f"{ctx.root}: cannot open export directory ({exc.strerror or exc})")
        return False
    if not stat.S_ISDIR(st.st_mode):
        ctx.problem(f"{ctx.root}: not a directory")
        return False
    errors: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(ctx.root, onerror=errors.append, followlinks=False):
        base = Path(dirpath)
        for name in sorted(dirnames):
            if os.path.islink(base / name):
                ctx.problem(f"{(base / name).relative_to(ctx.root).as_posix()}: symbolic link (not allowed)")
        for name in filenames:
            path = base / name
            rel = path.relative_to(ctx.root).as_posix()
            try:
                fst = os.lstat(path)
            except OSError as exc:
                ctx.problem(f"{rel}: cannot stat ({exc.strerror or exc})")
                continue
            if stat.S_ISLNK(fst.st_mode):
                ctx.problem(f"{rel}: symbolic link (not allowed)")
            elif not stat.S_ISREG(fst.st_mode):
                ctx.problem(f"{rel}: not a regular file")
            else:
                ctx.files[rel] = path
                ctx.sizes[rel] = fst.st_size
    for error in errors:
        ctx.problem(f"cannot list {error.filename}: {error.strerror or error}")
    return True


def _load_json(data: bytes) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                raise ValueError(f"duplicate key {k[:60]!r}")
            out[k] = v
        return out

    def constant(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(data.decode("utf-8"), object_pairs_hook=pairs, parse_constant=constant)


def _check_manifest(ctx: _Ctx) -> dict[str, Any] | None:
    data = ctx.read("manifest.json", MAX_MANIFEST_BYTES)
    if data is None:
        if "manifest.json" not in ctx.files:
            ctx.problem("manifest.json is missing")
        return None
    try:
        manifest = _load_json(data)
    except RecursionError:
        ctx.problem("manifest.json: JSON nested too deeply")
        return None
    except (ValueError, UnicodeDecodeError) as exc:
        ctx.problem(f"manifest.json: not valid JSON ({str(exc)[:120]})")
        return None
    if not isinstance(manifest, dict):
        ctx.problem("manifest.json: not a JSON object")
        return None
    try:
        if rfc8785.dumps(manifest) != data:
            ctx.problem("manifest.json: not in canonical RFC 8785 form")
    except Exception as exc:  # rfc8785 domain errors (huge ints, floats out of range)
        ctx.problem(f"manifest.json: cannot be canonicalised ({str(exc)[:120]})")
    files = manifest.get("files")
    if not isinstance(files, dict):
        ctx.problem("manifest.json: 'files' must be an object of path -> sha256 hex")
        return manifest
    for key in ("query", "generated_at"):
        if key not in manifest:
            ctx.problem(f"manifest.json: missing '{key}'")
    ctx.lines.append(f"manifest: {len(files)} file(s); query {json.dumps(manifest.get('query'))[:200]}")
    if isinstance(manifest.get("generated_at"), str):
        ctx.lines.append(f"manifest: generated at {manifest['generated_at'][:64]} (claimed)")
    for rel, want in files.items():
        if not isinstance(want, str) or not _HEX64.match(want):
            ctx.problem(f"manifest.json: hash for {rel[:200]!r} is not 64 lower-case hex digits")
            continue
        parts = rel.split("/")
        if rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in parts) or rel == "manifest.json":
            ctx.problem(f"manifest.json: invalid path {rel[:200]!r}")
            continue
        if rel not in ctx.files:
            ctx.problem(f"{rel[:200]}: listed in manifest.json but missing")
            continue
        got = ctx.digest(rel)
        if got is not None and got != want:
            ctx.problem(f"{rel}: SHA-256 {got} does not match manifest.json ({want})")
    for rel in sorted(ctx.files):
        if rel not in ("manifest.json", "manifest.note") and rel not in files:
            ctx.problem(f"{rel}: present but not listed in manifest.json")
    return manifest


def _open_note_file(ctx: _Ctx, rel: str, verifier: Verifier | None) -> tuple[str | None, Checkpoint | None]:
    data = ctx.read(rel, MAX_NOTE_FILE_BYTES)
    if data is None:
        return None, None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        ctx.problem(f"{rel}: not valid UTF-8")
        return None, None
    if verifier is None:
        return text, None
    try:
        return text, open_checkpoint(text, verifier)
    except NoteError as exc:
        ctx.problem(f"{rel}: {exc}")
        return text, None


def _check_records(
    ctx: _Ctx, cp: Checkpoint | None, cp_text: str | None, manifest: dict[str, Any] | None
) -> tuple[int, set[str]]:
    """Check every record with its proof and evidence; return (records fully verified, evidence hashes used)."""
    records: dict[int, str] = {}
    proofs: dict[int, str] = {}
    for rel in ctx.files:
        if rel.startswith("records/"):
            m = _RECORD.match(rel)
            if m:
                records[int(m.group(1))] = rel
            else:
                ctx.problem(f"{rel}: unexpected file name (records/<index>.json)")
        elif rel.startswith("proofs/"):
            m = _PROOF.match(rel)
            if m:
                proofs[int(m.group(1))] = rel
            else:
                ctx.problem(f"{rel}: unexpected file name (proofs/<index>.tlog-proof)")
    for index in sorted(set(proofs) - set(records)):
        ctx.problem(f"{proofs[index]}: proof without records/{index}.json")
    manifest = manifest if isinstance(manifest, dict) else {}
    query = manifest.get("query")
    query_site = query.get("site") if isinstance(query, dict) and isinstance(query.get("site"), str) else None
    missing = manifest.get("missing_evidence")
    declared_missing: dict[str, str] = {}
    for m in missing if isinstance(missing, list) else []:
        if isinstance(m, dict) and isinstance(m.get("sha256"), str):
            declared_missing[m["sha256"]] = str(m.get("reason", "no reason given"))[:200]
    listed = manifest.get("records")
    if isinstance(listed, list) and (not all(type(i) is int for i in listed) or sorted(listed) != sorted(records)):
        ctx.problem("manifest.json: 'records' does not match the records/ files present")

    verified = 0
    used_evidence: set[str] = set()
    for index in sorted(records):
        rel = records[index]
        before = len(ctx.problems)
        leaf = ctx.read(rel, MAX_LEAF_BYTES)
        if leaf is None:
            continue
        record: dict[str, Any] | None = None
        ctx.leaf_hashes[index] = leaf_hash(leaf)
        try:
            record = parse_leaf(leaf)
            ctx.sites[index] = site_of_record(record)
        except RecordError as exc:
            ctx.problem(f"{rel}: {exc}")
        _check_inclusion(ctx, index, leaf, proofs.get(index), cp, cp_text)
        if record is not None:
            used_evidence.update(_check_evidence(ctx, rel, record, declared_missing))
        if len(ctx.problems) == before and record is not None:
            verified += 1
            target = record["target"]
            ctx.lines.append(
                f"record {index}: OK - {record['observed_at']} (claimed) {label(record)} {record['decision']} "
                f"{target['url'][:200]}"
            )
            if query_site is not None and ctx.sites.get(index) != query_site:
                ctx.problem(f"{rel}: a record of {target['site']}, not of the queried site {query_site}")
    return verified, used_evidence


def _check_inclusion(
    ctx: _Ctx, index: int, leaf: bytes, proof_rel: str | None, cp: Checkpoint | None, cp_text: str | None
) -> None:
    if proof_rel is None:
        ctx.problem(f"records/{index}.json: proofs/{index}.tlog-proof is missing")
        return
    data = ctx.read(proof_rel, MAX_PROOF_BYTES)
    if data is None:
        return
    try:
        proof_index, hashes, embedded = parse_proof(data)
    except VerificationError as exc:
        ctx.problem(f"{proof_rel}: {exc}")
        return
    if proof_index != index:
        ctx.problem(f"{proof_rel}: proof is for index {proof_index}, not {index}")
        return
    if cp is None or cp_text is None:
        ctx.problem(f"{proof_rel}: cannot check inclusion without a valid signed checkpoint")
        return
    if embedded != cp_text:
        ctx.problem(f"{proof_rel}: embedded checkpoint differs from checkpoint.txt")
        return
    try:
        verify_inclusion(index, cp.size, leaf_hash(leaf), hashes, cp.root)
    except VerificationError as exc:
        ctx.problem(f"{proof_rel}: {exc}")


def _check_evidence(ctx: _Ctx, rel: str, record: dict[str, Any], declared_missing: dict[str, str]) -> set[str]:
    """Evidence blobs named by the record (body, and header block if hashed) must be present and match. Evidence
    the signed manifest declares as not stored is still a failure (the holder cannot check the record against what
    the crawler saw) unless the holder accepts it with --allow-missing-evidence; the reason is then printed."""
    ev = record.get("evidence")
    if not isinstance(ev, dict):
        return set()
    used = set()
    for key in ("sha256", "headers_sha256"):
        sha = ev.get(key)
        if not isinstance(sha, str):
            continue
        used.add(sha)
        ev_rel = f"evidence/{sha}"
        if ev_rel not in ctx.files:
            if sha in declared_missing and ctx.allow_missing_evidence:
                ctx.lines.append(
                    f"{rel}: evidence {sha} is missing ({declared_missing[sha]}); accepted (--allow-missing-evidence)"
                )
            elif sha in declared_missing:
                ctx.problem(
                    f"{rel}: evidence {sha} is missing ({declared_missing[sha]}); "
                    "pass --allow-missing-evidence to accept it"
                )
            else:
                ctx.problem(f"{rel}: evidence {ev_rel} is missing from the export")
            continue
        got = ctx.digest(ev_rel)
        if got is not None and got != sha:
            ctx.problem(f"{rel}: evidence {ev_rel} does not hash to {sha} (got {got})")
        elif key == "sha256" and ctx.sizes[ev_rel] != ev["length"]:
            ctx.problem(f"{rel}: evidence {ev_rel} is {ctx.sizes[ev_rel]} bytes, the record says {ev['length']}")
    return used


def _check_evidence_files(ctx: _Ctx, used: set[str]) -> None:
    for rel in sorted(ctx.files):
        if not rel.startswith("evidence/"):
            continue
        m = _EVIDENCE.match(rel)
        if not m:
            ctx.problem(f"{rel}: unexpected file name (evidence/<sha256 hex>)")
            continue
        got = ctx.digest(rel)
        if got is not None and got != m.group(1):
            ctx.problem(f"{rel}: content hashes to {got}, not to its name")
        if m.group(1) not in used:
            ctx.lines.append(f"{rel}: not referenced by any record in this export")


def _consistency(ctx: _Ctx, label: str, old: Checkpoint, cp: Checkpoint) -> None:
    """Check ``old`` is a prefix of ``cp`` using consistency/<old>-<new>.txt; problems are prefixed by label."""
    if old.size > cp.size:
        ctx.problem(f"{label}: size {old.size} is newer than the export's checkpoint (size {cp.size})")
        return
    if old.size == 0:
        if old.root != EMPTY_ROOT:
            ctx.problem(f"{label}: size 0 with a root that is not the empty-tree hash")
        return
    if old.size == cp.size:
        if old.root != cp.root:
            ctx.problem(f"{label}: FORK - same size {cp.size} as checkpoint.txt but a different root")
        else:
            ctx.lines.append(f"{label}: same tree as checkpoint.txt")
        return
    rel = f"consistency/{old.size}-{cp.size}.txt"
    data = ctx.read(rel, MAX_PROOF_BYTES)
    if data is None:
        if rel not in ctx.files:
            ctx.problem(f"{label}: {rel} is missing, cannot show size {old.size} is a prefix of size {cp.size}")
        return
    try:
        verify_consistency(old.size, cp.size, old.root, cp.root, parse_hashes(data))
    except VerificationError as exc:
        ctx.problem(f"{label}: {rel}: {exc}")
        return
    ctx.lines.append(f"{label}: consistent with checkpoint.txt (size {old.size} -> {cp.size})")


def _check_anchors(ctx: _Ctx, verifier: Verifier | None, cp: Checkpoint | None) -> None:
    anchors: dict[int, str] = {}
    for rel in sorted(ctx.files):
        if rel.startswith("anchors/"):
            m = _ANCHOR.match(rel)
            if m:
                anchors[int(m.group(1))] = rel
            elif not _INFORMATIONAL.match(rel):
                ctx.problem(f"{rel}: unexpected file name (anchors/<size>.txt or anchors/<size>.<tsa>.tsr)")
        elif rel.startswith("consistency/"):
            m = _CONSISTENCY.match(rel)
            if not m:
                ctx.problem(f"{rel}: unexpected file name (consistency/<old size>-<new size>.txt)")
            elif cp is not None and int(m.group(2)) != cp.size:
                ctx.problem(f"{rel}: ends at size {m.group(2)}, but checkpoint.txt has size {cp.size}")
    for size, rel in sorted(anchors.items()):
        _, anchor = _open_note_file(ctx, rel, verifier)
        if anchor is None:
            continue
        if anchor.size != size:
            ctx.problem(f"{rel}: checkpoint size {anchor.size} does not match the file name")
            continue
        if cp is not None:
            _consistency(ctx, rel, anchor, cp)


def _check_previous(ctx: _Ctx, previous: str, verifier: Verifier, cp: Checkpoint) -> None:
    try:
        old = open_checkpoint(previous, verifier)
    except NoteError as exc:
        ctx.problem(f"previous checkpoint: {exc}")
        return
    if old.origin != cp.origin:
        ctx.problem(f"previous checkpoint: origin {old.origin!r} differs from the export's {cp.origin!r}")
        return
    _consistency(ctx, "previous checkpoint", old, cp)


def _check_manifest_note(ctx: _Ctx, verifier: Verifier, cp: Checkpoint) -> None:
    """manifest.note: the log key's signature over SHA-256(manifest.json), for this checkpoint."""
    data = ctx.read("manifest.note", MAX_NOTE_FILE_BYTES)
    if data is None:
        if "manifest.note" not in ctx.files:
            ctx.problem("manifest.note is missing: the manifest (query, file list, digests) is not signed")
        return
    try:
        origin, size, digest = parse_manifest_note(open_note(data, verifier))
    except (NoteError, VerificationError) as exc:
        ctx.problem(f"manifest.note: {exc}")
        return
    if (origin, size) != (cp.origin, cp.size):
        ctx.problem(f"manifest.note: signed for {origin} size {size}, not for checkpoint.txt ({cp.origin} {cp.size})")
    elif ctx.digest("manifest.json") != digest:
        ctx.problem("manifest.json: edited after it was signed (its SHA-256 differs from manifest.note)")
    else:
        ctx.lines.append("manifest.note: manifest.json is signed by the pinned key")


def _check_site(ctx: _Ctx, verifier: Verifier, cp: Checkpoint, manifest: dict[str, Any] | None) -> Any:
    """Completeness: the records present are exactly the site's entries up to the checkpoint (docs/completeness.md).

    Returns (site, entries) from the verified site proof, or None."""
    query = manifest.get("query") if isinstance(manifest, dict) else None
    site = query.get("site") if isinstance(query, dict) else None
    if not isinstance(site, str):
        ctx.problem("manifest.json: no query site, so completeness cannot be checked")
        return None
    if "sites.txt" not in ctx.files or "site-proof.json" not in ctx.files:
        ctx.problem("sites.txt or site-proof.json is missing: the bundle cannot show it holds every record of the site")
        return None
    data, proof_data = ctx.read("sites.txt", MAX_NOTE_FILE_BYTES), ctx.read("site-proof.json", MAX_MANIFEST_BYTES)
    if data is None or proof_data is None:
        return None
    try:
        origin, size, log_root, map_root, nsites = parse_sites_note(open_note(data, verifier))
        if (origin, size, log_root) != (cp.origin, cp.size, cp.root):
            raise VerificationError("sites.txt: signed for another checkpoint than checkpoint.txt")
        doc = _load_json(proof_data)
        if rfc8785.dumps(doc) != proof_data:
            raise VerificationError("site-proof.json: not in canonical RFC 8785 form")
        psite, count, root, map_proof, entries, runs = parse_proof_json(doc)
        if psite != site:
            raise VerificationError(f"site-proof.json: proves {psite}, but the query is {site}")
        verify_site(site, count, root, map_proof, map_root)
    except (NoteError, VerificationError, ValueError, RecursionError) as exc:
        ctx.problem(f"{str(exc)[:300]}")
        return None
    indices = [i for i, _ in entries]
    if any(b <= a for a, b in itertools.pairwise(indices)) or (indices and indices[-1] >= cp.size):
        ctx.problem(f"site-proof.json: the entries of {site} are not in log order below {cp.size}")
        return None
    if tree_root(entries, runs) != (count, root):
        ctx.problem(f"site-proof.json: the listed entries of {site} do not hash to its signed site-tree root")
        return None
    ctx.lines.append(f"sites.txt: {nsites} site(s) at size {cp.size}; {site} has {count} record(s) (signature OK)")
    return site, dict(entries)


def _check_complete(ctx: _Ctx, site: str, entries: dict[int, bytes], manifest: dict[str, Any]) -> None:
    """Every listed entry of the site is in records/ (unless the signed query limits the dates), and no other."""
    query = manifest.get("query")
    ranged = isinstance(query, dict) and bool(query.get("since") or query.get("until"))
    for index, lh in sorted(ctx.leaf_hashes.items()):
        if index not in entries:
            other = ctx.sites.get(index)
            what = f"a record of {other}" if other and other != site else "not an entry of this site"
            ctx.problem(f"records/{index}.json: {what} (the signed site tree of {site} does not list it)")
        elif entries[index] != lh:
            ctx.problem(f"records/{index}.json: differs from entry {index} of the signed site tree of {site}")
    absent = [i for i in entries if i not in ctx.leaf_hashes]
    if absent and not ranged:
        ctx.problem(
            f"{len(entries)} records of {site} up to the checkpoint, the bundle has {len(entries) - len(absent)}: "
            f"missing records/{absent[0]}.json" + (f" and {len(absent) - 1} more" if len(absent) > 1 else "")
        )
    elif absent:
        ctx.lines.append(
            f"{len(absent)} record(s) of {site} fall outside the queried time range: listed by hash in "
            "site-proof.json, not included (ask for an export without --since/--until to see them)"
        )
    if not absent or ranged:
        ctx.lines.append(f"complete: the bundle holds all {len(entries) - len(absent)} record(s) the query selects")


def _check_previous_export(ctx: _Ctx, previous: Path, verifier: Verifier, site: str, entries: dict[int, bytes]) -> None:
    """Compare with an earlier export of the same site: its count may only have grown, and its records must be
    the first ones of this site tree, unchanged (the site-tree roots are recomputed, not trusted)."""
    old = _Ctx(previous)
    if not _inventory(old) or "sites.txt" not in old.files or "checkpoint.txt" not in old.files:
        ctx.problem(f"previous export {previous}: no checkpoint.txt / sites.txt")
        return
    _, old_cp = _open_note_file(old, "checkpoint.txt", verifier)
    old_manifest = {"query": {"site": site}}
    result = _check_site(old, verifier, old_cp, old_manifest) if old_cp is not None else None
    if result is None:
        ctx.problem(f"previous export: {'; '.join(old.problems[:2]) or 'not valid'}")
        return
    _, old_entries = result
    mine = sorted(entries.items())
    if len(old_entries) > len(mine):
        ctx.problem(f"previous export: {site} had {len(old_entries)} records, now {len(mine)}: the count decreased")
    elif mine[: len(old_entries)] != sorted(old_entries.items()):
        ctx.problem(f"previous export: the first {len(old_entries)} records of {site} changed since then")
    else:
        ctx.lines.append(
            f"previous export: {len(old_entries)} -> {len(mine)} records of {site}, earlier ones unchanged"
        )


def _known_path(rel: str) -> bool:
    top, sep, _ = rel.partition("/")
    if not sep:
        return rel in ("manifest.json", "manifest.note", "checkpoint.txt", "sites.txt", "site-proof.json") or bool(
            _INFORMATIONAL.match(rel)
        )
    return top in ("records", "proofs", "evidence", "anchors", "consistency")


def _verify(
    ctx: _Ctx, vkey: str, previous_checkpoint: str | None, previous_export: Path | None
) -> tuple[Checkpoint | None, int]:
    if not _inventory(ctx):
        return None, 0
    verifier: Verifier | None
    try:
        verifier = Verifier.from_vkey(vkey)
        ctx.lines.append(f"pinned key: {verifier.vkey()}")
    except NoteError as exc:
        # Nothing can be checked against no key: one problem, not one per signature and proof that follows.
        ctx.problem(f"pinned verifier key: {exc}")
        return None, 0

    if "log.vkey" in ctx.files:
        data = ctx.read("log.vkey", MAX_VKEY_BYTES)
        if data is not None and verifier is not None and data.decode("utf-8", "replace").strip() != verifier.vkey():
            ctx.lines.append("log.vkey: differs from the pinned key (ignored; only the pinned key is trusted)")

    cp_text: str | None = None
    cp: Checkpoint | None = None
    if "checkpoint.txt" not in ctx.files:
        ctx.problem("checkpoint.txt is missing")
    else:
        cp_text, cp = _open_note_file(ctx, "checkpoint.txt", verifier)
        if cp is not None:
            ctx.lines.append(f"checkpoint: {cp.origin} size {cp.size} root {cp.root.hex()} (signature OK)")

    manifest = _check_manifest(ctx)
    if isinstance(manifest, dict) and cp is not None and "checkpoint" in manifest:
        claimed = manifest["checkpoint"]
        want = {"origin": cp.origin, "size": cp.size, "root": base64.b64encode(cp.root).decode("ascii")}
        if claimed != want:
            ctx.problem("manifest.json: 'checkpoint' does not describe checkpoint.txt")
    verified, used = _check_records(ctx, cp, cp_text, manifest)
    _check_evidence_files(ctx, used)
    if cp is not None:
        _check_manifest_note(ctx, verifier, cp)
        site = _check_site(ctx, verifier, cp, manifest)
        if site is not None and isinstance(manifest, dict):
            _check_complete(ctx, site[0], site[1], manifest)
            if previous_export is not None:
                _check_previous_export(ctx, previous_export, verifier, *site)
        elif previous_export is not None:
            ctx.problem("previous export: cannot compare without this export's site proof")
    _check_anchors(ctx, verifier, cp)
    for rel in sorted(ctx.files):
        if not _known_path(rel):
            ctx.lines.append(f"{rel}: unrecognised file (not checked)")
        elif rel.endswith(".tsr"):
            ctx.lines.append(f"{rel}: RFC 3161 timestamp token (not checked by this tool)")

    if previous_checkpoint is not None:
        if verifier is None or cp is None:
            ctx.problem("previous checkpoint: cannot compare without a valid signed checkpoint.txt")
        else:
            _check_previous(ctx, previous_checkpoint, verifier, cp)
    return cp, verified


def verify_export(
    directory: Path | str,
    vkey: str,
    *,
    previous_checkpoint: str | None = None,
    previous_export: Path | str | None = None,
    allow_missing_evidence: bool = False,
) -> VerifyReport:
    """Verify an export directory against the pinned ``vkey``; never raises on corrupt input.

    ``previous_export`` is an earlier export of the same site: the site's count must not have decreased and its
    earlier records must be unchanged. ``allow_missing_evidence`` accepts evidence the signed manifest lists as
    not stored (the reason is printed instead of failing)."""
    ctx = _Ctx(Path(directory))
    ctx.allow_missing_evidence = allow_missing_evidence
    cp: Checkpoint | None = None
    verified = 0
    try:
        prev = Path(previous_export) if previous_export is not None else None
        cp, verified = _verify(ctx, vkey, previous_checkpoint, prev)
    except Exception as exc:  # last line of defence: a verifier must report, not crash
        ctx.problem(f"verifier stopped early: {type(exc).__name__}: {str(exc)[:200]}")
    ok = not ctx.problems
    return VerifyReport(ok=ok, checkpoint=cp, records=verified, problems=ctx.problems, lines=ctx.lines)


def _read_arg(value: str) -> str:
    """A vkey/checkpoint argument is either the text itself or a path to a file holding it."""
    path = Path(value)
    try:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        pass
    return value


def main(argv: list[str] | None = None) -> int:
    """``python -m optout_registry.verify``: check an export offline against a pinned verifier key; exit 0 when valid, 1
    when not, 2 for unusable arguments."""
    parser = argparse.ArgumentParser(
        prog="python -m optout_registry.verify",
        description="Verify a registry export offline against a pinned verifier key.",
    )
    parser.add_argument("directory", help="export directory")
    parser.add_argument("--vkey", required=True, help="pinned verifier key text, or a file containing it")
    parser.add_argument("--previous", help="a signed checkpoint you kept from earlier (file)")
    parser.add_argument("--previous-export", metavar="DIR", help="an earlier export of the same site to compare")
    parser.add_argument(
        "--allow-missing-evidence",
        action="store_true",
        help="accept evidence the signed manifest lists as not stored (the reason is printed)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    previous = None
    if args.previous:
        try:
            previous = Path(args.previous).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"cannot read {args.previous}: {exc}", file=sys.stderr)
            return 2
    vkey = _read_arg(args.vkey).strip()
    try:
        Verifier.from_vkey(vkey)
    except NoteError as exc:
        print(f"python -m optout_registry.verify: error: --vkey: {exc}", file=sys.stderr)
        return 2
    report = verify_export(
        Path(args.directory),
        vkey,
        previous_checkpoint=previous,
        previous_export=args.previous_export,
        allow_missing_evidence=args.allow_missing_evidence,
    )
    if args.json:
        cp = report.checkpoint
        doc = {
            "ok": report.ok,
            "records": report.records,
            "checkpoint": None if cp is None else {"origin": cp.origin, "size": cp.size, "root": cp.root.hex()},
            "problems": report.problems,
            "lines": report.lines,
        }
        print(json.dumps(doc, indent=2))
    else:
        sys.stdout.write(report.text())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
