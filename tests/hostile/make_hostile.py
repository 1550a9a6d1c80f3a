#!/usr/bin/env python3
"""Writes a corpus of hostile or damaged backup folders for tests/hostile_backups.rs.

    python3 tests/hostile/make_hostile.py OUT_DIR

Each case is a sound backup (made by tests/independent/make_backup.py) with one deliberate
fault: damaged or hostile Manifest.db, plists, MBFile records, blobs and paths. OUT_DIR/cases.json
lists every case with the one exit code `verify` must give and the one `inspect` must give (a
list of one, so a reader sees at once that there is no choice), the entries made unreadable (with
the mode each had) for the cases about permissions, and, for some, words the output must contain.
ibackup must answer each within seconds, without panicking, in bounded memory, and without
changing the folder.

Exit codes (docs/exit-codes.md): 0 the backup is complete, 1 it is not (a finding), 2 it could
not be checked. `inspect` prints a report (0) whenever it can read the backup's plists and file
list, whatever they say, so it gives 2 only where `verify` gives 2 for those; a blob `verify`
could not examine is no reason for `inspect` to fail.

The unreadable cases only mean something when file permissions apply: tests/hostile_backups.rs
runs them as an unprivileged user when it runs as root.
"""

import json
import os
import plistlib
import random
import sqlite3
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "independent"))
import make_backup  # noqa: E402  (the independent writer, reused for the sound base)

CASES = []


def case(verify, expect=None, inspect=None):
    """Registers a fault: a function that damages the backup folder it is given (and returns
    the paths it made unreadable, if any). `verify` is the one exit code `verify` must give;
    `inspect` the one `inspect` must give, by default 0 unless `verify` gives 2."""
    if inspect is None:
        inspect = 2 if verify == 2 else 0
    assert verify in (0, 1, 2) and inspect in (0, 2), (verify, inspect)

    def register(fn):
        CASES.append((fn.__name__, fn, verify, inspect, expect))
        return fn
    return register


def make_unreadable(path):
    """Mode 000 on `path`; returns it with the mode it had, for the harness to give back."""
    mode = os.stat(path).st_mode & 0o7777
    os.chmod(path, 0)
    return (path, mode)


def db(path):
    return os.path.join(path, "Manifest.db")


def rows_sql(path, sql, params=()):
    conn = sqlite3.connect(db(path))
    conn.execute(sql, params)
    conn.commit()
    conn.close()


def first_file(path):
    conn = sqlite3.connect(db(path))
    row = conn.execute("SELECT fileID, file FROM Files WHERE flags = 1 ORDER BY rowid LIMIT 1").fetchone()
    conn.close()
    return row


def set_record(path, file_id, data):
    rows_sql(path, "UPDATE Files SET file = ? WHERE fileID = ?", (data, file_id))


def archive(root_fields, extra=()):
    objects = ["$null", root_fields] + list(extra) + [{"$classname": "MBFile"}]
    return plistlib.dumps({"$version": 100000, "$archiver": "NSKeyedArchiver",
                           "$top": {"root": plistlib.UID(1)}, "$objects": objects},
                          fmt=plistlib.FMT_BINARY)


# --- Manifest.db ---------------------------------------------------------------------------

@case(2, "Manifest.db")
def manifest_truncated(path):
    data = open(db(path), "rb").read()
    open(db(path), "wb").write(data[: len(data) // 3])


@case(2, "Manifest.db")
def manifest_empty(path):
    open(db(path), "wb").close()


@case(2, "not a SQLite database")
def manifest_text(path):
    open(db(path), "w").write("this is not a database\n" * 100)


@case(2, "not a SQLite database")
def manifest_random_bytes(path):
    open(db(path), "wb").write(random.Random(5).randbytes(65536))


@case(2, "encrypted", inspect=0)
def manifest_encrypted_looking(path):
    """IsEncrypted with a manifest that is not SQLite, and no password."""
    manifest = plistlib.load(open(os.path.join(path, "Manifest.plist"), "rb"))
    manifest["IsEncrypted"] = True
    plistlib.dump(manifest, open(os.path.join(path, "Manifest.plist"), "wb"), fmt=plistlib.FMT_BINARY)
    open(db(path), "wb").write(random.Random(6).randbytes(8192))


@case(2, "Manifest.db")
def manifest_wrong_schema(path):
    os.remove(db(path))
    conn = sqlite3.connect(db(path))
    conn.execute("CREATE TABLE Other (x)")
    conn.commit()
    conn.close()


@case(2, "not a backup manifest")
def manifest_missing_columns(path):
    os.remove(db(path))
    conn = sqlite3.connect(db(path))
    conn.execute("CREATE TABLE Files (fileID TEXT, domain TEXT)")
    conn.execute("INSERT INTO Files VALUES ('ab', 'HomeDomain')")
    conn.commit()
    conn.close()


@case(0)
def manifest_wrong_types(path):
    """A row of the wrong types counts as an unknown kind of row, nothing worse."""
    rows_sql(path, "INSERT INTO Files VALUES (12345, 67, 89.5, 'one', 'not a blob')")


@case(1, "lists no files")
def manifest_lists_nothing(path):
    """A valid manifest with no rows, although Status.plist says finished."""
    rows_sql(path, "DELETE FROM Files")


@case(2, "Manifest.db")
def manifest_is_a_folder(path):
    os.remove(db(path))
    os.mkdir(db(path))


@case(2, "Manifest.db")
def manifest_is_dev_zero(path):
    os.remove(db(path))
    os.symlink("/dev/zero", db(path))


@case(0, "0 missing")
def manifest_duplicate_file_ids(path):
    """No primary key, the same fileID twice (three rows listed again, word for word). Decided:
    complete (0). Each row's blob is there, with the right size; a row listed twice is no file
    missing, and restoring the same file twice restores it. ibackup once took the blob away with
    the first row and called the second row's file missing (exit 1)."""
    conn = sqlite3.connect(db(path))
    rows = conn.execute("SELECT * FROM Files").fetchall()
    conn.execute("DROP TABLE Files")
    conn.execute("CREATE TABLE Files (fileID TEXT, domain TEXT, relativePath TEXT, flags INTEGER, file BLOB)")
    conn.executemany("INSERT INTO Files VALUES (?, ?, ?, ?, ?)", rows + [r for r in rows if r[3] == 1][:3])
    conn.commit()
    conn.close()


# --- plists ----------------------------------------------------------------------------------

@case(2, "Info.plist")
def info_garbage(path):
    open(os.path.join(path, "Info.plist"), "wb").write(b"\x00\xffgarbage<<<plist")


@case(0, "Info.plist")
def info_empty(path):
    """An empty Info.plist. Decided: complete (0), with the warning a missing Info.plist gets.
    Info.plist only describes the phone (the computer writes it first, when a backup starts, so
    an interrupted start leaves it empty); a restore needs the manifest and the blobs, which are
    all there. Garbage in Info.plist is another matter (info_garbage: 2), since it shows the
    folder holds something else than a backup was written."""
    open(os.path.join(path, "Info.plist"), "wb").close()


@case(2, "Info.plist")
def info_deeply_nested(path):
    depth = 200000
    open(os.path.join(path, "Info.plist"), "w").write(
        '<?xml version="1.0"?><plist version="1.0">' + "<array>" * depth + "</array>" * depth + "</plist>")


@case(2, "Info.plist")
def info_huge(path):
    with open(os.path.join(path, "Info.plist"), "wb") as f:
        f.write(b'<?xml version="1.0"?><plist version="1.0"><dict><key>x</key><string>')
        chunk = b"A" * (1 << 20)
        for _ in range(70):
            f.write(chunk)
        f.write(b"</string></dict></plist>")


@case(2, "Info.plist")
def info_is_a_folder(path):
    os.remove(os.path.join(path, "Info.plist"))
    os.mkdir(os.path.join(path, "Info.plist"))


@case(2, "Status.plist")
def status_binary_garbage(path):
    open(os.path.join(path, "Status.plist"), "wb").write(b"bplist00" + bytes(range(256)) * 4)


@case(1, "Status.plist")
def status_state_of_wrong_type(path):
    status = plistlib.load(open(os.path.join(path, "Status.plist"), "rb"))
    status["SnapshotState"] = 42
    plistlib.dump(status, open(os.path.join(path, "Status.plist"), "wb"), fmt=plistlib.FMT_BINARY)


@case(2, "Manifest.plist")
def manifest_plist_is_an_array(path):
    plistlib.dump([1, 2, 3], open(os.path.join(path, "Manifest.plist"), "wb"))


@case(2, "Manifest.plist")
def manifest_plist_bad_offset_table(path):
    data = bytearray(open(os.path.join(path, "Manifest.plist"), "rb").read())
    data[-8:] = (len(data) * 4).to_bytes(8, "big")
    open(os.path.join(path, "Manifest.plist"), "wb").write(bytes(data))


@case(2, "Manifest.plist")
def manifest_plist_self_multiplying(path):
    """A binary plist whose arrays all point at one another: 2^40 values once expanded."""
    count = 40
    objects = []
    for i in range(count):
        child = i + 1 if i + 1 < count else i
        objects.append(bytes([0xA2, child, child]))
    offsets, blob = [], bytearray(b"bplist00")
    for obj in objects:
        offsets.append(len(blob))
        blob += obj
    table = len(blob)
    for off in offsets:
        blob += bytes([off])
    blob += bytes(6) + bytes([1, 1]) + count.to_bytes(8, "big") + (0).to_bytes(8, "big") + table.to_bytes(8, "big")
    open(os.path.join(path, "Manifest.plist"), "wb").write(bytes(blob))


# --- MBFile records --------------------------------------------------------------------------

@case(1)
def record_uid_out_of_range(path):
    fid, _ = first_file(path)
    set_record(path, fid, archive({"Size": plistlib.UID(999), "$class": plistlib.UID(2)}))


@case(1)
def record_cyclic_uids(path):
    fid, _ = first_file(path)
    set_record(path, fid, archive({"Size": plistlib.UID(2), "$class": plistlib.UID(4)},
                                  [plistlib.UID(3), plistlib.UID(2)]))


@case(1)
def record_negative_size(path):
    fid, _ = first_file(path)
    set_record(path, fid, archive({"Size": -5, "$class": plistlib.UID(2)}))


@case(1, "wrong size")
def record_absurd_size(path):
    fid, _ = first_file(path)
    set_record(path, fid, archive({"Size": 1 << 62, "$class": plistlib.UID(2)}))


@case(1)
def record_garbage(path):
    fid, _ = first_file(path)
    set_record(path, fid, random.Random(7).randbytes(300))


@case(1)
def record_null(path):
    fid, _ = first_file(path)
    rows_sql(path, "UPDATE Files SET file = NULL WHERE fileID = ?", (fid,))


@case(1)
def record_huge_object_count(path):
    fid, data = first_file(path)
    data = bytearray(data)
    data[-24:-16] = (1 << 60).to_bytes(8, "big")
    set_record(path, fid, bytes(data))


@case(1)
def record_top_not_a_dictionary(path):
    fid, _ = first_file(path)
    set_record(path, fid, plistlib.dumps([1, 2, 3], fmt=plistlib.FMT_BINARY))


# --- blobs and paths -------------------------------------------------------------------------

def blob_path(path, fid):
    return os.path.join(path, fid[:2], fid)


@case(2, "not regular files", inspect=0)
def blob_is_a_folder(path):
    fid, _ = first_file(path)
    os.remove(blob_path(path, fid))
    os.mkdir(blob_path(path, fid))


@case(2, "not regular files", inspect=0)
def blob_is_a_symlink_outside(path):
    fid, _ = first_file(path)
    os.remove(blob_path(path, fid))
    os.symlink("/etc/passwd", blob_path(path, fid))


@case(2, "ermission denied", inspect=0)
def blob_unreadable(path):
    """A blob of mode 000: could not check (2), named with the reason. Run as a user the mode
    applies to (root reads it all the same). `inspect` reads no blob: it reports (0)."""
    fid, _ = first_file(path)
    return [make_unreadable(blob_path(path, fid))]


@case(2, "1 not looked for (unreadable folder)", inspect=0)
def prefix_folder_unreadable(path):
    """A blob folder (the two-letter one) of mode 000: could not check (2), named; the file it
    would hold is counted as not looked for, never as missing."""
    fid, _ = first_file(path)
    return [make_unreadable(os.path.join(path, fid[:2]))]


@case(0)
def relative_path_escapes(path):
    """relativePath with .. and an absolute path: reported as rows, never followed."""
    for rel in ["../../../../etc/passwd", "/etc/shadow"]:
        fid = make_backup.file_id("HomeDomain", rel)
        rows_sql(path, "INSERT INTO Files VALUES (?, 'HomeDomain', ?, 2, NULL)", (fid, rel))


@case(1)
def file_id_escapes(path):
    rows_sql(path, "INSERT INTO Files VALUES ('../../../../etc/passwd', 'HomeDomain', 'x', 1, ?)",
             (archive({"Size": 3, "$class": plistlib.UID(2)}),))


@case(1)
def snapshot_is_a_file(path):
    open(os.path.join(path, "Snapshot"), "w").write("not a folder")


@case(0)
def many_orphans(path):
    rng = random.Random(9)
    for i in range(3000):
        fid = "%040x" % rng.getrandbits(160)
        os.makedirs(os.path.join(path, fid[:2]), exist_ok=True)
        open(blob_path(path, fid), "wb").write(b"x")


@case(2, "not a backup folder")
def empty_folder(path):
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isdir(full):
            for sub in os.listdir(full):
                os.remove(os.path.join(full, sub))
            os.rmdir(full)
        else:
            os.remove(full)


# --- backup-side files: special files, links and caps (issue 12) ----------------------------
# Every file of a backup is opened without blocking, its type checked on the open handle, links
# refused, and read with a cap: a FIFO, a device or a link where a plist or Manifest.mbdb belongs
# is named with what it is, at once and in bounded memory.

def replace_with_fifo(target):
    if os.path.lexists(target):
        os.remove(target)
    os.mkfifo(target)


def replace_with_link(target, to):
    if os.path.lexists(target):
        os.remove(target)
    os.symlink(to, target)


def legacy(path):
    """Turns the backup into an iOS 5-9 one as far as the folder shows: no Manifest.db, so the
    file list is read from Manifest.mbdb."""
    os.remove(db(path))
    return os.path.join(path, "Manifest.mbdb")


@case(2, "FIFO")
def manifest_plist_fifo(path):
    replace_with_fifo(os.path.join(path, "Manifest.plist"))


@case(2, "symbolic link")
def manifest_plist_links_to_dev_zero(path):
    replace_with_link(os.path.join(path, "Manifest.plist"), "/dev/zero")


@case(2, "symbolic link")
def manifest_plist_links_to_dev_urandom(path):
    replace_with_link(os.path.join(path, "Manifest.plist"), "/dev/urandom")


@case(2, "symbolic link")
def manifest_plist_links_to_a_plist_outside(path):
    """A sound plist, but outside the backup: a link inside a backup is never followed."""
    outside = path + "-outside.plist"
    os.rename(os.path.join(path, "Manifest.plist"), outside)
    replace_with_link(os.path.join(path, "Manifest.plist"), os.path.join("..", os.path.basename(outside)))


@case(2, "FIFO")
def info_plist_fifo(path):
    replace_with_fifo(os.path.join(path, "Info.plist"))


@case(2, "symbolic link")
def info_plist_links_to_dev_zero(path):
    replace_with_link(os.path.join(path, "Info.plist"), "/dev/zero")


@case(2, "FIFO")
def status_plist_fifo(path):
    replace_with_fifo(os.path.join(path, "Status.plist"))


@case(2, "symbolic link")
def status_plist_links_to_dev_urandom(path):
    replace_with_link(os.path.join(path, "Status.plist"), "/dev/urandom")


@case(2, "FIFO")
def mbdb_fifo(path):
    replace_with_fifo(legacy(path))


@case(2, "symbolic link")
def mbdb_links_to_dev_zero(path):
    replace_with_link(legacy(path), "/dev/zero")


@case(2, "symbolic link")
def mbdb_links_to_dev_urandom(path):
    replace_with_link(legacy(path), "/dev/urandom")


@case(2, "bytes allowed")
def mbdb_over_its_cap(path):
    """A sparse Manifest.mbdb one byte over the cap: refused by its size, never read."""
    with open(legacy(path), "wb") as f:
        f.write(b"mbdb\x05\x00")
        f.truncate((256 << 20) + 1)


# --- terminal output (printing) -------------------------------------------------------------

HOSTILE_NAME = ("Evil\x1b]0;owned\x07\x1b[2J\x1b[31m\r\x08\u202e\u2066\u2069\u200b\x85\x9b"
                "\nComplete: all 999 files are present")


def set_info(path, **values):
    """Rewrites Info.plist in binary form (XML cannot carry control characters)."""
    info_path = os.path.join(path, "Info.plist")
    info = plistlib.load(open(info_path, "rb"))
    info.update(values)
    plistlib.dump(info, open(info_path, "wb"), fmt=plistlib.FMT_BINARY)


@case(1, "\\nComplete: all 999 files are present")
def names_with_terminal_escapes(path):
    """Escape sequences, bidi and a forged verdict line in the device name and in a row whose
    blob is missing (so the report names it): shown escaped, never raw."""
    set_info(path, **{"Device Name": HOSTILE_NAME})
    fid = make_backup.file_id("HomeDomain", HOSTILE_NAME)
    rows_sql(path, "INSERT INTO Files VALUES (?, 'HomeDomain', ?, 1, ?)",
             (fid, HOSTILE_NAME, archive({"Size": 3, "$class": plistlib.UID(2)})))


@case(0)
def device_name_huge(path):
    """A 20 MB device name: a few KB of text, bounded memory."""
    set_info(path, **{"Device Name": "A" * (20 << 20)})


# --- SQLite attack surface (Manifest.db) ---------------------------------------------------
# A Files that is not a plain table, values larger than any real backup holds, a b-tree that
# multiplies itself, rows only in the -wal, a Manifest.db that is a link: each stops the check
# with exit 2 and words naming what is wrong, within the time and memory limits.

def sound_rows(path):
    conn = sqlite3.connect(db(path))
    rows = conn.execute("SELECT fileID, domain, relativePath, flags, file FROM Files").fetchall()
    conn.close()
    return rows


def new_manifest(path, sql, rows=()):
    """Replaces Manifest.db by a database built by `sql`, holding `rows` when Files takes them."""
    os.remove(db(path))
    conn = sqlite3.connect(db(path))
    conn.executescript(sql)
    if rows:
        conn.executemany("INSERT INTO Files VALUES (?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()


@case(2, "a view")
def sqlite_files_recursive_view(path):
    new_manifest(path, """CREATE VIEW Files AS WITH RECURSIVE n(i) AS
        (SELECT 1 UNION ALL SELECT i + 1 FROM n)
        SELECT i AS rowid, hex(i) AS fileID, 'HomeDomain' AS domain, 'a' AS relativePath, 1 AS flags,
               NULL AS file FROM n""")


@case(2, "a view")
def sqlite_files_cross_join_view(path):
    rows = sound_rows(path)
    new_manifest(path, """CREATE TABLE Real (fileID TEXT, domain TEXT, relativePath TEXT,
                                          flags INTEGER, file BLOB);
        CREATE VIEW Files AS SELECT a.rowid AS rowid, a.* FROM Real a, Real b, Real c, Real d, Real e, Real f""")
    conn = sqlite3.connect(db(path))
    conn.executemany("INSERT INTO Real VALUES (?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()


@case(2, "a view")
def sqlite_files_zeroblob_view(path):
    new_manifest(path, """CREATE VIEW Files AS SELECT 1 AS rowid, 'ab' AS fileID, 'D' AS domain,
        'p' AS relativePath, 1 AS flags, zeroblob(1000000000) AS file""")


@case(2, "generated")
def sqlite_files_generated_zeroblob(path):
    rows = [r[:4] for r in sound_rows(path)]
    os.remove(db(path))
    conn = sqlite3.connect(db(path))
    conn.execute("""CREATE TABLE Files (fileID TEXT, domain TEXT, relativePath TEXT, flags INTEGER,
                    file BLOB GENERATED ALWAYS AS (zeroblob(1000000000)) VIRTUAL)""")
    conn.executemany("INSERT INTO Files (fileID, domain, relativePath, flags) VALUES (?, ?, ?, ?)",
                     rows)
    conn.commit()
    conn.close()


@case(2, "virtual table")
def sqlite_files_virtual_table(path):
    new_manifest(path, "CREATE VIRTUAL TABLE Files USING fts4(fileID, domain, relativePath, flags, file)",
                 sound_rows(path))


@case(2, "relativePath")
def sqlite_huge_relative_path(path):
    """5 MB, over the 1 MiB any one value may take: refused before it is read."""
    fid, _ = first_file(path)
    rows_sql(path, "UPDATE Files SET relativePath = printf('%.*c', 5000000, 'a') WHERE fileID = ?",
             (fid,))


@case(2, "domain")
def sqlite_long_domain(path):
    """10 KB, over the 4 KiB a name may take."""
    fid, _ = first_file(path)
    rows_sql(path, "UPDATE Files SET domain = printf('%.*c', 10000, 'D') WHERE fileID = ?", (fid,))


@case(2, "file")
def sqlite_huge_record(path):
    fid, _ = first_file(path)
    rows_sql(path, "UPDATE Files SET file = zeroblob(2000000) WHERE fileID = ?", (fid,))


@case(2, "more work")
def sqlite_self_multiplying_btree(path):
    """A Files b-tree of 18 interior pages, each with every child pointer on the next one: a
    scan would visit its one leaf 72^18 times. The work budget stops it."""
    rows = sound_rows(path)[:3]
    os.remove(db(path))
    conn = sqlite3.connect(db(path))
    conn.execute("PRAGMA page_size = 512")
    conn.execute("CREATE TABLE Files (fileID TEXT, domain TEXT, relativePath TEXT, flags INTEGER, file BLOB)")
    conn.executemany("INSERT INTO Files VALUES (?, ?, ?, ?, NULL)", [r[:4] for r in rows])
    conn.commit()
    leaf = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'Files'").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("UPDATE sqlite_master SET rootpage = ? WHERE name = 'Files'", (pages + 1,))
    conn.commit()
    conn.close()
    data = bytearray(open(db(path), "rb").read())
    levels = 18
    for level in range(levels):
        child = pages + level + 2 if level + 1 < levels else leaf
        data += interior_page(512, child, 71)
    data[28:32] = (pages + levels).to_bytes(4, "big")
    open(db(path), "wb").write(bytes(data))


def interior_page(size, child, cells):
    """A table b-tree interior page whose `cells` cells and right pointer all name `child`."""
    page = bytearray(size)
    start = size - 5 * cells
    page[0] = 0x05
    page[3:5] = cells.to_bytes(2, "big")
    page[5:7] = start.to_bytes(2, "big")
    page[8:12] = child.to_bytes(4, "big")
    for i in range(cells):
        at = start + 5 * i
        page[12 + 2 * i:14 + 2 * i] = at.to_bytes(2, "big")
        page[at:at + 4] = child.to_bytes(4, "big")
        page[at + 4] = i + 1
    return bytes(page)


def wal_manifest(path, table_in_main):
    """Manifest.db in WAL mode copied while its writer held it open: the rows (and, unless
    `table_in_main`, the Files table itself) are only in Manifest.db-wal."""
    rows = sound_rows(path)
    work = path + ".work"
    os.makedirs(work)
    conn = sqlite3.connect(os.path.join(work, "m.db"))
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT, relativePath TEXT, "
                 "flags INTEGER, file BLOB)")
    conn.commit()
    if table_in_main:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.executemany("INSERT INTO Files VALUES (?, ?, ?, ?, ?)", rows)
    conn.commit()
    for suffix in ["", "-wal"]:
        with open(os.path.join(work, "m.db" + suffix), "rb") as f:
            data = f.read()
        with open(db(path) + suffix, "wb") as f:
            f.write(data)
    conn.close()
    for name in os.listdir(work):
        os.remove(os.path.join(work, name))
    os.rmdir(work)


@case(2, "Manifest.db-wal")
def sqlite_rows_only_in_wal(path):
    wal_manifest(path, table_in_main=False)


@case(2, "Manifest.db-wal")
def sqlite_table_empty_rows_in_wal(path):
    wal_manifest(path, table_in_main=True)


@case(2, "symbolic link")
def sqlite_manifest_links_elsewhere(path):
    """Manifest.db a link to a sound database beside it: links are not followed in a backup."""
    os.rename(db(path), os.path.join(path, "Manifest-real.db"))
    os.symlink("Manifest-real.db", db(path))


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = argv[1]
    # Files 0644, folders 0755 whatever the caller's umask: the unprivileged user the harness
    # runs the permission cases as must read everything but what a case locks.
    os.umask(0o022)
    os.makedirs(out, exist_ok=True)
    listing = []
    for name, damage, verify, inspect, expect in CASES:
        path = os.path.join(out, name)
        make_backup.make_backup(path, seed=11, files=40, max_size=4096)
        locked = damage(path) or []
        listing.append({"name": name, "exits": [verify], "inspect_exits": [inspect],
                        "expect": expect,
                        "unreadable": [{"path": os.path.relpath(p, path), "mode": mode}
                                       for p, mode in locked]})
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(listing, f, indent=1)
    print(len(listing))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
