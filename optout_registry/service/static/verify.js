/*
 * Checks a registry record in the browser, so a rights holder does not have to trust the server that sent it.
 *
 * What it verifies (REGISTRY.md §6.8, the same steps as `optout registry verify`):
 *   1. the verifier key the holder pinned parses and its key ID is right (C2SP signed-note vkey);
 *   2. the checkpoint (C2SP signed note) carries a valid Ed25519 signature by that key: WebCrypto's Ed25519 when
 *      the browser has it, else the small RFC 8032 implementation below (BigInt arithmetic, SHA-512 from
 *      WebCrypto) — both give the same answer, and the result says which one ran;
 *   3. the record's exact leaf bytes hash (RFC 6962: SHA-256(0x00 || leaf)) into the checkpoint's root through
 *      the inclusion proof (RFC 9162 §2.1.3.2), and the tlog-proof names the same index and checkpoint;
 *   4. optionally, an older checkpoint the holder kept is consistent with the new one (RFC 9162 §2.1.4.2).
 * No network access happens here: callers pass in the bytes they fetched.
 *
 * A classic script (not an ES module) so it loads under the page's strict CSP and also runs in Node for tests.
 */
(function (root) {
  "use strict";

  const subtle = root.crypto && root.crypto.subtle;
  const enc = new TextEncoder();

  function b64decode(text) {
    if (typeof text !== "string" || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
      throw new Error("not canonical base64");
    }
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    if (b64encode(out) !== text) throw new Error("not canonical base64");
    return out;
  }

  function b64encode(bytes) {
    let bin = "";
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin);
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let pos = 0;
    for (const p of parts) {
      out.set(p, pos);
      pos += p.length;
    }
    return out;
  }

  function equal(a, b) {
    if (a.length !== b.length) return false;
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
    return diff === 0;
  }

  async function sha256(data) {
    return new Uint8Array(await subtle.digest("SHA-256", data));
  }

  async function leafHash(leaf) {
    return sha256(concat(new Uint8Array([0]), leaf));
  }

  async function nodeHash(left, right) {
    return sha256(concat(new Uint8Array([1]), left, right));
  }

  function decimal(text, what) {
    if (!/^(0|[1-9][0-9]{0,18})$/.test(text)) throw new Error(what + " is not a decimal without leading zeros");
    return BigInt(text);
  }

  // -- RFC 9162 proofs -------------------------------------------------------------------------------------

  async function rootFromInclusionProof(index, size, leaf, proof) {
    let fn = BigInt(index);
    let sn = BigInt(size) - 1n;
    if (fn > sn) throw new Error("index " + index + " is not below tree size " + size);
    let r = leaf;
    for (const p of proof) {
      if (sn === 0n) throw new Error("inclusion proof is longer than the tree is deep");
      if ((fn & 1n) === 1n || fn === sn) {
        r = await nodeHash(p, r);
        if ((fn & 1n) === 0n) {
          while (fn !== 0n && (fn & 1n) === 0n) {
            fn >>= 1n;
            sn >>= 1n;
          }
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) throw new Error("inclusion proof is too short");
    return r;
  }

  async function verifyConsistency(first, second, firstRoot, secondRoot, proof) {
    first = BigInt(first);
    second = BigInt(second);
    if (first > second) throw new Error("the older tree is larger than the newer one");
    if (first === second) {
      if (proof.length !== 0 || !equal(firstRoot, secondRoot)) throw new Error("same size but different roots");
      return true;
    }
    if (first === 0n) return proof.length === 0;
    if (proof.length === 0) throw new Error("empty consistency proof");
    let path = proof.slice();
    if ((first & (first - 1n)) === 0n) path = [firstRoot].concat(path);
    let fn = first - 1n;
    let sn = second - 1n;
    while ((fn & 1n) === 1n) {
      fn >>= 1n;
      sn >>= 1n;
    }
    let fr = path[0];
    let sr = path[0];
    for (const c of path.slice(1)) {
      if (sn === 0n) throw new Error("consistency proof is too long");
      if ((fn & 1n) === 1n || fn === sn) {
        fr = await nodeHash(c, fr);
        sr = await nodeHash(c, sr);
        if ((fn & 1n) === 0n) {
          while (fn !== 0n && (fn & 1n) === 0n) {
            fn >>= 1n;
            sn >>= 1n;
          }
        }
      } else {
        sr = await nodeHash(sr, c);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) throw new Error("consistency proof is too short");
    if (!equal(fr, firstRoot)) throw new Error("the proof does not lead to the older root");
    if (!equal(sr, secondRoot)) throw new Error("the proof does not lead to the newer root");
    return true;
  }

  // -- C2SP signed notes, vkeys, checkpoints, tlog-proofs ---------------------------------------------------

  async function parseVkey(vkey) {
    vkey = String(vkey).trim();
    const a = vkey.indexOf("+");
    const b = vkey.indexOf("+", a + 1);
    if (a <= 0 || b < 0) throw new Error("a verifier key looks like name+keyid+base64");
    const name = vkey.slice(0, a);
    const idHex = vkey.slice(a + 1, b);
    const key = b64decode(vkey.slice(b + 1));
    if (!/^[0-9a-f]{8}$/.test(idHex)) throw new Error("key ID must be 8 hex digits");
    if (key.length !== 33 || key[0] !== 1) throw new Error("only Ed25519 verifier keys (type 0x01) are supported");
    const pub = key.slice(1);
    const id = (await sha256(concat(enc.encode(name + "\n"), new Uint8Array([1]), pub))).slice(0, 4);
    if (hex(id) !== idHex) throw new Error("the key ID does not match the key");
    return { name, id, pub };
  }

  function parseNote(text) {
    if (/[\x00-\x09\x0b-\x1f\x7f]/.test(text)) throw new Error("note contains control characters");
    const cut = text.lastIndexOf("\n\n");
    if (cut < 0 || !text.endsWith("\n")) throw new Error("not a signed note");
    const body = text.slice(0, cut + 1);
    const signatures = text
      .slice(cut + 2, -1)
      .split("\n")
      .map((line) => {
        if (!line.startsWith("\u2014 ")) throw new Error("malformed signature line");
        const parts = line.slice(2).split(" ");
        if (parts.length !== 2) throw new Error("malformed signature line");
        const raw = b64decode(parts[1]);
        if (raw.length < 5) throw new Error("signature too short");
        return { name: parts[0], id: raw.slice(0, 4), sig: raw.slice(4) };
      });
    return { body, signatures };
  }

  function parseCheckpoint(body) {
    const lines = body.slice(0, -1).split("\n");
    if (lines.length < 3) throw new Error("a checkpoint has origin, size and root lines");
    const root = b64decode(lines[2]);
    if (root.length !== 32) throw new Error("the root must be 32 bytes");
    return { origin: lines[0], size: decimal(lines[1], "tree size"), root };
  }

  function parseTlogProof(text) {
    const cut = text.indexOf("\n\n");
    if (cut < 0) throw new Error("tlog-proof: no blank line before the checkpoint");
    const head = text.slice(0, cut).split("\n");
    if (head[0] !== "c2sp.org/tlog-proof@v1") throw new Error("tlog-proof: wrong header");
    let pos = 1;
    if (head[pos] && head[pos].startsWith("extra ")) pos++;
    if (!head[pos] || !head[pos].startsWith("index ")) throw new Error("tlog-proof: missing index line");
    const index = decimal(head[pos].slice(6), "tlog-proof index");
    const hashes = head.slice(pos + 1).map((h) => {
      const raw = b64decode(h);
      if (raw.length !== 32) throw new Error("tlog-proof: hash of the wrong length");
      return raw;
    });
    return { index, hashes, checkpoint: text.slice(cut + 2) };
  }

  // -- Ed25519 ------------------------------------------------------------------------------------------------

  const P = (1n << 255n) - 19n;
  const L = (1n << 252n) + 27742317777372353535851937790883648493n;
  const mod = (a, m = P) => {
    const r = a % m;
    return r >= 0n ? r : r + m;
  };
  const pow = (b, e, m = P) => {
    let r = 1n;
    b = mod(b, m);
    while (e > 0n) {
      if (e & 1n) r = (r * b) % m;
      b = (b * b) % m;
      e >>= 1n;
    }
    return r;
  };
  const inv = (a) => pow(a, P - 2n);
  const D = mod(-121665n * inv(121666n));
  const SQRT_M1 = pow(2n, (P - 1n) / 4n);

  function recoverX(y, sign) {
    const x2 = mod((y * y - 1n) * inv(D * y * y + 1n));
    if (x2 === 0n) return sign ? null : 0n;
    let x = pow(x2, (P + 3n) / 8n);
    if (mod(x * x - x2) !== 0n) x = mod(x * SQRT_M1);
    if (mod(x * x - x2) !== 0n) return null;
    if ((x & 1n) !== sign) x = P - x;
    return x;
  }

  const GY = mod(4n * inv(5n));
  const G = [recoverX(GY, 0n), GY, 1n, mod(recoverX(GY, 0n) * GY)];

  function add(p, q) {
    const a = mod((p[1] - p[0]) * (q[1] - q[0]));
    const b = mod((p[1] + p[0]) * (q[1] + q[0]));
    const c = mod(2n * p[3] * q[3] * D);
    const d = mod(2n * p[2] * q[2]);
    const e = b - a;
    const f = d - c;
    const g = d + c;
    const h = b + a;
    return [mod(e * f), mod(g * h), mod(f * g), mod(e * h)];
  }

  function mul(s, p) {
    let q = [0n, 1n, 1n, 0n];
    while (s > 0n) {
      if (s & 1n) q = add(q, p);
      p = add(p, p);
      s >>= 1n;
    }
    return q;
  }

  function le(bytes) {
    let v = 0n;
    for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]);
    return v;
  }

  function encodePoint(p) {
    const zi = inv(p[2]);
    const x = mod(p[0] * zi);
    let y = mod(p[1] * zi) | ((x & 1n) << 255n);
    const out = new Uint8Array(32);
    for (let i = 0; i < 32; i++) {
      out[i] = Number(y & 255n);
      y >>= 8n;
    }
    return out;
  }

  function decodePoint(bytes) {
    let y = le(bytes);
    const sign = y >> 255n;
    y &= (1n << 255n) - 1n;
    if (y >= P) return null;
    const x = recoverX(y, sign);
    return x === null ? null : [x, y, 1n, mod(x * y)];
  }

  /** RFC 8032 §5.1.7 verification, for browsers whose WebCrypto lacks Ed25519. */
  async function ed25519Bundled(pub, sig, msg) {
    if (pub.length !== 32 || sig.length !== 64) return false;
    const A = decodePoint(pub);
    const R = decodePoint(sig.slice(0, 32));
    if (!A || !R) return false;
    const S = le(sig.slice(32));
    if (S >= L) return false;
    const k = mod(le(new Uint8Array(await subtle.digest("SHA-512", concat(sig.slice(0, 32), pub, msg)))), L);
    return equal(encodePoint(mul(S, G)), encodePoint(add(R, mul(k, A))));
  }

  async function ed25519(pub, sig, msg, options = {}) {
    if (!options.forceBundled) {
      let key = null;
      try {
        key = await subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]);
      } catch (e) {
        key = null; // this browser has no Ed25519 in WebCrypto
      }
      if (key) return { ok: await subtle.verify({ name: "Ed25519" }, key, sig, msg), via: "WebCrypto Ed25519" };
    }
    return { ok: await ed25519Bundled(pub, sig, msg), via: "bundled Ed25519 (RFC 8032)" };
  }

  /** Open a checkpoint note with the pinned key: returns {origin, size, root, via} or throws. */
  async function openCheckpoint(noteText, vkey, options = {}) {
    const key = await parseVkey(vkey);
    const note = parseNote(noteText);
    const mine = note.signatures.filter((s) => s.name === key.name && equal(s.id, key.id));
    if (mine.length === 0) throw new Error("the checkpoint carries no signature by the pinned key " + key.name);
    let via = "";
    for (const s of mine) {
      const res = await ed25519(key.pub, s.sig, enc.encode(note.body), options);
      via = res.via;
      if (!res.ok) throw new Error("the checkpoint's signature does not verify with the pinned key");
    }
    const cp = parseCheckpoint(note.body);
    return { ...cp, via, keyName: key.name };
  }

  /**
   * Verify one record: {leaf (exact text), index, tlogProof, checkpoint (optional: the note the page showed),
   * vkey (pinned), site (optional)}. Returns {ok, steps: [{name, ok, detail}], size, root}.
   */
  async function verifyRecord(input, options = {}) {
    const steps = [];
    const step = (name, ok, detail) => steps.push({ name, ok, detail: detail || "" });
    let ok = true;
    let size = null;
    let rootHex = null;
    try {
      const proof = parseTlogProof(input.tlogProof);
      step("tlog-proof parsed", true, "index " + proof.index + ", " + proof.hashes.length + " proof hashes");
      if (proof.index !== BigInt(input.index)) throw new Error("the tlog-proof is for another index");
      if (input.checkpoint && input.checkpoint !== proof.checkpoint) {
        throw new Error("the tlog-proof embeds another checkpoint than the one shown");
      }
      const cp = await openCheckpoint(proof.checkpoint, input.vkey, options);
      size = cp.size.toString();
      rootHex = hex(cp.root);
      step("checkpoint signature", true, "signed by " + cp.keyName + " (" + cp.via + "), tree size " + size);
      if (cp.origin !== cp.keyName) step("origin", true, "note: origin " + cp.origin + " differs from the key name");
      const leafBytes = enc.encode(input.leaf);
      const lh = await leafHash(leafBytes);
      step("leaf hash", true, hex(lh));
      if (input.site) {
        const rec = JSON.parse(input.leaf);
        const site = rec && rec.target && rec.target.site;
        if (String(site).toLowerCase() !== input.site) throw new Error("the record is about " + site + ", not " + input.site);
        step("record is about " + input.site, true, "");
      }
      const computed = await rootFromInclusionProof(proof.index, cp.size, lh, proof.hashes);
      if (!equal(computed, cp.root)) throw new Error("the inclusion proof does not lead to the signed root");
      step("inclusion proof", true, "record #" + proof.index + " is in the log of " + size + " entries");
    } catch (e) {
      ok = false;
      step("failed", false, e && e.message ? e.message : String(e));
    }
    return { ok, steps, size, root: rootHex };
  }

  /** An older checkpoint (kept by the holder) against a newer one, both opened with the pinned key. */
  async function verifyHistory(oldNote, newNote, proofB64, vkey, options = {}) {
    const older = await openCheckpoint(oldNote, vkey, options);
    const newer = await openCheckpoint(newNote, vkey, options);
    const proof = proofB64.map(b64decode);
    await verifyConsistency(older.size, newer.size, older.root, newer.root, proof);
    return { first: older.size.toString(), second: newer.size.toString() };
  }

  root.OptoutVerify = {
    b64decode,
    b64encode,
    hex,
    leafHash,
    rootFromInclusionProof,
    verifyConsistency,
    parseVkey,
    parseNote,
    parseCheckpoint,
    parseTlogProof,
    ed25519,
    ed25519Bundled,
    openCheckpoint,
    verifyRecord,
    verifyHistory,
  };
})(typeof window !== "undefined" ? window : globalThis);
