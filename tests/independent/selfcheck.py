#!/usr/bin/env python3
"""Self-check for make_backup.py: read a written backup back from disk and recount it.

    selfcheck.py BACKUP_DIR EXPECTED_JSON      (EXPECTED_JSON: what make_backup.py printed; '-' = stdin)
    selfcheck.py --run [--files N] [--seed N]  (generate backups with every defect into a temp dir
                                                and check each one; exit 1 on any difference)

This reader only uses sqlite3 and plistlib and follows the format description
(/work/shared/design/backup-format.md): the MBFile is $objects[$top.root], every reference is
resolved through its UID, EncryptionKey's NS.data may itself be a UID. It is a sanity check of the
fixtures (valid SQLite, valid plists, counts that add up), not a replacement for the Rust reader.
"""

import hashlib
import json
import os
import plistlib
import re
import sqlite3
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
HEX40 = re.compile(r"^[0-9a-f]{40}$")
SCHEMA = [
    "CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT, relativePath TEXT, flags INTEGER, file BLOB)",
    "CREATE INDEX FilesDomainIdx ON Files(domain)",
    "CREATE INDEX FilesRelativePathIdx ON Files(relativePath)",
    "CREATE INDEX FilesFlagsIdx ON Files(flags)",
    "CREATE TABLE Properties (key TEXT PRIMARY KEY, value BLOB)",
]


def resolve(objects, value):
    return objects[value.data] if isinstance(value, plistlib.UID) else value


def read_mbfile(blob):
    """Decode one `file` column into a plain dict with references resolved."""
    archive = plistlib.loads(blob)
    assert archive["$archiver"] == "NSKeyedArchiver", archive.get("$archiver")
    objects = archive["$objects"]
    mb = resolve(objects, archive["$top"]["root"])
    cls = resolve(objects, mb["$class"])
    assert cls["$classname"] == "MBFile", cls
    out = {k: v for k, v in mb.items() if not isinstance(v, plistlib.UID)}
    out["RelativePath"] = resolve(objects, mb["RelativePath"])
    for key in ("Target", "Digest", "ExtendedAttributes"):
        if key in mb:
            out[key] = resolve(objects, mb[key])
    if "EncryptionKey" in mb:
        ek = resolve(objects, mb["EncryptionKey"])
        data = resolve(objects, ek["NS.data"])
        assert isinstance(data, bytes) and len(data) == 44, data
        out["EncryptionKey"] = data
    if "ExtendedAttributes" in out:
        plistlib.loads(out["ExtendedAttributes"])  # must itself be a plist
    return out


def recount(backup):
    """Account for a backup from what is on disk."""
    def plist(name):
        path = os.path.join(backup, name)
        if not os.path.exists(path):
            return None
        with open(path, "rb") as fh:
            data = fh.read()
        return plistlib.loads(data) if data else {}

    info = plist("Info.plist")
    manifest = plist("Manifest.plist")
    status = plist("Status.plist")
    with open(os.path.join(backup, "Manifest.db"), "rb") as fh:
        assert fh.read(16) == b"SQLite format 3\0"
    uri = "file:%s?immutable=1" % os.path.join(backup, "Manifest.db")
    con = sqlite3.connect(uri, uri=True)
    schema = [s for (s,) in con.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")]
    assert schema == SCHEMA, schema
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    res = {"listed": 0, "directories": 0, "symlinks": 0, "present": 0, "missing": [],
           "size_mismatch": [], "declared_bytes": 0, "size_unknown": 0, "fileid_mismatch": [],
           "domains": {}}
    listed_ids = set()
    for fid, domain, rel, flags, blob in con.execute("SELECT fileID, domain, relativePath, flags, file FROM Files"):
        mb = read_mbfile(blob)
        assert mb["RelativePath"] == rel, (mb["RelativePath"], rel)
        if hashlib.sha1(("%s-%s" % (domain, rel)).encode()).hexdigest() != fid:
            res["fileid_mismatch"].append(fid)
        dom = res["domains"].setdefault(domain, {"files": 0, "bytes": 0})
        if flags == 2:
            assert mb["Mode"] & 0o170000 == 0o040000
            res["directories"] += 1
            continue
        if flags == 4:
            assert mb["Mode"] & 0o170000 == 0o120000 and mb["Target"]
            res["symlinks"] += 1
            continue
        assert flags == 1 and mb["Mode"] & 0o170000 == 0o100000, (flags, mb["Mode"])
        res["listed"] += 1
        listed_ids.add(fid)
        dom["files"] += 1
        size = mb.get("Size")
        if size is None:
            res["size_unknown"] += 1
        else:
            res["declared_bytes"] += size
            dom["bytes"] += size
        path = os.path.join(backup, fid[:2], fid)
        if not os.path.isfile(path):
            res["missing"].append(fid)
            continue
        res["present"] += 1
        actual = os.path.getsize(path)
        if size is not None and actual != size:
            res["size_mismatch"].append({"file_id": fid, "domain": domain, "path": rel,
                                         "expected_bytes": size, "actual_bytes": actual})
        elif "Digest" in mb:
            with open(path, "rb") as fh:
                assert hashlib.sha1(fh.read()).digest() == mb["Digest"], fid
    con.close()

    orphans = 0
    for name in os.listdir(backup):
        sub = os.path.join(backup, name)
        if len(name) == 2 and os.path.isdir(sub) and all(c in "0123456789abcdef" for c in name):
            orphans += sum(1 for f in os.listdir(sub) if HEX40.match(f) and f not in listed_ids)
    res["orphans"] = orphans
    res["missing"].sort()
    res["size_mismatch"].sort(key=lambda m: m["file_id"])
    res["fileid_mismatch"].sort()
    res["domains"] = dict(sorted(res["domains"].items()))
    res["snapshot_state"] = status.get("SnapshotState") if status is not None else None
    manifest_ok = bool(manifest) and manifest.get("IsEncrypted") is False
    res["complete"] = (res["snapshot_state"] == "finished" and manifest_ok
                       and not os.path.exists(os.path.join(backup, "Snapshot"))
                       and not res["missing"] and not res["size_mismatch"])
    res["udid"] = info["Target Identifier"]
    assert info["Unique Identifier"].lower() == res["udid"].lower()
    res["device_name"] = info["Device Name"]
    res["ios_version"] = info["Product Version"]
    res["build_version"] = info["Build Version"]
    res["product_type"] = info["Product Type"]
    res["date"] = info["Last Backup Date"].strftime("%Y-%m-%dT%H:%M:%SZ")
    if manifest:
        lock = manifest["Lockdown"]
        assert lock["UniqueDeviceID"] == res["udid"] and lock["ProductVersion"] == res["ios_version"]
    return res


def compare(backup, expected):
    got = recount(backup)
    diffs = ["%s: expected %r, read back %r" % (k, expected.get(k), v)
             for k, v in got.items() if expected.get(k) != v]
    return diffs


def run_all(files, seed):
    sys.path.insert(0, HERE)
    import make_backup  # noqa: E402  (our own module, next to this file)
    cases = [[]] + [[d] for d in make_backup.DEFECTS] + [
        ["missing-blob", "missing-blob", "truncated-blob", "orphan", "orphan", "bad-fileid",
         "unfinished", "snapshot-dir"]]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, defects in enumerate(cases):
            out = os.path.join(tmp, "case%d" % i)
            expected = make_backup.make_backup(out, seed=seed + i, files=files, defects=defects)
            diffs = compare(out, expected)
            # The sqlite3 command-line tool must also open it (if installed).
            try:
                cli = subprocess.run(["sqlite3", "-readonly", "file:%s/Manifest.db?immutable=1" % out,
                                      "SELECT count(*) FROM Files"], capture_output=True, text=True)
                rows = expected["listed"] + expected["directories"] + expected["symlinks"]
                if cli.returncode != 0 or cli.stdout.strip() != str(rows):
                    diffs.append("sqlite3 CLI: %r %r" % (cli.stdout, cli.stderr))
            except FileNotFoundError:
                pass
            print("%-4s %-60s %s" % ("ok" if not diffs else "FAIL", ",".join(defects) or "(healthy)",
                                     "; ".join(diffs)))
            failures += bool(diffs)
    return 1 if failures else 0


def main(argv):
    if argv and argv[0] == "--run":
        import argparse
        p = argparse.ArgumentParser()
        p.add_argument("--run", action="store_true")
        p.add_argument("--files", type=int, default=60)
        p.add_argument("--seed", type=int, default=7)
        a = p.parse_args(argv)
        return run_all(a.files, a.seed)
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    text = sys.stdin.read() if argv[1] == "-" else open(argv[1], encoding="utf-8").read()
    expected = json.loads(text)
    diffs = compare(argv[0], expected)
    for d in diffs:
        print(d)
    print("ok" if not diffs else "FAIL")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
