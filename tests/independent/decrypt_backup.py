#!/usr/bin/env python3
"""Extracts every file of a Finder/iTunes backup folder (iOS 10 and later), plain or encrypted,
as OUT/<domain>/<relativePath>: the independent counterpart of `ibackup extract`.

Written from shared/design/backup-format.md and public facts about the format only, with no
knowledge of ibackup's Rust code, so that a mistake there cannot be mirrored here. It needs the
standard library (plistlib, sqlite3, hashlib) and PyPI's `cryptography` for AES and the RFC 3394
key unwrap.

  decrypt_backup.py BACKUP OUT [--password-file F] [--json]

What it does, step by step, for an encrypted backup:
  1. reads Manifest.plist (IsEncrypted, BackupKeyBag, ManifestKey);
  2. splits the keybag's tag-length-value records into its header and one record per class;
  3. derives the key-encryption key: PBKDF2-HMAC-SHA256(password, DPSL, DPIC), then
     PBKDF2-HMAC-SHA1(that, SALT, ITER), 32 bytes each (only the SHA-1 step without DPSL/DPIC);
  4. unwraps every class key whose WRAP has the password bit (2); a failed integrity check there
     means a wrong password;
  5. unwraps ManifestKey (4-byte little-endian class, 40-byte wrapped key) and decrypts
     Manifest.db (AES-256-CBC, zero IV), opened read-only with sqlite3 from a scratch copy;
  6. for each file row (flags 1): decodes the NSKeyedArchiver MBFile record for Size,
     LastModified and EncryptionKey, unwraps the file's key with its class key, decrypts the blob
     <fileID[:2]>/<fileID>, strips its PKCS#7 padding, keeps Size bytes, writes the file and sets
     its access and modified times to LastModified.
A plain backup takes the same path without the cryptography: each blob is copied, Size bytes.
Directory rows are made only as a file needs them; symlink rows are not made.

The password comes from --password-file (its first line, without the line ending) or the
IBACKUP_PASSWORD environment variable; never from the command line.

Blobs that are missing, the wrong length, or that do not decrypt are named on stderr and the run
goes on. A blob of the wrong length is still written, as far as its bytes (its whole blocks, when
encrypted) go; a blob that does not decrypt is not written. Rows whose domain or path could
leave OUT (absolute, `..`, empty parts, NUL) are refused and named on stderr.

--json prints one JSON object on stdout: `encrypted`, `written` (one object per file written:
domain, relativePath, fileID, size (bytes written), last_modified (Unix seconds or null),
sha256), and the lists `missing`, `wrong_size`, `damaged`, `refused` (each of
{domain, relativePath, fileID}).

Exit codes: 0 every file row was written whole; 1 some were missing, the wrong size, damaged or
refused; 2 the backup could not be read (bad arguments, no Manifest.db, a wrong or missing
password, OUT not empty); 3 the `cryptography` package is missing.
"""

import argparse
import hashlib
import json
import os
import plistlib
import shutil
import sqlite3
import struct
import sys
import tempfile

try:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap
except ImportError:
    sys.stderr.write(
        "decrypt_backup.py: the Python package 'cryptography' is not installed; "
        "install it with: python3 -m pip install cryptography\n"
    )
    sys.exit(3)

SQLITE_MAGIC = b"SQLite format 3\x00"
BLOCK = 16
CHUNK = 1 << 20
PASSWORD_BIT = 2  # keybag WRAP: the class key is wrapped with the password-derived key


class Unusable(Exception):
    """The backup as a whole cannot be read: exit 2."""


def say(message):
    sys.stderr.write(f"decrypt_backup.py: {message}\n")


# --- the password and the keybag ------------------------------------------------------------


def read_password(path):
    if path:
        with open(path, "rb") as f:
            first = f.read().split(b"\n", 1)[0]
        return first[:-1] if first.endswith(b"\r") else first
    value = os.environb.get(b"IBACKUP_PASSWORD")
    if value is None:
        raise Unusable("the backup is encrypted: give --password-file or set IBACKUP_PASSWORD")
    return value


NUMERIC_TAGS = {b"VERS", b"TYPE", b"WRAP", b"ITER", b"DPWT", b"DPIC", b"CLAS", b"KTYP"}


def parse_keybag(data):
    """Returns (header, classes): dicts of tag -> value; 4-byte numeric tags become ints.

    The first UUID is the keybag's own; each later UUID opens a class record."""
    header, classes, current = {}, [], None
    at = 0
    while at + 8 <= len(data):
        tag = data[at : at + 4]
        (length,) = struct.unpack(">I", data[at + 4 : at + 8])
        value = data[at + 8 : at + 8 + length]
        if len(value) != length:
            raise Unusable("the keybag is cut short")
        at += 8 + length
        if tag in NUMERIC_TAGS and length == 4:
            value = struct.unpack(">I", value)[0]
        if tag == b"UUID" and b"UUID" in header:
            current = {}
            classes.append(current)
        target = header if current is None else current
        target[tag] = value
    return header, classes


def key_encryption_key(password, header):
    if b"SALT" not in header or b"ITER" not in header:
        raise Unusable("the keybag has no SALT or ITER")
    secret = password
    if b"DPSL" in header and b"DPIC" in header:
        secret = hashlib.pbkdf2_hmac("sha256", secret, header[b"DPSL"], header[b"DPIC"], 32)
    return hashlib.pbkdf2_hmac("sha1", secret, header[b"SALT"], header[b"ITER"], 32)


def unlock(keybag, password):
    """The class keys the password opens: {class: 32-byte key}."""
    header, classes = parse_keybag(keybag)
    kek = key_encryption_key(password, header)
    keys = {}
    for record in classes:
        if b"CLAS" not in record or b"WPKY" not in record:
            continue
        if not record.get(b"WRAP", 0) & PASSWORD_BIT:
            continue  # wrapped with a key that never leaves the phone
        try:
            keys[record[b"CLAS"]] = aes_key_unwrap(kek, record[b"WPKY"])
        except InvalidUnwrap:
            raise Unusable("wrong password: a class key failed its integrity check")
    if not keys:
        raise Unusable("the keybag holds no class key wrapped with the password")
    return keys


def unwrap_protected(class_keys, protected):
    """A ManifestKey / EncryptionKey: little-endian class, then the RFC 3394 wrapped key."""
    if len(protected) < 4 + 40:
        raise ValueError(f"a wrapped key of {len(protected)} bytes")
    (cls,) = struct.unpack("<I", protected[:4])
    if cls not in class_keys:
        raise ValueError(f"protection class {cls} is not unlocked")
    return aes_key_unwrap(class_keys[cls], protected[4:])


# --- AES-256-CBC with a zero IV ---------------------------------------------------------------


def decryptor(key):
    return Cipher(algorithms.AES(key), modes.CBC(bytes(BLOCK))).decryptor()


def padding_length(plain):
    """The PKCS#7 padding length at the end of `plain`, or None when it is not valid padding."""
    if not plain:
        return None
    n = plain[-1]
    if not 1 <= n <= BLOCK or n > len(plain) or plain[-n:] != bytes([n]) * n:
        return None
    return n


def decrypt_manifest_db(key, data):
    """Manifest.db, decrypted; its PKCS#7 padding removed when there is some (some tools write
    it without padding: a SQLite file is a whole number of pages, so a stripped length that is
    not a whole number of pages means the last bytes were not padding)."""
    if len(data) % BLOCK:
        raise Unusable("the encrypted Manifest.db is not a whole number of AES blocks")
    d = decryptor(key)
    plain = d.update(data) + d.finalize()
    if not plain.startswith(SQLITE_MAGIC):
        raise Unusable("Manifest.db does not decrypt to a SQLite database (wrong ManifestKey?)")
    n = padding_length(plain)
    if n is not None:
        page = struct.unpack(">H", plain[16:18])[0]
        page = 65536 if page == 1 else page
        if page and (len(plain) - n) % page == 0:
            plain = plain[:-n]
    return plain


# --- MBFile records -------------------------------------------------------------------------


def mbfile(record):
    """(Size or None, LastModified or None, wrapped EncryptionKey or None) of an MBFile."""
    archive = plistlib.loads(record)
    objects = archive["$objects"]

    def resolve(value):
        while isinstance(value, plistlib.UID):
            value = objects[value.data]
        return value

    root = resolve(archive["$top"]["root"])
    size = root.get("Size")
    modified = root.get("LastModified")
    key = None
    if "EncryptionKey" in root:
        holder = resolve(root["EncryptionKey"])
        key = resolve(holder["NS.data"]) if isinstance(holder, dict) else holder
        if not isinstance(key, bytes):
            raise ValueError("EncryptionKey holds no bytes")
    size = size if isinstance(size, int) and size >= 0 else None
    modified = modified if isinstance(modified, int) else None
    return size, modified, key


# --- output paths ---------------------------------------------------------------------------


def safe_parts(domain, relative_path):
    """The path components of OUT/<domain>/<relativePath>, or None when one could leave OUT."""
    if not domain or "/" in domain or "\x00" in domain or domain in (".", ".."):
        return None
    parts = relative_path.split("/")
    if relative_path.startswith("/") or "\x00" in relative_path:
        return None
    if any(p in ("", ".", "..") for p in parts):
        return None
    return [domain] + parts


def make_parents(out, parts):
    """Creates the folders above OUT/<parts>, refusing any that is not a plain folder."""
    at = out
    for part in parts[:-1]:
        at = os.path.join(at, part)
        try:
            os.mkdir(at)
        except FileExistsError:
            if os.path.islink(at) or not os.path.isdir(at):
                raise ValueError(f"{at} is in the way")
    return os.path.join(at, parts[-1])


# --- writing one file -----------------------------------------------------------------------


def copy_plain(src, dst, size):
    """Copies Size bytes (all of it when Size is unknown); returns (bytes written, whole)."""
    digest = hashlib.sha256()
    written = 0
    with open(src, "rb") as f, open(dst, "xb") as g:
        while size is None or written < size:
            want = CHUNK if size is None else min(CHUNK, size - written)
            chunk = f.read(want)
            if not chunk:
                break
            g.write(chunk)
            digest.update(chunk)
            written += len(chunk)
        extra = f.read(1)
    whole = size is None or (written == size and not extra)
    return written, whole, digest.hexdigest()


def copy_encrypted(src, dst, key, size):
    """Decrypts the blob into dst; returns (bytes written, whole, sha256).

    An intact blob is Size - Size % 16 + 16 bytes. One of another length is decrypted as far as
    its whole blocks go, without looking for padding. Raises ValueError when an intact-length
    blob's padding is not valid (a wrong key or damaged bytes)."""
    length = os.path.getsize(src)
    intact = size is None or length == size - size % BLOCK + BLOCK
    usable = length - length % BLOCK
    d = decryptor(key)
    digest = hashlib.sha256()
    written = 0
    held = b""  # the last block, kept back until we know whether it holds the padding
    limit = size

    def emit(g, data):
        nonlocal written
        if limit is not None:
            data = data[: max(0, limit - written)]
        g.write(data)
        digest.update(data)
        written += len(data)

    with open(src, "rb") as f, open(dst, "xb") as g:
        remaining = usable
        while remaining:
            chunk = f.read(min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            plain = held + d.update(chunk)
            held, plain = plain[-BLOCK:], plain[:-BLOCK]
            emit(g, plain)
        held += d.finalize()
        if intact and usable:
            n = padding_length(held)
            if n is None:
                raise ValueError("the padding is not valid")
            held = held[:-n]
        emit(g, held)
    whole = intact and usable > 0 and (size is None or written == size)
    return written, whole, digest.hexdigest()


# --- the backup -----------------------------------------------------------------------------


def open_manifest(backup, password_file, scratch):
    """Returns (encrypted, class keys or None, path of a plain Manifest.db copy)."""
    plist_path = os.path.join(backup, "Manifest.plist")
    manifest = {}
    if os.path.isfile(plist_path) and os.path.getsize(plist_path):
        with open(plist_path, "rb") as f:
            manifest = plistlib.load(f)
    db_path = os.path.join(backup, "Manifest.db")
    try:
        with open(db_path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise Unusable(f"cannot read Manifest.db: {e.strerror}")
    encrypted = bool(manifest.get("IsEncrypted")) or not data.startswith(SQLITE_MAGIC)
    if not encrypted:
        plain, keys = data, None
    else:
        if "BackupKeyBag" not in manifest or "ManifestKey" not in manifest:
            raise Unusable("the backup is encrypted but Manifest.plist has no keybag")
        keys = unlock(manifest["BackupKeyBag"], read_password(password_file))
        try:
            manifest_key = unwrap_protected(keys, manifest["ManifestKey"])
        except (ValueError, InvalidUnwrap) as e:
            raise Unusable(f"ManifestKey does not unwrap: {e}")
        plain = decrypt_manifest_db(manifest_key, data)
    copy = os.path.join(scratch, "Manifest.db")
    with open(copy, "wb") as f:
        f.write(plain)
    return encrypted, keys, copy


def extract(backup, out, password_file):
    report = {
        "encrypted": False,
        "written": [],
        "missing": [],
        "wrong_size": [],
        "damaged": [],
        "refused": [],
    }
    with tempfile.TemporaryDirectory() as scratch:
        encrypted, keys, db_path = open_manifest(backup, password_file, scratch)
        report["encrypted"] = encrypted
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            rows = db.execute(
                "SELECT fileID, domain, relativePath, file FROM Files WHERE flags = 1 "
                "ORDER BY domain, relativePath"
            ).fetchall()
        except sqlite3.DatabaseError as e:
            raise Unusable(f"Manifest.db has no readable Files table: {e}")
        finally:
            db.close()

    for file_id, domain, relative_path, record in rows:
        who = {"domain": domain, "relativePath": relative_path, "fileID": file_id}
        label = f"{domain}/{relative_path} ({file_id})"
        parts = safe_parts(domain or "", relative_path or "")
        if parts is None or not isinstance(file_id, str) or len(file_id) < 3 or "/" in file_id:
            say(f"refused: {label}: the path could leave the output folder")
            report["refused"].append(who)
            continue
        try:
            size, modified, wrapped = mbfile(record)
        except Exception as e:  # a record we cannot decode: the file cannot be written right
            say(f"damaged: {label}: its record does not decode ({e})")
            report["damaged"].append(who)
            continue
        blob = os.path.join(backup, file_id[:2], file_id)
        if not os.path.isfile(blob):
            say(f"missing: {label}")
            report["missing"].append(who)
            continue
        try:
            dst = make_parents(out, parts)
        except ValueError as e:
            say(f"refused: {label}: {e}")
            report["refused"].append(who)
            continue
        try:
            if encrypted:
                if wrapped is None:
                    raise ValueError("the record has no EncryptionKey")
                key = unwrap_protected(keys, wrapped)
                written, whole, sha256 = copy_encrypted(blob, dst, key, size)
            else:
                written, whole, sha256 = copy_plain(blob, dst, size)
        except FileExistsError:
            say(f"refused: {label}: another row already wrote {dst}")
            report["refused"].append(who)
            continue
        except (ValueError, InvalidUnwrap) as e:
            if os.path.lexists(dst):
                os.remove(dst)
            say(f"damaged: {label}: {e or 'the key does not unwrap'}")
            report["damaged"].append(who)
            continue
        if modified is not None:
            os.utime(dst, (modified, modified))
        if not whole:
            say(f"wrong size: {label}: {written} bytes written, the record says {size}")
            report["wrong_size"].append(who)
        report["written"].append(
            dict(who, size=written, last_modified=modified, sha256=sha256)
        )
    return report


def main():
    parser = argparse.ArgumentParser(
        description="Extract a backup's files as OUT/<domain>/<relativePath> (independent check)"
    )
    parser.add_argument("backup")
    parser.add_argument("out")
    parser.add_argument("--password-file", help="file whose first line is the password")
    parser.add_argument("--json", action="store_true", help="print what was written as JSON")
    args = parser.parse_args()
    if os.path.exists(args.out) and (not os.path.isdir(args.out) or os.listdir(args.out)):
        say(f"{args.out} must not exist or be an empty folder")
        return 2
    if os.path.realpath(args.out).startswith(os.path.realpath(args.backup) + os.sep):
        say("OUT must not be inside the backup")
        return 2
    os.makedirs(args.out, exist_ok=True)
    try:
        report = extract(args.backup, args.out, args.password_file)
    except (Unusable, plistlib.InvalidFileException, sqlite3.DatabaseError) as e:
        say(str(e))
        return 2
    if args.json:
        json.dump(report, sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write("\n")
    bad = report["missing"] or report["wrong_size"] or report["damaged"] or report["refused"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
