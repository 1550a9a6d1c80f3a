#!/usr/bin/env python3
"""Independent fixture writer: one synthetic Finder/iTunes backup folder (iOS 10+, unencrypted).

Why this exists
---------------
The `ibackup` crate has a Rust reader and (for its own tests) a Rust writer. If both share a
misunderstanding of the on-disk format, tests made with one and checked with the other pass while
real backups fail. This script is a second, independent implementation written only from
/work/shared/design/backup-format.md, in Python with nothing but the standard library. It writes a
backup the way Finder does and prints its *own* accounting of what a correct
`ibackup verify --json` must report. The accounting is computed from the plan the script carried
out, never by reading the written files back.

Usage
-----
    make_backup.py OUT_DIR [--seed N] [--files N] [--defect NAME ...] [--udid UDID]
                   [--ios VERSION] [--build BUILD] [--product-type TYPE] [--name NAME]
                   [--date ISO8601] [--full-backup] [--max-size BYTES] [--expected [FILE]]

OUT_DIR is the backup folder itself (normally named after the UDID); it is created and must not
exist yet or be empty. `--files N` is the number of regular-file rows (flags 1); directory and
symlink rows come on top. Output is deterministic for a given set of arguments.

Defects (`--defect`, repeatable; each occurrence adds exactly one countable defect):
    missing-blob         delete one listed blob
    truncated-blob       one listed blob shorter than its Size
    orphan               one extra blob under a hex folder that no row lists
    unfinished           Status.plist SnapshotState "uploading"
    snapshot-dir         leave Snapshot/ with a file inside
    no-status            no Status.plist
    no-manifest-plist    no Manifest.plist
    empty-manifest-plist Manifest.plist of zero bytes
    bad-fileid           one row whose fileID != sha1(domain-relativePath); blob stored under it
missing-blob, truncated-blob, orphan and bad-fileid may be given several times (each picks a
different file); the others are on/off.

The functions `plan_backup`, `write_backup` and `make_backup` are used by make_backup_folder.py.
"""

import argparse
import datetime as dt
import hashlib
import json
import os
import plistlib
import random
import sqlite3
import sys

DEFECTS = (
    "missing-blob",
    "truncated-blob",
    "orphan",
    "unfinished",
    "snapshot-dir",
    "no-status",
    "no-manifest-plist",
    "bad-fileid",
    "empty-manifest-plist",
)
# Defects that can be applied more than once, each time to another file.
COUNTABLE_DEFECTS = {"missing-blob", "truncated-blob", "orphan", "bad-fileid"}

FLAG_FILE, FLAG_DIR, FLAG_SYMLINK = 1, 2, 4
MODE_FILE, MODE_DIR, MODE_SYMLINK = 0o100644, 0o40755, 0o120755

# The non-ASCII path the brief asks for; written with escapes so the source encoding and the
# editor's Unicode normalisation cannot change it (NFC: U+00E9, U+00FC).
NON_ASCII_PATH = "Media/DCIM/100APPLE/Caf\u00e9_\u00fc.JPG"

WHATSAPP = "AppDomain-net.whatsapp.WhatsApp"
WHATSAPP_GROUP = "AppDomainGroup-group.net.whatsapp.WhatsApp.shared"

# Fixed, realistic paths used first (in this order), before the generated ones.
FIXED_FILES = [
    ("HomeDomain", "Library/SMS/sms.db"),
    ("HomeDomain", "Library/AddressBook/AddressBook.sqlitedb"),
    ("CameraRollDomain", "Media/PhotoData/Photos.sqlite"),
    (WHATSAPP_GROUP, "ChatStorage.sqlite"),
    ("WirelessDomain", "Library/Databases/CellularUsage.db"),
    ("RootDomain", "Library/Preferences/com.apple.preferences.network.plist"),
    (WHATSAPP, "Library/Preferences/net.whatsapp.WhatsApp.plist"),
    ("HomeDomain", "Library/Notes/notes.sqlite"),
    ("MediaDomain", "Media/Recordings/Recordings.db"),
    ("KeychainDomain", "keychain-backup.plist"),
    ("HealthDomain", "Health/healthdb.sqlite"),
    ("HomeDomain", "Library/CallHistoryDB/CallHistory.storedata"),
    ("SystemPreferencesDomain", "SystemConfiguration/preferences.plist"),
    (WHATSAPP_GROUP, "ContactsV2.sqlite"),
    ("HomeDomain", "Library/Safari/Bookmarks.db"),
]

# Generators for further unique paths; `i` is a running counter, `h` 8 hex chars.
GENERATED_FILES = [
    ("CameraRollDomain", lambda i, h: "Media/DCIM/%dAPPLE/IMG_%04d.HEIC" % (100 + i // 900, i % 9000 + 1)),
    ("MediaDomain", lambda i, h: "Library/SMS/Attachments/%s/%s/%s-%d/IMG_%04d.jpeg"
        % (h[:2], h[2:4], h.upper(), i, i % 9000 + 1)),
    (WHATSAPP_GROUP, lambda i, h: "Message/Media/4915112345678@s.whatsapp.net/%s/%s/%s%05d.jpg"
        % (h[0], h[1], h, i)),
    ("HomeDomain", lambda i, h: "Library/Preferences/com.example.app%d.plist" % i),
    (WHATSAPP, lambda i, h: "Documents/Backup/chunk-%05d.bin" % i),
    ("CameraRollDomain", lambda i, h: "Media/PhotoData/Thumbnails/V2/DCIM/100APPLE/IMG_%04d.JPG/%s.JPG"
        % (i % 9000 + 1, h)),
    ("WirelessDomain", lambda i, h: "Library/Databases/DataUsage-%d.sqlite" % i),
    ("RootDomain", lambda i, h: "Library/Caches/locationd/cache-%05d.plist" % i),
]

# Symlinks: (domain, relativePath, target); the first ones are used, then generated ones.
SYMLINKS = [
    (WHATSAPP, "Library/WebKit/WebsiteData/IndexedDB/v0",
     "/var/mobile/Containers/Data/Application/2D4D1445-FCB4-47F6-A789-941C77FBE73B"
     "/Library/WebKit/WebsiteData/IndexedDB"),
    ("RootDomain", "Library/Preferences/com.apple.timezone.plist",
     "/private/var/db/timezone/localtime"),
]

# A domain that holds only directories (real manifests have many such domains).
DIRS_ONLY = ("SysSharedContainerDomain-systemgroup.com.apple.configurationprofiles",
             "Library/ConfigurationProfiles")

KNOWN_BUILDS = {"17.5.1": "21F90", "16.7.10": "20H350", "18.0": "22A3354", "18.1": "22B83",
                "14.3": "18C66", "26.1": "23B85"}

NSDATA_CLASS = {"$classname": "NSMutableData", "$classes": ["NSMutableData", "NSData", "NSObject"]}
MBFILE_CLASS = {"$classname": "MBFile", "$classes": ["MBFile", "NSObject"]}


def file_id(domain, relative_path):
    """fileID as Finder names it: lowercase hex SHA-1 of 'domain-relativePath' (UTF-8)."""
    return hashlib.sha1(("%s-%s" % (domain, relative_path)).encode("utf-8")).hexdigest()


def parse_date(text):
    """ISO 8601 -> naive UTC datetime (plistlib writes naive datetimes as UTC)."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value.replace(microsecond=0)


def iso_z(value):
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def default_udid(rng):
    """A modern (iPhone XS and later) UDID: 8 hex, dash, 16 hex, upper case."""
    return "00008110-%016X" % rng.getrandbits(64)


def blob_content(seed, fid, size):
    """Deterministic bytes of exactly `size` length, different for every file."""
    if size <= 0:
        return b""
    block = hashlib.sha256(("%d:%s" % (seed, fid)).encode()).digest() * 32  # 1 KiB
    reps = size // len(block) + 1
    return (block * reps)[:size]


# Files whose name says what they are get real content of that kind, so a checker can open them:
# SQLite databases (page size 1024, one table) and binary plists. Everything else is filler.
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlitedb", ".storedata")
PLIST_SUFFIXES = (".plist",)


def content_kind(path):
    lower = path.lower()
    if lower.endswith(SQLITE_SUFFIXES):
        return "sqlite"
    if lower.endswith(PLIST_SUFFIXES):
        return "plist"
    return None


def sqlite_content(seed, fid, target):
    """A real SQLite database file of roughly `target` bytes (at least two 1 KiB pages)."""
    filler = blob_content(seed, fid, max(target, 1))
    con = sqlite3.connect(":memory:")
    try:
        con.execute("PRAGMA page_size = 1024")
        con.execute("CREATE TABLE entries (id INTEGER PRIMARY KEY, body BLOB)")
        step, at, n = 200, 0, 0
        # Rows until the payload is about the target, less the schema page and page overhead.
        while at + step <= max(0, target - 1536) or n == 0:
            con.execute("INSERT INTO entries (id, body) VALUES (?, ?)",
                        (n + 1, filler[at % len(filler):at % len(filler) + step]))
            at += step
            n += 1
        con.commit()
        return bytes(con.serialize())
    finally:
        con.close()


def plist_content(seed, fid, path, target):
    """A real binary plist of roughly `target` bytes."""
    filler = blob_content(seed, fid, max(target, 1))
    chunks = [filler[i:i + 64] for i in range(0, max(0, target - 120), 64)]
    value = {"Path": path, "Items": chunks, "Count": len(chunks)}
    return plistlib.dumps(value, fmt=plistlib.FMT_BINARY, sort_keys=True)


def pick_size(rng, max_size):
    """Mostly small files, a few bigger ones; always >= 1 and <= max_size."""
    roll = rng.random()
    if roll < 0.45:
        hi = 2048
    elif roll < 0.85:
        hi = 16384
    elif roll < 0.97:
        hi = 65536
    else:
        hi = 262144
    return rng.randint(1, max(1, min(hi, max_size)))


# ---------------------------------------------------------------------------------------------
# MBFile as an NSKeyedArchiver binary plist
# ---------------------------------------------------------------------------------------------

def archive_mbfile(row, rng, shuffle):
    """Return the `file` column bytes for one row (a dict made by plan_backup).

    $objects[0] is "$null" and $objects[1] the MBFile (as in every real manifest); the objects
    the MBFile refers to follow in a canonical order, or shuffled when `shuffle` is true, so a
    reader that hard-codes indexes (path at 2, class at 3, ...) fails.
    """
    labels = ["path"]
    if row["flags"] == FLAG_SYMLINK:
        labels.append("target")
    if row.get("digest") is not None:
        labels.append("digest")
    if row.get("ekey") is not None:
        labels.append("ekey")
        if row.get("ekey_data_as_uid"):
            labels.append("ekey_data")
        labels.append("ekey_class")
    if row.get("xattr") is not None:
        labels.append("xattr")
    labels.append("class")
    if shuffle:
        rng.shuffle(labels)
    index = {label: i + 2 for i, label in enumerate(labels)}
    uid = lambda label: plistlib.UID(index[label])

    mb = {
        "LastModified": row["mtime"],
        "Flags": 0,
        "GroupID": row["gid"],
        "$class": uid("class"),
        "LastStatusChange": row["ctime"],
        "RelativePath": uid("path"),
        "Birth": row["birth"],
    }
    if "target" in index:
        mb["Target"] = uid("target")
    if "digest" in index:
        mb["Digest"] = uid("digest")
    if "ekey" in index:
        mb["EncryptionKey"] = uid("ekey")
    if "xattr" in index:
        mb["ExtendedAttributes"] = uid("xattr")
    if row.get("size") is not None:  # a missing Size key means "unknown", not 0
        mb["Size"] = row["size"]
    mb["Mode"] = row["mode"]
    mb["UserID"] = row["uid"]
    mb["InodeNumber"] = row["inode"]
    mb["ProtectionClass"] = row["pclass"]

    def build(label):
        if label == "path":
            return row["path"]
        if label == "target":
            return row["target"]
        if label == "digest":
            return row["digest"]
        if label == "ekey":
            data = uid("ekey_data") if "ekey_data" in index else row["ekey"]
            return {"NS.data": data, "$class": uid("ekey_class")}
        if label == "ekey_data":
            return row["ekey"]
        if label == "ekey_class":
            return dict(NSDATA_CLASS)
        if label == "xattr":
            return row["xattr"]
        if label == "class":
            return dict(MBFILE_CLASS)
        raise AssertionError(label)

    objects = ["$null", mb] + [build(label) for label in labels]
    archive = {
        "$version": 100000,
        "$archiver": "NSKeyedArchiver",
        "$top": {"root": plistlib.UID(1)},
        "$objects": objects,
    }
    return plistlib.dumps(archive, fmt=plistlib.FMT_BINARY, sort_keys=False)


# ---------------------------------------------------------------------------------------------
# Planning: decide every row, blob and defect, and account for them
# ---------------------------------------------------------------------------------------------

def plan_backup(seed=1, files=30, defects=(), udid=None, ios="17.5.1", build=None,
                product_type="iPhone14,5", name="Alex's iPhone", date="2026-11-20T21:03:11Z",
                full_backup=False, max_size=262144):
    """Decide the whole backup in memory. Returns a plan dict; nothing is written."""
    for d in defects:
        if d not in DEFECTS:
            raise ValueError("unknown defect %r (known: %s)" % (d, ", ".join(DEFECTS)))
    for d in set(defects) - COUNTABLE_DEFECTS:
        if list(defects).count(d) > 1:
            raise ValueError("defect %r can only be given once" % d)
    # Specials (zero size, no Size, non-ASCII, NS.data-as-UID) plus one victim per countable
    # file defect, plus at least two ordinary files.
    victims_needed = sum(1 for d in defects if d in ("missing-blob", "truncated-blob", "bad-fileid"))
    minimum = 4 + victims_needed + 2
    if files < minimum:
        raise ValueError("--files must be at least %d for these defects" % minimum)

    rng = random.Random(seed)
    when = parse_date(date)
    epoch = int(when.replace(tzinfo=dt.timezone.utc).timestamp())
    udid = udid or default_udid(random.Random("udid:%d" % seed))
    build = build or KNOWN_BUILDS.get(ios, "21F90")

    # ---- regular-file rows -----------------------------------------------------------------
    used = set()
    file_rows = []

    def add_file(domain, path, size, **extra):
        used.add((domain, path))
        row = {"domain": domain, "path": path, "flags": FLAG_FILE, "mode": MODE_FILE,
               "size": size, "file_id": file_id(domain, path)}
        row.update(extra)
        file_rows.append(row)
        return row

    # The special rows the brief requires.
    add_file("CameraRollDomain", NON_ASCII_PATH, pick_size(rng, max_size), special="non-ascii")
    add_file("HomeDomain", "Library/Cookies/Cookies.binarycookies", 0, special="zero-size")
    add_file(WHATSAPP_GROUP, "Library/Caches/unknown-size.tmp", None, special="no-size",
             actual_size=rng.randint(1, min(4096, max_size)))
    add_file("HomeDomain", "Library/Keyboard/dynamic-text.dat", pick_size(rng, max_size),
             special="ekey-data-uid")

    fixed = iter(FIXED_FILES)
    counter = 0
    while len(file_rows) < files:
        pair = next(fixed, None)
        if pair is None:
            domain, gen = GENERATED_FILES[counter % len(GENERATED_FILES)]
            h = hashlib.md5(("%d/%d" % (seed, counter)).encode()).hexdigest()[:8]
            pair = (domain, gen(counter, h))
            counter += 1
        if pair in used:
            continue
        add_file(pair[0], pair[1], pick_size(rng, max_size))

    # ---- directory rows: every domain root ("") and every parent folder ---------------------
    dir_keys = []
    seen_dirs = set()

    def add_dir(domain, path):
        if (domain, path) not in seen_dirs:
            seen_dirs.add((domain, path))
            dir_keys.append((domain, path))

    symlink_specs = list(SYMLINKS)
    for i in range(files // 200):
        symlink_specs.append((WHATSAPP, "Library/Application Support/link-%d" % i,
                              "/var/mobile/Containers/Shared/AppGroup/link-target-%d" % i))
    for domain, path in [(r["domain"], r["path"]) for r in file_rows] + \
            [(d, p) for d, p, _ in symlink_specs] + [DIRS_ONLY]:
        add_dir(domain, "")
        parts = path.split("/")
        for depth in range(1, len(parts)):
            add_dir(domain, "/".join(parts[:depth]))
    add_dir(*DIRS_ONLY)

    dir_rows = [{"domain": d, "path": p, "flags": FLAG_DIR, "mode": MODE_DIR, "size": 0,
                 "file_id": file_id(d, p)} for d, p in dir_keys]
    link_rows = [{"domain": d, "path": p, "flags": FLAG_SYMLINK, "mode": MODE_SYMLINK, "size": 0,
                  "target": t, "file_id": file_id(d, p)} for d, p, t in symlink_specs]

    # ---- per-row metadata -------------------------------------------------------------------
    for row in file_rows + dir_rows + link_rows:
        row["mtime"] = epoch - rng.randint(3600, 400 * 86400)
        row["ctime"] = row["mtime"] + rng.randint(0, 3600)
        row["birth"] = row["mtime"] - rng.randint(0, 86400)
        row["inode"] = rng.randint(10000, 9000000)
        row["uid"] = 0 if row["domain"] == "RootDomain" else 501
        row["gid"] = row["uid"]
        row["pclass"] = 0 if row["flags"] != FLAG_FILE else rng.choice((3, 3, 3, 4, 1))
        row["shuffle"] = rng.random() < 0.35
    for row in file_rows:
        row["content_size"] = row["size"] if row["size"] is not None else row["actual_size"]
        row["content"] = blob_content(seed, row["file_id"], row["content_size"])
        kind = content_kind(row["path"])
        if kind is not None and row["size"]:
            # The picked size becomes a target; the record states what was really written.
            if kind == "sqlite":
                row["content"] = sqlite_content(seed, row["file_id"], row["size"])
            else:
                row["content"] = plist_content(seed, row["file_id"], row["path"], row["size"])
            row["size"] = row["content_size"] = len(row["content"])
        if rng.random() < 0.4:
            row["digest"] = hashlib.sha1(row["content"]).digest()
        if rng.random() < 0.6 or row.get("special") == "ekey-data-uid":
            row["ekey"] = row["pclass"].to_bytes(4, "little") + \
                rng.getrandbits(320).to_bytes(40, "big")
            row["ekey_data_as_uid"] = row.get("special") == "ekey-data-uid"
        if rng.random() < 0.05:
            row["xattr"] = plistlib.dumps({"com.apple.assetsd.UUID": ("%032X" % rng.getrandbits(128)).encode()},
                                          fmt=plistlib.FMT_BINARY)
    # Make sure both EncryptionKey forms and the shuffled layout occur at least once.
    file_rows[0]["ekey"] = file_rows[0].get("ekey") or \
        file_rows[0]["pclass"].to_bytes(4, "little") + bytes(range(40))
    file_rows[0]["ekey_data_as_uid"] = False
    file_rows[0]["shuffle"] = True
    file_rows[3]["shuffle"] = True
    for row in file_rows + dir_rows + link_rows:
        row["stored_id"] = row["file_id"]  # the fileID column value (differs only for bad-fileid)
        row["blob_state"] = "ok" if row["flags"] == FLAG_FILE else None

    # ---- defects ----------------------------------------------------------------------------
    ordinary = [r for r in file_rows if "special" not in r and r["size"] and r["size"] >= 2]
    victim_rng = random.Random("victims:%d" % seed)
    victim_rng.shuffle(ordinary)
    orphans = []
    for n, defect in enumerate(defects):
        if defect == "missing-blob":
            ordinary.pop()["blob_state"] = "missing"
        elif defect == "truncated-blob":
            row = ordinary.pop()
            row["blob_state"] = "truncated"
            row["content"] = row["content"][: row["size"] // 2]
        elif defect == "bad-fileid":
            row = ordinary.pop()
            # A plausible writer bug: '/' instead of '-' between domain and path.
            row["stored_id"] = hashlib.sha1(("%s/%s" % (row["domain"], row["path"])).encode()).hexdigest()
            row["bad_fileid"] = True
        elif defect == "orphan":
            k = 0
            taken = {r["stored_id"] for r in file_rows + dir_rows + link_rows}
            while True:
                oid = hashlib.sha1(("orphan:%d:%d:%d" % (seed, n, k)).encode()).hexdigest()
                if oid not in taken and oid not in [o["file_id"] for o in orphans]:
                    break
                k += 1
            orphans.append({"file_id": oid, "content": blob_content(seed, oid, 777 + 13 * n)})

    uuid_rng = random.Random("uuid:%d" % seed)
    return {
        "seed": seed, "defects": list(defects), "udid": udid, "ios": ios, "build": build,
        "product_type": product_type, "name": name, "date": when, "full_backup": full_backup,
        "serial": "F%011d" % random.Random("serial:%d" % seed).randint(0, 10 ** 11 - 1),
        "status_uuid": "%08X-%04X-%04X-%04X-%012X" % tuple(
            uuid_rng.getrandbits(b) for b in (32, 16, 16, 16, 48)),
        "rows": file_rows + dir_rows + link_rows, "orphans": orphans,
    }


def accounting(plan):
    """What a correct verifier must report for this plan (computed from the plan only)."""
    rows = plan["rows"]
    files = [r for r in rows if r["flags"] == FLAG_FILE]
    defects = plan["defects"]
    missing = sorted(r["stored_id"] for r in files if r["blob_state"] == "missing")
    mismatch = sorted(({"file_id": r["stored_id"], "domain": r["domain"], "path": r["path"],
                        "expected_bytes": r["size"], "actual_bytes": len(r["content"])}
                       for r in files if r["blob_state"] == "truncated"),
                      key=lambda m: m["file_id"])
    domains = {}
    for r in rows:
        entry = domains.setdefault(r["domain"], {"files": 0, "bytes": 0})
        if r["flags"] == FLAG_FILE:
            entry["files"] += 1
            entry["bytes"] += r["size"] or 0
    if "no-status" in defects:
        state = None
    elif "unfinished" in defects:
        state = "uploading"
    else:
        state = "finished"
    reasons = []
    if state is None:
        reasons.append("no Status.plist")
    elif state != "finished":
        reasons.append("SnapshotState is %s" % state)
    if "snapshot-dir" in defects:
        reasons.append("Snapshot/ folder left behind")
    if missing:
        reasons.append("%d blob(s) missing" % len(missing))
    if mismatch:
        reasons.append("%d blob(s) of the wrong size" % len(mismatch))
    if "no-manifest-plist" in defects:
        reasons.append("no Manifest.plist (not restorable)")
    if "empty-manifest-plist" in defects:
        reasons.append("empty Manifest.plist (not restorable)")
    return {
        "listed": len(files),
        "directories": sum(1 for r in rows if r["flags"] == FLAG_DIR),
        "symlinks": sum(1 for r in rows if r["flags"] == FLAG_SYMLINK),
        "present": sum(1 for r in files if r["blob_state"] != "missing"),
        "missing": missing,
        "size_mismatch": mismatch,
        "orphans": len(plan["orphans"]),
        "declared_bytes": sum(r["size"] or 0 for r in files),
        "size_unknown": sum(1 for r in files if r["size"] is None),
        "fileid_mismatch": sorted(r["stored_id"] for r in rows if r.get("bad_fileid")),
        "complete": not reasons,
        "incomplete_reasons": reasons,
        "snapshot_state": state,
        "is_full_backup": plan["full_backup"] if state is not None else None,
        "encrypted": False,
        "domains": dict(sorted(domains.items())),
        "udid": plan["udid"],
        "device_name": plan["name"],
        "ios_version": plan["ios"],
        "build_version": plan["build"],
        "product_type": plan["product_type"],
        "date": iso_z(plan["date"]),
        "defects": list(defects),
        "seed": plan["seed"],
    }


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------

def _write(path, data):
    with open(path, "wb") as fh:
        fh.write(data)


def write_backup(plan, out_dir):
    """Write the planned backup into out_dir (created; must be absent or empty)."""
    if os.path.exists(out_dir) and os.listdir(out_dir):
        raise FileExistsError("%s exists and is not empty" % out_dir)
    os.makedirs(out_dir, exist_ok=True)
    defects = plan["defects"]
    when = plan["date"]
    udid = plan["udid"]
    rows = plan["rows"]
    bundles = ["net.whatsapp.WhatsApp", "com.apple.mobilenotes", "com.spotify.client"]

    info = {
        "Build Version": plan["build"],
        "Device Name": plan["name"],
        "Display Name": plan["name"],
        "GUID": "%032X" % random.Random("guid:%d" % plan["seed"]).getrandbits(128),
        "Installed Applications": bundles,
        "Last Backup Date": when,
        "Product Name": "iPhone",
        "Product Type": plan["product_type"],
        "Product Version": plan["ios"],
        "Serial Number": plan["serial"],
        # Real backups of older phones (40-hex UDIDs) store the folder-style lower-case UDID
        # here and an upper-case copy in "Unique Identifier"; compare UDIDs case-insensitively.
        "Target Identifier": udid,
        "Target Type": "Device",
        "Unique Identifier": udid.upper(),
        "iTunes Version": "12.13.4.4",
    }
    _write(os.path.join(out_dir, "Info.plist"), plistlib.dumps(info, fmt=plistlib.FMT_XML))

    if "empty-manifest-plist" in defects:
        _write(os.path.join(out_dir, "Manifest.plist"), b"")
    elif "no-manifest-plist" not in defects:
        major = int(plan["ios"].split(".")[0])
        manifest = {
            "Version": "10.0",
            "SystemDomainsVersion": "%d.0" % (major + 7),
            "Date": when,
            "IsEncrypted": False,
            "WasPasscodeSet": True,
            "Lockdown": {
                "ProductVersion": plan["ios"],
                "ProductType": plan["product_type"],
                "BuildVersion": plan["build"],
                "DeviceName": plan["name"],
                "UniqueDeviceID": udid,
                "SerialNumber": plan["serial"],
            },
            "Applications": {},
        }
        _write(os.path.join(out_dir, "Manifest.plist"),
               plistlib.dumps(manifest, fmt=plistlib.FMT_BINARY))

    if "no-status" not in defects:
        status = {
            "Version": "3.3",
            "UUID": plan["status_uuid"],
            "Date": when,
            "BackupState": "new",
            "IsFullBackup": bool(plan["full_backup"]),
            "SnapshotState": "uploading" if "unfinished" in defects else "finished",
        }
        _write(os.path.join(out_dir, "Status.plist"),
               plistlib.dumps(status, fmt=plistlib.FMT_BINARY))

    # Manifest.db: the exact Finder schema; built in memory-light fashion in one transaction.
    db_path = os.path.join(out_dir, "Manifest.db")
    con = sqlite3.connect(db_path)
    try:
        con.execute("CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT, relativePath TEXT, "
                    "flags INTEGER, file BLOB)")
        con.execute("CREATE INDEX FilesDomainIdx ON Files(domain)")
        con.execute("CREATE INDEX FilesRelativePathIdx ON Files(relativePath)")
        con.execute("CREATE INDEX FilesFlagsIdx ON Files(flags)")
        con.execute("CREATE TABLE Properties (key TEXT PRIMARY KEY, value BLOB)")
        arch_rng = random.Random("archive:%d" % plan["seed"])
        con.executemany(
            "INSERT INTO Files (fileID, domain, relativePath, flags, file) VALUES (?, ?, ?, ?, ?)",
            ((r["stored_id"], r["domain"], r["path"], r["flags"],
              archive_mbfile(r, arch_rng, r["shuffle"])) for r in rows))
        con.executemany("INSERT INTO Properties (key, value) VALUES (?, ?)", [
            ("SyntheticFixture", b"ibackup tests/independent/make_backup.py"),
            ("Seed", str(plan["seed"]).encode()),
        ])
        con.commit()
    finally:
        con.close()

    # Blobs: <first two hex>/<fileID>, exactly Size bytes unless a defect says otherwise.
    made_dirs = set()

    def put_blob(fid, data):
        sub = os.path.join(out_dir, fid[:2])
        if sub not in made_dirs:
            os.makedirs(sub, exist_ok=True)
            made_dirs.add(sub)
        _write(os.path.join(sub, fid), data)

    for r in rows:
        if r["flags"] == FLAG_FILE and r["blob_state"] != "missing":
            put_blob(r["stored_id"], r["content"])
    for o in plan["orphans"]:
        put_blob(o["file_id"], o["content"])

    if "snapshot-dir" in defects:
        # What an interrupted upload leaves: a staged blob in Snapshot/<xx>/<fileID>.
        # It is not an orphan: only <root>/<xx>/ folders hold the backup's blobs.
        staged = hashlib.sha1(("snapshot:%d" % plan["seed"]).encode()).hexdigest()
        os.makedirs(os.path.join(out_dir, "Snapshot", staged[:2]), exist_ok=True)
        _write(os.path.join(out_dir, "Snapshot", staged[:2], staged), b"partial upload\n")


def make_backup(out_dir, **kwargs):
    """Plan, write, and return the accounting for one backup."""
    plan = plan_backup(**kwargs)
    write_backup(plan, out_dir)
    return accounting(plan)


def expected_path(out_dir, requested):
    """Where --expected writes: FILE, or OUT_DIR/../<basename>.expected.json; never inside."""
    out_abs = os.path.abspath(out_dir)
    if requested == "auto":
        target = os.path.join(os.path.dirname(out_abs), os.path.basename(out_abs) + ".expected.json")
    else:
        target = os.path.abspath(requested)
    if target == out_abs or target.startswith(out_abs + os.sep):
        raise ValueError("--expected must not point inside the backup folder")
    return target


def add_common_args(parser):
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--files", type=int, default=30,
                        help="number of regular-file rows (default 30)")
    parser.add_argument("--max-size", type=int, default=262144,
                        help="largest blob size in bytes (default 262144)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", metavar="OUT_DIR", help="backup folder to create")
    add_common_args(parser)
    parser.add_argument("--defect", action="append", default=[], choices=DEFECTS, metavar="NAME",
                        help="add a deliberate defect (repeatable): " + ", ".join(DEFECTS))
    parser.add_argument("--udid", help="device UDID (default: derived from the seed)")
    parser.add_argument("--ios", default="17.5.1", help="iOS version (default 17.5.1)")
    parser.add_argument("--build", help="iOS build (default: known build for --ios, else 21F90)")
    parser.add_argument("--product-type", default="iPhone14,5", help="default iPhone14,5")
    parser.add_argument("--name", default="Alex's iPhone", help="device name")
    parser.add_argument("--date", default="2026-11-20T21:03:11Z", help="backup date, ISO 8601")
    parser.add_argument("--full-backup", action="store_true", help="Status.plist IsFullBackup true")
    parser.add_argument("--expected", nargs="?", const="auto", metavar="FILE",
                        help="also write the JSON to FILE (no FILE: OUT_DIR/../<basename>.expected.json)")
    args = parser.parse_args(argv)
    try:
        target = expected_path(args.out_dir, args.expected) if args.expected else None
        result = make_backup(args.out_dir, seed=args.seed, files=args.files, defects=args.defect,
                             udid=args.udid, ios=args.ios, build=args.build,
                             product_type=args.product_type, name=args.name, date=args.date,
                             full_backup=args.full_backup, max_size=args.max_size)
    except (ValueError, FileExistsError) as err:
        print("make_backup.py: %s" % err, file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if target:
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
