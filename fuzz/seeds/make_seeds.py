#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/seeds/ from the repository's own fixtures.

    python3 fuzz/seeds/make_seeds.py

Seeds: MBFile records from fixtures/sample-backup's Manifest.db, the sample's plists (prefixed
with the byte that picks Info/Manifest/Status), small Manifest.db images (the sample's schema and
first rows on 512-byte pages, and a few hostile shapes of Files), the keybag of the third-party
synthetic encrypted sample (fixtures/third-party, Apache-2.0), usbmux / lockdown frames built
here, and hostile names for the text escaper.
"""
import os
import plistlib
import sqlite3
import struct

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
CORPUS = os.path.join(TOP, "fuzz", "seeds")
SAMPLE = os.path.join(TOP, "fixtures", "sample-backup", "00008110-001A2C3E0E38801E")
ENCRYPTED = os.path.join(TOP, "fixtures", "third-party", "synthetic-encrypted-ios26")


def put(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def main():
    conn = sqlite3.connect("file:%s?mode=ro&immutable=1" % os.path.join(SAMPLE, "Manifest.db"), uri=True)
    for i, (record,) in enumerate(conn.execute("SELECT file FROM Files WHERE file IS NOT NULL LIMIT 12")):
        put("mbfile", "record-%02d" % i, record)
    for selector, name in enumerate(["Info.plist", "Manifest.plist", "Status.plist"]):
        with open(os.path.join(SAMPLE, name), "rb") as f:
            put("backup_plists", name, bytes([selector]) + f.read())
    with open(os.path.join(ENCRYPTED, "Manifest.plist"), "rb") as f:
        put("keybag", "synthetic-ios26", plistlib.load(f)["BackupKeyBag"])
    device = {"MessageType": "Attached", "DeviceID": 1,
              "Properties": {"ConnectionType": "USB", "SerialNumber": "00008110-001A2B3C4D5E801E"}}
    for name, message in [("result", {"MessageType": "Result", "Number": 0}),
                          ("list", {"DeviceList": [device]})]:
        body = plistlib.dumps(message)
        put("usbmux_frame", name, struct.pack("<IIII", 16 + len(body), 1, 8, 1) + body)
    for name, message in [("value", {"Request": "GetValue", "Value": "17.5.1"}),
                          ("session", {"Request": "StartSession", "SessionID": "X", "EnableSessionSSL": True})]:
        body = plistlib.dumps(message)
        put("lockdown_frame", name, struct.pack(">I", len(body)) + body)
    manifest_db_seeds(conn)
    put("mbdb", "two-records", mbdb([("HomeDomain", "Library/SMS/sms.db", 0o100644, 4096),
                                    ("HomeDomain", "Library", 0o040755, 0)]))
    # Names as a hostile backup or phone would give them, for the text escaper.
    put("text_escape", "hostile-name", b"Robin\x1b]0;owned\x07 iPhone\n\xe2\x80\xaegnp.exe\r\x08")
    put("text_escape", "forged-line",
        b"HomeDomain\nComplete: all 3 files are present with the right size.")
    put("text_escape", "plain", "Zoë’s iPhone 📱".encode())
    version = struct.pack(">III", 2, 0, 0)
    put("usb_packet", "version", struct.pack(">II", 0, 8 + len(version)) + version)
    tcp = struct.pack(">HHIIBBHHH", 49152, 62078, 1, 0, 0x50, 0x02, 512, 0, 0)
    put("usb_packet", "syn-wide", struct.pack(">IIIHH", 6, 16 + len(tcp), 0xFEEDFACE, 1, 0) + tcp)
    put("usb_packet", "data-short", struct.pack(">II", 6, 8 + len(tcp) + 4) + tcp + b"\0\0\0\x10")


def manifest_db_seeds(sample):
    """Manifest.db images small enough to mutate fast: the sample's own schema (Files, its
    indexes, Properties) with its first rows, and Files as a view, a virtual table, with a
    generated column, and in WAL mode."""
    schema = [sql for (sql,) in sample.execute(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid")]
    rows = sample.execute("SELECT * FROM Files ORDER BY rowid LIMIT 6").fetchall()
    files = "CREATE TABLE Files (fileID TEXT, domain TEXT, relativePath TEXT, flags INTEGER, file BLOB)"
    put("manifest_db", "sample-six-rows", sqlite_image(schema, rows))
    put("manifest_db", "files-view", sqlite_image([
        "CREATE VIEW Files AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
        "SELECT i AS rowid, hex(i) AS fileID, 'D' AS domain, 'p' AS relativePath, 1 AS flags, "
        "NULL AS file FROM n"], []))
    put("manifest_db", "files-fts4", sqlite_image([
        "CREATE VIRTUAL TABLE Files USING fts4(fileID, domain, relativePath, flags, file)"], rows[:2]))
    put("manifest_db", "files-generated", sqlite_image([
        "CREATE TABLE Files (fileID TEXT, domain TEXT, relativePath TEXT, flags INTEGER, "
        "file BLOB AS (zeroblob(100000)))"], [r[:4] for r in rows[:2]]))
    put("manifest_db", "wal-mode", sqlite_image([files], rows[:2], wal=True))


def sqlite_image(schema, rows, wal=False):
    """The bytes of a database on 512-byte pages built from `schema` and `rows` (for Files)."""
    import tempfile
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "m.db")
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA page_size = 512")
        for sql in schema:
            conn.execute(sql)
        if rows:
            marks = ", ".join("?" * len(rows[0]))
            columns = "(fileID, domain, relativePath, flags)" if len(rows[0]) == 4 else ""
            conn.executemany("INSERT INTO Files %s VALUES (%s)" % (columns, marks), rows)
        conn.commit()
        if wal:
            conn.execute("PRAGMA journal_mode = WAL")
        else:
            conn.execute("VACUUM")
        conn.close()
        with open(path, "rb") as f:
            return f.read()


def mbdb(rows):
    """A Manifest.mbdb: header, then big-endian records (backup-format.md)."""
    def text(value):
        if value is None:
            return b"\xff\xff"
        raw = value.encode()
        return struct.pack(">H", len(raw)) + raw
    out = bytearray(b"mbdb\x05\x00")
    for domain, path, mode, size in rows:
        out += text(domain) + text(path) + text(None) + text(None) + text(None)
        out += struct.pack(">HQIIIIIQBB", mode, 1, 501, 501, 0, 0, 0, size, 3, 0)
    return bytes(out)


if __name__ == "__main__":
    main()
