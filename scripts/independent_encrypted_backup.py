#!/usr/bin/env python3
"""An independent implementation of encrypted iPhone backups, to check ibackup against.

It shares no code with ibackup: the cryptography comes from PyPI's `cryptography` package, the
databases from `sqlite3` and the plists from `plistlib`, and the format from
shared/design/backup-format.md. Two commands:

  make OUT_DIR [--dpic N] [--iter N] [--no-sha256-step] [--seed N]
      Writes an encrypted backup folder (Info, Manifest and Status plists, a keybag, an
      encrypted Manifest.db whose Files rows are NSKeyedArchiver MBFile records with per-file
      EncryptionKeys, and the encrypted blobs) and prints JSON describing what it wrote.

  decrypt BACKUP_DIR
      Unlocks the keybag, decrypts Manifest.db and every blob it lists, and prints JSON of what
      it found. Exits 2 on a wrong password.

The password comes from --password-file FILE (one trailing newline is dropped) or the
IBACKUP_PASSWORD environment variable, never from the command line.
Exit codes: 0 ok, 1 bad input, 2 wrong password, 3 the `cryptography` package is missing.
"""

import argparse
import datetime
import hashlib
import json
import os
import plistlib
import random
import sqlite3
import struct
import sys
import tempfile

try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import padding as sym_padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
    from cryptography.hazmat.primitives.keywrap import (
        InvalidUnwrap,
        aes_key_unwrap,
        aes_key_wrap,
    )
except ImportError:
    sys.stderr.write(
        "independent_encrypted_backup.py: the Python package 'cryptography' is not installed; "
        "install it with: python3 -m pip install cryptography\n"
    )
    sys.exit(3)

ZERO_IV = bytes(16)
WRAP_PASSCODE = 2  # keybag WRAP bit: wrapped with the password-derived key

# (class, WRAP, KTYP, has PBKY): the password classes, plus class 12 wrapped only with a device
# key, which a backup reader must skip.
KEYBAG_CLASSES = [
    (1, 3, 0, False),
    (2, 3, 1, True),
    (3, 3, 0, False),
    (4, 2, 0, False),
    (5, 2, 0, False),
    (6, 2, 0, False),
    (7, 2, 0, False),
    (8, 2, 0, False),
    (9, 2, 0, False),
    (10, 2, 0, False),
    (11, 2, 0, False),
    (12, 1, 0, False),
]
MANIFEST_CLASS = 4


def fail(message, code=1):
    sys.stderr.write(f"independent_encrypted_backup.py: {message}\n")
    sys.exit(code)


def read_password(path):
    if path:
        with open(path, "rb") as f:
            data = f.read()
        if data.endswith(b"\n"):
            data = data[:-1]
            if data.endswith(b"\r"):
                data = data[:-1]
        return data
    env = os.environb.get(b"IBACKUP_PASSWORD")
    if env is None:
        fail("no password: give --password-file FILE or set IBACKUP_PASSWORD")
    return env


# --- keybag -------------------------------------------------------------------------------


def tlv(tag, value):
    if isinstance(value, int):
        value = struct.pack(">I", value)
    return tag + struct.pack(">I", len(value)) + value


def parse_keybag(data):
    header, classes, current = {}, [], None
    pos = 0
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError(f"keybag record header cut short at {pos}")
        tag = data[pos : pos + 4].decode("latin-1")
        (length,) = struct.unpack(">I", data[pos + 4 : pos + 8])
        value = data[pos + 8 : pos + 8 + length]
        if len(value) != length:
            raise ValueError(f"keybag record {tag} at {pos} cut short")
        pos += 8 + length
        if tag == "UUID":
            if "UUID" not in header:
                header["UUID"] = value
                continue
            current = {"UUID": value}
            classes.append(current)
            continue
        number = struct.unpack(">I", value)[0] if length == 4 else None
        target = header if current is None else current
        if tag in ("SALT", "DPSL", "WPKY", "PBKY", "HMCK"):
            target[tag] = value
        else:
            target[tag] = number
    return header, classes


def pbkdf2(algorithm, password, salt, iterations):
    return PBKDF2HMAC(algorithm=algorithm, length=32, salt=salt, iterations=iterations).derive(
        password
    )


def key_encryption_key(password, header):
    if "DPSL" in header:
        password = pbkdf2(hashes.SHA256(), password, header["DPSL"], header["DPIC"])
    return pbkdf2(hashes.SHA1(), password, header["SALT"], header["ITER"])


# --- AES-CBC ------------------------------------------------------------------------------


def encrypt(key, plaintext):
    padder = sym_padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(ZERO_IV)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def decrypt_raw(key, ciphertext):
    decryptor = Cipher(algorithms.AES(key), modes.CBC(ZERO_IV)).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


def unpad(plaintext):
    """Returns the plaintext without its PKCS#7 padding, or None when the padding is invalid."""
    if not plaintext:
        return None
    n = plaintext[-1]
    if n < 1 or n > 16 or plaintext[-n:] != bytes([n]) * n:
        return None
    return plaintext[:-n]


# --- NSKeyedArchiver MBFile ---------------------------------------------------------------


def mbfile_archive(record, encryption_key):
    objects = ["$null"]

    def add(obj):
        objects.append(obj)
        return plistlib.UID(len(objects) - 1)

    root = {
        "LastModified": record["mtime"],
        "LastStatusChange": record["mtime"],
        "Birth": record["mtime"],
        "InodeNumber": record["inode"],
        "Mode": record["mode"],
        "UserID": 501,
        "GroupID": 501,
        "Size": record["size"],
        "ProtectionClass": record["class"],
        "Flags": 0,
    }
    objects.append(root)
    root["RelativePath"] = add(record["relativePath"])
    if record.get("target") is not None:
        root["Target"] = add(record["target"])
    if encryption_key is not None:
        data_class = add(
            {"$classname": "NSMutableData", "$classes": ["NSMutableData", "NSData", "NSObject"]}
        )
        root["EncryptionKey"] = add({"NS.data": encryption_key, "$class": data_class})
    root["$class"] = add({"$classname": "MBFile", "$classes": ["MBFile", "NSObject"]})
    archive = {
        "$version": 100000,
        "$archiver": "NSKeyedArchiver",
        "$top": {"root": plistlib.UID(1)},
        "$objects": objects,
    }
    return plistlib.dumps(archive, fmt=plistlib.FMT_BINARY)


def mbfile_fields(blob):
    archive = plistlib.loads(blob)
    objects = archive["$objects"]
    root = objects[archive["$top"]["root"].data]

    def resolve(value):
        return objects[value.data] if isinstance(value, plistlib.UID) else value

    key = None
    if "EncryptionKey" in root:
        wrapper = resolve(root["EncryptionKey"])
        key = resolve(wrapper["NS.data"]) if isinstance(wrapper, dict) else wrapper
    return {
        "size": root.get("Size"),
        "protection_class": root.get("ProtectionClass"),
        "relativePath": resolve(root.get("RelativePath")),
        "target": resolve(root["Target"]) if "Target" in root else None,
        "encryption_key": key,
    }


# --- make ---------------------------------------------------------------------------------


def sample_sqlite():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sms.db")
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE message (ROWID INTEGER PRIMARY KEY, text TEXT, date INTEGER)")
        db.executemany(
            "INSERT INTO message (text, date) VALUES (?, ?)",
            [(f"message number {i}", 700000000 + i) for i in range(200)],
        )
        db.commit()
        db.close()
        with open(path, "rb") as f:
            return f.read()


def sample_records(rng):
    """Files of lengths around the AES block size, a SQLite database, a directory, a symlink."""
    files = []

    def file(domain, path, data, cls):
        files.append(
            {"domain": domain, "relativePath": path, "flags": 1, "data": data, "class": cls}
        )

    file("HomeDomain", "Library/Preferences/empty.plist", b"", 3)
    file("HomeDomain", "Library/Preferences/one.txt", b"x", 1)
    file("HomeDomain", "Library/Notes/fifteen.txt", rng.randbytes(15), 3)
    file("HomeDomain", "Library/Notes/sixteen.txt", rng.randbytes(16), 2)
    file("HomeDomain", "Library/Notes/seventeen.txt", rng.randbytes(17), 3)
    file("CameraRollDomain", "Media/DCIM/100APPLE/IMG_0001.HEIC", rng.randbytes(100_000), 4)
    file("AppDomain-com.example.app", "Documents/data.bin", rng.randbytes(4096), 3)
    file("HomeDomain", "Library/SMS/sms.db", sample_sqlite(), 4)
    files.append(
        {"domain": "HomeDomain", "relativePath": "Library/SMS", "flags": 2, "class": 0}
    )
    files.append(
        {
            "domain": "HomeDomain",
            "relativePath": "Library/Preferences/link",
            "flags": 4,
            "class": 0,
            "target": "/private/var/mobile/Library/Preferences/one.txt",
        }
    )
    return files


def make(args, password):
    # Keys come from os.urandom unless a seed asks for the same backup every time.
    if args.seed is not None:
        rng = random.Random(args.seed)
        randbytes = rng.randbytes
    else:
        rng = random.Random(int.from_bytes(os.urandom(8), "big"))
        randbytes = os.urandom

    header = {"SALT": randbytes(20), "ITER": args.iter}
    if not args.no_sha256_step:
        header.update({"DPSL": randbytes(20), "DPIC": args.dpic})
    kek = key_encryption_key(password, header)

    keybag = tlv(b"VERS", 4) + tlv(b"TYPE", 1) + tlv(b"UUID", randbytes(16))
    keybag += tlv(b"HMCK", randbytes(40)) + tlv(b"WRAP", 0)
    keybag += tlv(b"SALT", header["SALT"]) + tlv(b"ITER", header["ITER"])
    if "DPSL" in header:
        keybag += tlv(b"DPWT", 1) + tlv(b"DPIC", header["DPIC"]) + tlv(b"DPSL", header["DPSL"])
    class_keys = {}
    for cls, wrap, ktyp, pbky in KEYBAG_CLASSES:
        key = randbytes(32)
        wrapped = aes_key_wrap(kek, key) if wrap & WRAP_PASSCODE else randbytes(40)
        if wrap & WRAP_PASSCODE:
            class_keys[cls] = key
        keybag += tlv(b"UUID", randbytes(16)) + tlv(b"CLAS", cls) + tlv(b"WRAP", wrap)
        keybag += tlv(b"KTYP", ktyp) + tlv(b"WPKY", wrapped)
        if pbky:
            keybag += tlv(b"PBKY", randbytes(32))

    def protected_key(cls, key):
        return struct.pack("<I", cls) + aes_key_wrap(class_keys[cls], key)

    out = args.out_dir
    os.makedirs(out, exist_ok=True)
    records = sample_records(rng)
    report = []
    with tempfile.TemporaryDirectory() as tmp:
        db_path = os.path.join(tmp, "Manifest.db")
        db = sqlite3.connect(db_path)
        db.execute(
            "CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT, relativePath TEXT, "
            "flags INTEGER, file BLOB)"
        )
        db.execute("CREATE INDEX FilesDomainIdx ON Files(domain)")
        db.execute("CREATE INDEX FilesRelativePathIdx ON Files(relativePath)")
        db.execute("CREATE INDEX FilesFlagsIdx ON Files(flags)")
        db.execute("CREATE TABLE Properties (key TEXT PRIMARY KEY, value BLOB)")
        for inode, r in enumerate(records, start=1000):
            file_id = hashlib.sha1(f"{r['domain']}-{r['relativePath']}".encode()).hexdigest()
            data = r.get("data", b"")
            mode = {1: 0o100644, 2: 0o40755, 4: 0o120755}[r["flags"]]
            record = {
                "relativePath": r["relativePath"],
                "size": len(data),
                "mode": mode,
                "inode": inode,
                "mtime": 1_700_000_000 + inode,
                "class": r["class"],
                "target": r.get("target"),
            }
            wrapped = None
            entry = {
                "fileID": file_id,
                "domain": r["domain"],
                "relativePath": r["relativePath"],
                "flags": r["flags"],
                "size": len(data),
            }
            if r["flags"] == 1:
                file_key = randbytes(32)
                wrapped = protected_key(r["class"], file_key)
                blob = encrypt(file_key, data)
                os.makedirs(os.path.join(out, file_id[:2]), exist_ok=True)
                with open(os.path.join(out, file_id[:2], file_id), "wb") as f:
                    f.write(blob)
                entry.update(
                    {"encrypted_len": len(blob), "sha256": hashlib.sha256(data).hexdigest()}
                )
            db.execute(
                "INSERT INTO Files VALUES (?, ?, ?, ?, ?)",
                (file_id, r["domain"], r["relativePath"], r["flags"], mbfile_archive(record, wrapped)),
            )
            report.append(entry)
        db.commit()
        db.close()
        with open(db_path, "rb") as f:
            manifest_db = f.read()

    manifest_key = randbytes(32)
    with open(os.path.join(out, "Manifest.db"), "wb") as f:
        f.write(encrypt(manifest_key, manifest_db))

    now = datetime.datetime(2026, 11, 1, 12, 0, 0)
    udid = "00008110-000A1B2C3D4E801E"
    lockdown = {
        "ProductVersion": "18.1",
        "ProductType": "iPhone15,2",
        "BuildVersion": "22B83",
        "DeviceName": "Independent iPhone",
        "UniqueDeviceID": udid,
        "SerialNumber": "INDEPENDENT1",
    }
    manifest = {
        "Version": "10.0",
        "SystemDomainsVersion": "24.0",
        "Date": now,
        "IsEncrypted": True,
        "WasPasscodeSet": True,
        "Lockdown": lockdown,
        "Applications": {},
        "BackupKeyBag": keybag,
        "ManifestKey": protected_key(MANIFEST_CLASS, manifest_key),
    }
    info = {
        "Device Name": lockdown["DeviceName"],
        "Display Name": lockdown["DeviceName"],
        "Product Version": lockdown["ProductVersion"],
        "Product Type": lockdown["ProductType"],
        "Build Version": lockdown["BuildVersion"],
        "Serial Number": lockdown["SerialNumber"],
        "Unique Identifier": udid,
        "Target Identifier": udid,
        "Last Backup Date": now,
        "iTunes Version": "12.13",
    }
    status = {
        "Version": "3.3",
        "UUID": "7D3A1F4E-2B6C-4E1A-9F00-0123456789AB",
        "Date": now,
        "BackupState": "new",
        "IsFullBackup": False,
        "SnapshotState": "finished",
    }
    for name, value, fmt in [
        ("Manifest.plist", manifest, plistlib.FMT_BINARY),
        ("Info.plist", info, plistlib.FMT_XML),
        ("Status.plist", status, plistlib.FMT_BINARY),
    ]:
        with open(os.path.join(out, name), "wb") as f:
            plistlib.dump(value, f, fmt=fmt)

    json.dump(
        {
            "password_classes": sorted(class_keys),
            "manifest_key_class": MANIFEST_CLASS,
            "sha256_step": "DPSL" in header,
            "files": report,
        },
        sys.stdout,
        indent=1,
    )
    sys.stdout.write("\n")


# --- decrypt ------------------------------------------------------------------------------


def decrypt(args, password):
    root = args.backup_dir
    with open(os.path.join(root, "Manifest.plist"), "rb") as f:
        manifest = plistlib.load(f)
    if not manifest.get("IsEncrypted"):
        fail("Manifest.plist says the backup is not encrypted")
    header, classes = parse_keybag(manifest["BackupKeyBag"])
    kek = key_encryption_key(password, header)
    class_keys = {}
    for c in classes:
        if not c.get("WRAP", 0) & WRAP_PASSCODE:
            continue
        try:
            class_keys[c["CLAS"]] = aes_key_unwrap(kek, c["WPKY"])
        except InvalidUnwrap:
            if not class_keys:
                json.dump({"error": "wrong password"}, sys.stdout)
                sys.stdout.write("\n")
                sys.exit(2)
            raise

    def unwrap(protected):
        (cls,) = struct.unpack("<I", protected[:4])
        return aes_key_unwrap(class_keys[cls], protected[4:])

    with open(os.path.join(root, "Manifest.db"), "rb") as f:
        manifest_db = unpad(decrypt_raw(unwrap(manifest["ManifestKey"]), f.read()))
    if manifest_db is None:
        fail("Manifest.db decrypts to invalid padding")
    result = {
        "classes_unlocked": sorted(class_keys),
        "manifest_db": {"bytes": len(manifest_db), "sqlite": manifest_db[:16] == b"SQLite format 3\0"},
        "files": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        db_path = os.path.join(tmp, "Manifest.db")
        with open(db_path, "wb") as f:
            f.write(manifest_db)
        db = sqlite3.connect(db_path)
        rows = db.execute(
            "SELECT fileID, domain, relativePath, flags, file FROM Files ORDER BY domain, relativePath"
        ).fetchall()
        db.close()
    for file_id, domain, path, flags, blob in rows:
        fields = mbfile_fields(blob)
        entry = {
            "fileID": file_id,
            "domain": domain,
            "relativePath": path,
            "flags": flags,
            "size": fields["size"],
            "id_matches": hashlib.sha1(f"{domain}-{path}".encode()).hexdigest() == file_id,
        }
        if fields["target"] is not None:
            entry["target"] = fields["target"]
        if flags == 1:
            blob_path = os.path.join(root, file_id[:2], file_id)
            if not os.path.exists(blob_path):
                entry["blob"] = "missing"
            else:
                with open(blob_path, "rb") as f:
                    ciphertext = f.read()
                entry["encrypted_len"] = len(ciphertext)
                if len(ciphertext) % 16 or not ciphertext:
                    entry["blob"] = "not whole blocks"
                else:
                    plain = unpad(decrypt_raw(unwrap(fields["encryption_key"]), ciphertext))
                    if plain is None:
                        entry["blob"] = "bad padding"
                    else:
                        entry["blob"] = "ok" if len(plain) == fields["size"] else "wrong size"
                        entry["plaintext_len"] = len(plain)
                        entry["sha256"] = hashlib.sha256(plain).hexdigest()
        result["files"].append(entry)
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--password-file", help="file holding the password (one line)")
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make", help="write an encrypted backup folder")
    m.add_argument("out_dir")
    m.add_argument("--dpic", type=int, default=1000, help="PBKDF2-SHA256 iterations (real: 10000000)")
    m.add_argument("--iter", type=int, default=100, help="PBKDF2-SHA1 iterations (real: 10000)")
    m.add_argument("--no-sha256-step", action="store_true", help="the pre-iOS 10.2 keybag form")
    m.add_argument("--seed", type=int, help="make the same backup every time")
    d = sub.add_parser("decrypt", help="decrypt a backup folder and print what it holds")
    d.add_argument("backup_dir")
    args = parser.parse_args()
    password = read_password(args.password_file)
    if args.command == "make":
        make(args, password)
    else:
        decrypt(args, password)


if __name__ == "__main__":
    main()
