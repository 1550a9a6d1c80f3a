#!/usr/bin/env python3
"""Independent fixture writer: a MobileSync/Backup-like folder holding several backups.

    make_backup_folder.py OUT_DIR [--seed N] [--files N] [--max-size BYTES] [--expected FILE]
                          [--preset three|pair]

Writes OUT_DIR/<UDID>/ for each backup (using make_backup.py's functions) and prints a JSON list:
one accounting per backup (the same object make_backup.py prints) plus "folder", the subfolder
name. `--expected FILE` also writes that list to FILE (refused if FILE is inside OUT_DIR).

Presets:
    three (default)  3 backups with different UDIDs, dates and iOS versions:
                       iPhone14,5 iOS 17.5.1 (healthy),
                       iPhone10,6 iOS 16.7.10 with an old-style 40-hex UDID (healthy),
                       iPhone15,2 iOS 18.0 left unfinished (SnapshotState uploading + Snapshot/)
    pair             2 backups: one healthy, one with `unfinished` + `missing-blob`
                     (used for fixtures/sample-backups/)
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_backup  # noqa: E402  (the sibling script; its functions do the real work)

PRESETS = {
    "three": [
        dict(udid="00008110-001A2C3E0E38801E", name="Alex's iPhone", product_type="iPhone14,5",
             ios="17.5.1", build="21F90", date="2026-11-20T21:03:11Z", defects=[]),
        dict(udid="3f6c1b2a9d8e7f60514233a4b5c6d7e8f9a0b1c2", name="Sam's old iPhone",
             product_type="iPhone10,6", ios="16.7.10", build="20H350",
             date="2026-06-02T08:15:42Z", defects=[], full_backup=True),
        dict(udid="00008120-000C5D1E3A41C01E", name="Robin's iPhone", product_type="iPhone15,2",
             ios="18.0", build="22A3354", date="2026-11-27T23:41:05Z",
             defects=["unfinished", "snapshot-dir"]),
    ],
    "pair": [
        dict(udid="00008110-001A2C3E0E38801E", name="Alex's iPhone", product_type="iPhone14,5",
             ios="17.5.1", build="21F90", date="2026-11-20T21:03:11Z", defects=[]),
        dict(udid="00008120-000C5D1E3A41C01E", name="Robin's iPhone", product_type="iPhone15,2",
             ios="18.1", build="22B83", date="2026-11-27T23:41:05Z",
             defects=["unfinished", "missing-blob"]),
    ],
}


def make_folder(out_dir, seed=1, files=30, max_size=262144, preset="three"):
    """Write every backup of the preset under out_dir; return the list of accountings."""
    os.makedirs(out_dir, exist_ok=True)
    results = []
    for i, spec in enumerate(PRESETS[preset]):
        spec = dict(spec)
        sub = spec["udid"]
        accounting = make_backup.make_backup(os.path.join(out_dir, sub), seed=seed + i,
                                             files=files, max_size=max_size, **spec)
        results.append(dict(folder=sub, **accounting))
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder of backups to create")
    make_backup.add_common_args(parser)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="three")
    parser.add_argument("--expected", metavar="FILE", help="also write the JSON list to FILE")
    args = parser.parse_args(argv)
    target = None
    if args.expected:
        out_abs = os.path.abspath(args.out_dir)
        target = os.path.abspath(args.expected)
        if target == out_abs or target.startswith(out_abs + os.sep):
            print("make_backup_folder.py: --expected must not be inside OUT_DIR", file=sys.stderr)
            return 2
    try:
        results = make_folder(args.out_dir, seed=args.seed, files=args.files,
                              max_size=args.max_size, preset=args.preset)
    except (ValueError, FileExistsError) as err:
        print("make_backup_folder.py: %s" % err, file=sys.stderr)
        return 2
    text = json.dumps(results, indent=2, ensure_ascii=False)
    print(text)
    if target:
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
