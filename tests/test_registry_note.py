"""C2SP signed notes and checkpoints: REGISTRY.md §8 vectors, the C2SP and Go sumdb/note vectors, strict parsing
and the pinned-key rules (unknown signatures ignored, a bad pinned signature rejects the note)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optout_registry.note import Checkpoint, NoteError, Signer, Verifier, open_checkpoint, open_note

SEED = hashlib.sha256(b"optout-registry test key v1").digest()
NAME = "example.org/optout-registry-test"
VKEY = "example.org/optout-registry-test+f71aa335+ATU3X3uXFRrwJ0IuNRTfkD9bheb/pT3ZMptMWqCoH/b+"
ROOT8 = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
NOTE8 = (
    "example.org/optout-registry-test\n"
    "8\n"
    "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"
    "\n"
    "\u2014 example.org/optout-registry-test 9xqjNdsjr/y2WwaiqWG5735IMVjFbUYbbhNaZBvJOgJOK7TPoocyAMRFZojhVeNE2LW2OmdM"
    "UZ3EVoC73ibOaQLPKwg=\n"
)

C2SP_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_NOTE = (
    "This is an example message.\n\n\u2014 example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


@pytest.fixture
def signer() -> Signer:
    return Signer.from_seed(NAME, SEED)


def test_section8_key_and_checkpoint_are_exact(signer):
    assert SEED.hex() == "fb8bcc070cedea1aa854faa8f66373ad036f19a1c31ed40b4809f4b897975c9e"
    assert signer.vkey() == VKEY
    assert signer.key_id.hex() == "f71aa335"
    checkpoint = Checkpoint(NAME, 8, ROOT8)
    assert checkpoint.body() == "example.org/optout-registry-test\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"
    assert signer.sign(checkpoint) == NOTE8  # Ed25519 is deterministic
    assert open_checkpoint(NOTE8, Verifier.from_vkey(VKEY)) == checkpoint
    assert open_checkpoint(NOTE8, Verifier.from_vkey(VKEY), origin=NAME) == checkpoint


def test_section8_checkpoint_altered_fails():
    verifier = Verifier.from_vkey(VKEY)
    for altered in (
        NOTE8.replace("\n8\n", "\n9\n"),
        NOTE8.replace("XcnaeacG", "XcnaeacH"),
        NOTE8.replace("example.org/optout-registry-test\n8", "example.org/optout-registry-tesT\n8"),
        NOTE8.replace("9xqjNdsj", "9xqjNdsk"),
    ):
        with pytest.raises(NoteError):
            open_checkpoint(altered, verifier)
    with pytest.raises(NoteError, match="origin"):
        open_checkpoint(NOTE8, verifier, origin="example.org/other")


def test_c2sp_vector_verifies():
    verifier = Verifier.from_vkey(C2SP_VKEY)
    assert verifier.name == "example.com/foo" and verifier.key_id.hex() == "530d903a"
    assert open_note(C2SP_NOTE, verifier) == "This is an example message.\n"
    assert open_note(C2SP_NOTE.encode("utf-8"), verifier) == "This is an example message.\n"
    with pytest.raises(NoteError):
        open_note(C2SP_NOTE.replace("example message", "example massage"), verifier)


def test_go_vectors_sign_and_verify_byte_for_byte():
    signer = Signer.from_private_key_text(GO_SKEY)
    assert signer.name == "PeterNeumann"
    assert signer.vkey() == GO_VKEY
    assert signer.private_key_text() == GO_SKEY
    assert signer.sign_note(GO_TEXT) == GO_TEXT + "\n" + GO_SIG
    assert open_note(GO_TEXT + "\n" + GO_SIG, Verifier.from_vkey(GO_VKEY)) == GO_TEXT


def test_private_key_text_round_trip_and_repr_hides_seed(signer):
    text = signer.private_key_text()
    assert text.startswith("PRIVATE+KEY+example.org/optout-registry-test+f71aa335+")
    again = Signer.from_private_key_text(text + "\n")
    assert again.vkey() == signer.vkey()
    assert base64.b64encode(b"\x01" + SEED).decode() not in repr(signer)
    fresh = Signer.generate("example.net/log")
    assert Signer.from_private_key_text(fresh.private_key_text()).vkey() == fresh.vkey()
    assert Signer.from_private_bytes(NAME, SEED).vkey() == VKEY
    for bad in (
        text.replace("PRIVATE+KEY+", "PRIVATE+KEX+"),
        text.replace("f71aa335", "f71aa336"),
        text[:-4],
        "PRIVATE+KEY+name",
    ):
        with pytest.raises(NoteError):
            Signer.from_private_key_text(bad)


def test_vkey_parsing_is_strict():
    # The base64 part of our own test key contains '/' and ends in '+': split on the first two '+' only.
    assert Verifier.from_vkey(VKEY).vkey() == VKEY
    assert Verifier.from_vkey(VKEY + "\n").vkey() == VKEY
    bad_keys = [
        VKEY.replace("f71aa335", "f71aa336"),  # key ID does not match
        VKEY.replace("f71aa335", "F71AA335"),
        VKEY.replace("+ATU3", "+AjU3"),  # wrong type byte / key
        VKEY.replace("example.org", "example org"),
        "example.org+f71aa335",
        "+f71aa335+ATU3X3uXFRrwJ0IuNRTfkD9bheb/pT3ZMptMWqCoH/b+",
        VKEY[:-2],
        VKEY + "AA",
        "",
        "name+00000000+AQ==",
    ]
    for bad in bad_keys:
        with pytest.raises(NoteError):
            Verifier.from_vkey(bad)
    with pytest.raises(NoteError):
        Verifier.from_vkey(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "a b", "a+b", "tab\there", "line\nbreak", "nbsp\u00a0name"])
def test_invalid_key_names_refused(name):
    with pytest.raises(NoteError):
        Signer.from_seed(name, SEED)


def test_unknown_signatures_are_ignored_and_needed_key_required(signer):
    other = Signer.from_seed("witness.example", hashlib.sha256(b"other").digest())
    body = Checkpoint(NAME, 8, ROOT8).body()
    cosigned = body + "\n" + other.signature_line(body) + signer.signature_line(body)
    assert open_checkpoint(cosigned, signer.verifier()).size == 8
    only_other = body + "\n" + other.signature_line(body)
    with pytest.raises(NoteError, match="no signature from the pinned key"):
        open_checkpoint(only_other, signer.verifier())
    # Same name, different key (a forger's key): its key ID differs, so it is ignored and the note is refused.
    forger = Signer.from_seed(NAME, hashlib.sha256(b"forger").digest())
    forged = forger.sign(Checkpoint(NAME, 9, ROOT8))
    with pytest.raises(NoteError, match="no signature from the pinned key"):
        open_checkpoint(forged, signer.verifier())


def test_bad_signature_from_pinned_key_rejects_the_note(signer):
    body = Checkpoint(NAME, 8, ROOT8).body()
    good = signer.signature_line(body)
    raw = bytearray(base64.b64decode(good.split(" ")[2]))
    raw[10] ^= 1
    bad = f"\u2014 {NAME} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(NoteError, match="invalid signature"):
        open_checkpoint(body + "\n" + good + bad, signer.verifier())
    with pytest.raises(NoteError, match="invalid signature"):
        open_checkpoint(body + "\n" + bad, signer.verifier())


@pytest.mark.parametrize(
    "note",
    [
        NOTE8.replace("\n\n", "\n"),  # no blank line
        NOTE8[:-1],  # no final newline
        NOTE8.replace("\u2014 ", "- "),  # wrong dash
        NOTE8.replace("\u2014 ", "\u2014"),
        NOTE8.replace("8\n", "8\r\n", 1),  # control character
        NOTE8.replace("\n8\n", "\n\x008\n"),
        NOTE8.replace("9xqjNdsj", "9xqj*dsj"),  # bad base64
        NOTE8.replace("g=\n", "g\n"),  # bad padding
        NOTE8 + "\n",  # empty signature line
        NOTE8.split("\n\n")[0] + "\n\n\u2014 " + NAME + " AAAA\n",  # too short
        NOTE8.split("\n\n")[0] + "\n\n",  # no signatures
        "",
        "\n\n",
    ],
)
def test_malformed_notes_refused(note):
    with pytest.raises(NoteError):
        open_checkpoint(note, Verifier.from_vkey(VKEY))


def test_note_size_and_signature_count_limits(signer):
    body = Checkpoint(NAME, 8, ROOT8).body()
    other = Signer.from_seed("w.example", hashlib.sha256(b"w").digest())
    many = body + "\n" + other.signature_line(body) * 101 + signer.signature_line(body)
    with pytest.raises(NoteError, match="more than"):
        open_checkpoint(many, signer.verifier())
    with pytest.raises(NoteError, match="larger"):
        open_note("x" * (1 << 21), signer.verifier())
    with pytest.raises(NoteError, match="UTF-8"):
        open_note(b"\xff\xfe" + NOTE8.encode(), signer.verifier())
    with pytest.raises(NoteError):
        open_note(NOTE8, "not a verifier")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body",
    [
        "origin\n08\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",  # leading zero
        "origin\n+8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
        "origin\n 8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
        "origin\n-1\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
        "origin\n8.0\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
        "origin\n\u0668\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",  # Arabic-Indic digit eight
        "origin\n99999999999999999999\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
        "origin\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyh=\n",  # non-canonical padding bits
        "origin\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQ==\n",  # 31 bytes
        "origin\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz-Nw7_RgQyg=\n",  # base64url alphabet
        "origin\n8\n",
        "origin\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",  # no newline
        "\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",  # empty origin
        "origin\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n",  # empty extension line
    ],
)
def test_checkpoint_parse_is_strict(body):
    with pytest.raises(NoteError):
        Checkpoint.parse(body)


def test_checkpoint_extensions_accepted_and_kept():
    body = "origin\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nextension one\n"
    checkpoint = Checkpoint.parse(body)
    assert checkpoint.size == 0 and checkpoint.extensions == ("extension one",)
    assert checkpoint.body() == body
    assert checkpoint.root == hashlib.sha256(b"").digest()


def test_checkpoint_constructor_validates():
    for args in (("", 1, ROOT8), ("o\n", 1, ROOT8), ("o", -1, ROOT8), ("o", 1, ROOT8[:31]), ("o", True, ROOT8)):
        with pytest.raises(NoteError):
            Checkpoint(*args)  # type: ignore[arg-type]


@given(
    origin=st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40),
    size=st.integers(0, 2**63 - 1),
    root=st.binary(min_size=32, max_size=32),
)
def test_checkpoint_sign_open_round_trip(origin, size, root):
    checkpoint = Checkpoint(origin, size, root)
    assert Checkpoint.parse(checkpoint.body()) == checkpoint
    signer = Signer.from_seed(NAME, SEED)
    assert open_checkpoint(signer.sign(checkpoint), signer.verifier()) == checkpoint
