"""Export bundles for one rights holder (REGISTRY.md §6.7), verifiable offline with the pinned key alone.

Layout::

    manifest.json                 JCS: format, query, generated_at, checkpoint, records, files {path: SHA-256 hex}
    manifest.note                 signed note (log key) over SHA-256(manifest.json): any edit to the bundle shows
    checkpoint.txt                the signed checkpoint every proof refers to (size N)
    sites.txt                     signed note binding the site map to checkpoint N (docs/completeness.md)
    site-proof.json               the site's (count, site-tree root), its map path and all its entries' hashes
    checkpoint.<tsa>.tsr          RFC 3161 token(s) on checkpoint.txt, when anchored
    log.vkey                      informational copy of the verifier key (verifiers must pin their own)
    records/<index>.json          exact leaf bytes (JCS)
    proofs/<index>.tlog-proof     C2SP tlog-proof v1 against checkpoint.txt
    evidence/<sha256-hex>         raw evidence bytes the records reference
    anchors/<m>.txt               older checkpoints: anchored ones, and the holder's own (--previous)
    anchors/<m>.<tsa>.tsr         their RFC 3161 tokens
    consistency/<m>-<N>.txt       base64 consistency proof lines from checkpoint m to N
    summary.txt                   what the bundle says, in words, and how to check it

The bundle is written to a temporary sibling directory and renamed into place, so a crash never leaves a
half-written bundle under the requested name.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import rfc8785

from optout_registry.errors import ForkError, IntegrityError, RegistryError
from optout_registry.merkle import VerificationError, inclusion_proof, leaf_hash, verify_consistency
from optout_registry.note import NoteError, Verifier, open_checkpoint
from optout_registry.proof import format_hashes, format_proof
from optout_registry.record import parse_leaf
from optout_registry.recordfields import ObservedRange, evidence_refs, summary_columns
from optout_registry.registry import Entry, Registry
from optout_registry.sitemap import manifest_note_body, proof_json, site_of_record, tree_root

FORMAT = "optout-registry-export/v2"
MISSING_REASON = "the operator did not store this evidence body"


@dataclass
class ExportResult:
    """What was written: where, for which site, against which checkpoint size, and how many records."""

    out: Path
    site: str
    size: int
    records: int
    missing_evidence: list[str] = field(default_factory=list)


def _slug(tsa: str) -> str:
    host = urlsplit(tsa).hostname or tsa
    return re.sub(r"[^A-Za-z0-9.-]+", "_", host).strip("._") or "tsa"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _prepare_out(out: Path) -> Path:
    if out.exists():
        if not out.is_dir():
            raise RegistryError(f"{out} exists and is not a directory")
        if any(out.iterdir()):
            raise RegistryError(f"{out} is not empty; choose a new directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))


def export_bundle(
    reg: Registry,
    site: str,
    out: Path,
    *,
    since: str | None = None,
    until: str | None = None,
    previous: str | None = None,
) -> ExportResult:
    """Write the bundle of ``site``'s records (optionally an observed_at range) to the new directory ``out``.

    ``previous`` is a signed checkpoint the holder kept from an earlier export; the bundle then carries the
    consistency proof from it. If the registry cannot prove consistency with it, export refuses (ForkError):
    that mismatch is itself the evidence the holder needs, and the operator must investigate, not paper over it.
    """
    tmp = _prepare_out(out)  # first: a bad --out is the user's to fix, whatever else is wrong
    try:
        if reg.can_sign():
            reg.checkpoint()  # integrates anything pending (PostgreSQL) first
        elif reg.latest() is None:  # a read-only node exports against the latest checkpoint the integrator signed
            raise RegistryError("nothing has been signed yet and this node has no private key (use --key)")
        try:  # the manifest is signed below: fail before any work when this node has no key
            reg._signer()
        except RegistryError as exc:
            raise RegistryError(f"an export's manifest is signed with the log key: {exc}") from None
        proof_of_site = reg.prove_site(site)
        note = proof_of_site.checkpoint
        verifier = Verifier.from_vkey(reg.vkey)
        cp = open_checkpoint(note, verifier, origin=reg.origin)
        size = cp.size
        key = proof_of_site.site
        entries = _site_entries(reg, proof_of_site, since, until)
        site_entries = [(i, leaf_hash(reg.leaf(i))) for i in proof_of_site.indices]
        count, root = tree_root(site_entries, proof_of_site.runs)
        if (count, root) != (proof_of_site.count, proof_of_site.root):
            raise IntegrityError(
                f"the records the site index lists for {key} do not hash to its site tree at {size} "
                f"({count} records; site index or entries rewritten)"
            )

        older: dict[int, str] = {}
        for m, _tsa, _tsr, _gen in reg._store.anchors():
            if 0 < m < size:
                row = reg._store.checkpoint_at(m)
                if row is not None:
                    older[m] = row[2]
        if previous is not None:
            try:
                prev = open_checkpoint(previous, verifier, origin=reg.origin)
            except (NoteError, ValueError) as exc:
                raise RegistryError(f"the previous checkpoint is not one of this registry's: {exc}") from None
            if prev.size > size:
                raise ForkError(f"the previous checkpoint (size {prev.size}) is larger than the log ({size})")
            if prev.size == size and prev.root != cp.root:
                raise ForkError(f"the previous checkpoint has the same size ({size}) but a different root")
            if 0 < prev.size < size:
                older[prev.size] = previous if previous.endswith("\n") else previous + "\n"

        files: dict[str, bytes] = {}
        files["checkpoint.txt"] = note.encode("utf-8")
        files["sites.txt"] = proof_of_site.sites_note.encode("utf-8")
        site_doc = proof_json(key, count, root, proof_of_site.map_proof, site_entries, proof_of_site.runs)
        files["site-proof.json"] = rfc8785.dumps(site_doc)
        files["log.vkey"] = (reg.vkey + "\n").encode("ascii")
        for _m, tsa, tsr, _gen in reg._store.anchors(size):
            files[f"checkpoint.{_slug(tsa)}.tsr"] = tsr
        for m, old_note in sorted(older.items()):
            old = open_checkpoint(old_note, verifier, origin=reg.origin)
            proof = reg.consistency_proof(m, size)
            try:
                verify_consistency(m, size, old.root, cp.root, proof)
            except VerificationError:
                raise ForkError(f"the log at size {size} is not consistent with its checkpoint {m}") from None
            files[f"anchors/{m}.txt"] = old_note.encode("utf-8")
            for _m2, tsa, tsr, _gen in reg._store.anchors(m):
                files[f"anchors/{m}.{_slug(tsa)}.tsr"] = tsr
            files[f"consistency/{m}-{size}.txt"] = format_hashes(proof).encode("ascii")
        missing: list[str] = []
        evidence_written: set[str] = set()
        reader = reg.reader(size)
        for entry in entries:
            files[f"records/{entry.index}.json"] = entry.leaf
            proof = inclusion_proof(entry.index, size, reader.hash_at)
            files[f"proofs/{entry.index}.tlog-proof"] = format_proof(entry.index, proof, note).encode("utf-8")
            for ref in evidence_refs(entry.record):
                if ref in evidence_written or ref in missing:
                    continue
                body = reg.evidence(ref)
                if body is None:
                    missing.append(ref)
                else:
                    files[f"evidence/{ref}"] = body
                    evidence_written.add(ref)
        generated_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        files["summary.txt"] = _summary(reg, key, since, until, cp, note, entries, missing, generated_at).encode(
            "utf-8"
        )
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "query": {"site": key, "since": since, "until": until},
            "generated_at": generated_at,
            "checkpoint": {"origin": cp.origin, "size": size, "root": _b64(cp.root)},
            "records": [e.index for e in entries],
            "site": {"count": count, "root": _b64(root), "records_outside_query": count - len(entries)},
            "missing_evidence": [{"sha256": m, "reason": MISSING_REASON} for m in missing],
            "files": {path: hashlib.sha256(data).hexdigest() for path, data in sorted(files.items())},
        }
        if since is None:
            del manifest["query"]["since"]
        if until is None:
            del manifest["query"]["until"]
        files["manifest.json"] = rfc8785.dumps(manifest)
        files["manifest.note"] = reg.sign_note(manifest_note_body(cp.origin, size, files["manifest.json"])).encode()
        for path, data in files.items():
            target = tmp / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if out.exists():
            out.rmdir()  # checked empty above
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(out=out, site=key, size=size, records=len(entries), missing_evidence=missing)


def _site_entries(reg: Registry, proof: Any, since: str | None, until: str | None) -> list[Entry]:
    """The site's records up to the checkpoint, in log order, limited to the observed_at range if one is given.

    Every record the site index lists is read and checked to be of the site: a foreign record would otherwise
    only be caught by the rights holder."""
    observed = ObservedRange.parse(since, until)
    out = []
    for idx in proof.indices:
        leaf = reg.leaf(idx)
        record = parse_leaf(leaf)
        if site_of_record(record) != proof.site:
            raise IntegrityError(f"the site index lists entry {idx} under {proof.site}; it is another site's record")
        if observed.admits(record):
            out.append(Entry(idx, record, leaf))
    return out


def _summary(
    reg: Registry,
    site: str,
    since: str | None,
    until: str | None,
    cp: Any,
    note: str,
    entries: list[Entry],
    missing: list[str],
    generated_at: str,
) -> str:
    """The human-readable cover sheet: what the operator claims, what the maths proves, how to check it."""
    vkey = reg.vkey
    span = ""
    if since or until:
        span = f", observed {'from ' + since if since else ''}{' ' if since and until else ''}"
        span += f"{'until ' + until if until else ''}"
    lines = [
        f"Opt-out registry export for {site}{span}",
        "=" * 72,
        "",
        f"Generated at     {generated_at}",
        f"Registry (log)   {cp.origin}",
        f"Verifier key     {vkey}",
        f"Checkpoint       size {cp.size}, root {_b64(cp.root)}",
        f"Records          {len(entries)}",
        "",
        "What this bundle shows",
        "----------------------",
        f"This bundle holds every record about {site} in the log up to entry {cp.size}"
        + (" in the queried time range (the others are listed by hash in site-proof.json)." if span else "."),
        "Each file in records/ is a statement the crawler operator logged when its crawler honoured an opt-out",
        "on your site (what it saw, which rule applied, what it did). Each proofs/ file proves that record is",
        f"entry N of the operator's append-only log of {cp.size} entries, whose state is fixed by the signed",
        "checkpoint in checkpoint.txt. Files in evidence/ are the exact bytes the crawler saw (e.g. robots.txt);",
        "each record names its evidence by SHA-256.",
        "",
        "How to check it (offline, no trust in the operator's database needed)",
        "-------------------------------------------------------------------",
        f"  optout registry verify {'<this directory>'} --vkey '{vkey}'",
        "Pin the key you got from the operator's published channel, not the copy in log.vkey.",
        "Keep checkpoint.txt. Next time, ask for an export with --previous checkpoint.txt: it will carry a",
        "consistency proof showing the log was only appended to in between, never rewritten.",
        "",
        "What it does not prove",
        "----------------------",
        "* That the crawler logged everything it honoured: the log proves what was written, not what was left",
        "  out at the source. (Completeness *within the log* is proven: sites.txt, signed with the log key,",
        "  commits to every site's record count and site-tree root at this checkpoint, and site-proof.json",
        "  shows yours; a missing, extra or foreign record fails verification. Anyone holding the whole log",
        "  can recompute sites.txt, so a lying one is caught by an audit.)",
        "* Truth: the log makes the operator's claims non-repudiable and not back-datable; it does not make them",
        "  true. Timestamps in records are the crawler's clock unless an RFC 3161 token (*.tsr) anchors them.",
        "",
    ]
    if missing:
        lines += [f"Evidence not stored by the operator ({len(missing)}): " + ", ".join(missing), ""]
    lines += ["Records", "-------", "index  observed_at  protocol (where)  purposes  decision  url  evidence-sha256"]
    for e in entries:
        refs = ",".join(r[:16] + "…" for r in evidence_refs(e.record)) or "-"
        lines.append("  ".join([str(e.index), *summary_columns(e.record), refs]))
    lines += ["", "Signed checkpoint", "-----------------", note.rstrip("\n"), ""]
    return "\n".join(lines)


__all__ = ["FORMAT", "ExportResult", "IntegrityError", "export_bundle"]
