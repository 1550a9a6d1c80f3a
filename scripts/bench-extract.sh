#!/usr/bin/env bash
# Benchmarks `ibackup extract` (issue 17) against baselines measured in the same run:
#
#   scripts/bench-extract.sh [FILES]     (default 250000; FILES=n in the environment works too)
#
#   plain  a plain backup of FILES files of 0 to 2,048 bytes (examples/make_backup.rs, the
#          test-support writer; about 256 MB of blobs at 250,000 files).
#          `ibackup extract B --to OUT` against `cp -r` of the backup's 256 blob folders
#          (`B/00` .. `B/ff`) into a fresh folder: the same files read and the same bytes written
#          as new files on the same disk.                                   target: ratio <= 1.3
#   small  an encrypted backup of FILES files of 1 to 2,048 bytes (examples/make_encrypted_backup.rs,
#          also test support; about the same bytes, plus 1 to 16 bytes of padding a blob).
#          `ibackup extract B --to OUT --password-file F` against the sum of two baselines, each
#          timed on its own and each using every core: `cp -r` of the blob folders (every file
#          read and a file of about its size written) plus OpenSSL decrypting the same bytes
#          (the blobs split into nproc shares; each share read by `cat`, `xargs -n 2000`, into
#          ONE `openssl enc -d -aes-256-cbc -nopad` with one key, output to /dev/null; the shares
#          in parallel). One OpenSSL process per blob would time process start-up, not AES;
#          OpenSSL alone, without the copy, would leave out the 250,000 files extract must make.
#                                                                           target: ratio <= 1.3
#   large  an encrypted backup of LARGE_FILES (16) files of LARGE_MB (32) MB each.
#          `ibackup extract` against one `openssl enc -d -aes-256-cbc -K <key> -iv 0 -in BLOB
#          -out OUT/<fileID>` per blob with that blob's own key, nproc at a time (`xargs -P`):
#          the same bytes read, decrypted and written to the same disk.   target: ratio <= 1.3
#
# Page caches cannot be dropped without root, so both sides are warmed alike: every blob is read
# once, then each command runs once untimed (the warm-up; extract's output there is checked: as
# many files as the backup lists, the right number of bytes). Then RUNS (3) rounds, each timing
# every command of the part once in turn, so that noise from the rest of the machine hits all
# alike; the figures are medians.
# Before every run, timed or not, its output folder is removed and `sync` is called (untimed), so
# no run pays for the previous run's writes; the output is always a new folder beside the backup,
# on the same disk. The load average is printed: quote it with the figures.
#
# Run time: at 250,000 files nearly all of it is the file system making and removing files (on a
# 2-core VM with a load of 5, `cp -r` of 20,000 such files took 4 to 8 s), so a full run takes
# in the order of 20 minutes, most of it untimed removals; FILES=20000 gives a quick trial.
#
# PARTS="plain small large" picks the parts; RUNS=n the timed runs a side; BENCH_DIR=dir keeps
# the backups there and reuses them (otherwise a temporary folder, deleted at the end);
# IBACKUP=path times another build or program taking the same arguments.
# Exits 1, saying why, when `ibackup extract` fails or writes the wrong files (for example in a
# build where extract is not there yet).
set -euo pipefail

cd "$(dirname "$0")/.."
FILES=${1:-${FILES:-250000}}
RUNS=${RUNS:-3}
PARTS=${PARTS:-plain small large}
LARGE_FILES=${LARGE_FILES:-16}
LARGE_MB=${LARGE_MB:-32}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --quiet --release --bin ibackup --example make_backup --example make_encrypted_backup
IBACKUP=${IBACKUP:-$CARGO_TARGET_DIR/release/ibackup}
MAKE_PLAIN="$CARGO_TARGET_DIR/release/examples/make_backup"
MAKE_ENCRYPTED="$CARGO_TARGET_DIR/release/examples/make_encrypted_backup"
CORES=$(nproc)
IV=00000000000000000000000000000000

if [[ -n "${BENCH_DIR:-}" ]]; then
    mkdir -p "$BENCH_DIR"
    store=$(cd "$BENCH_DIR" && pwd)
    WORK=$(mktemp -d "$store/run.XXXXXX")
    trap 'rm -rf "$WORK"' EXIT
else
    WORK=$(mktemp -d)
    store=$WORK
    trap 'rm -rf "$WORK"' EXIT
fi
export IBACKUP_PASSWORD="bench-extract password"
printf '%s\n' "$IBACKUP_PASSWORD" >"$WORK/password"
OUT="$WORK/out" # every run writes here: beside the backups, on the same disk

now() { date +%s.%N; }
since() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.3f", e - s }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mbps() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.0f", b / t / 1e6 }'; }
fresh() { rm -rf "$OUT"; sync; }
blob_dirs() { find "$1" -mindepth 1 -maxdepth 1 -type d -name '[0-9a-f][0-9a-f]' | sort; }
sum_sizes() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }
# The bytes of a backup's blobs: the files in its two-hex-digit folders.
blob_bytes() {
    find "$1" -mindepth 2 -maxdepth 2 -type f -path "$1/[0-9a-f][0-9a-f]/*" -printf '%s\n' \
        | awk '{ s += $1 } END { print s + 0 }'
}

# The backups: made once, reused with BENCH_DIR.
plain="$store/plain-$FILES"
small="$store/small-$FILES"
large="$store/large-${LARGE_FILES}x${LARGE_MB}"
for part in $PARTS; do
    case $part in
    plain)
        if [[ ! -f "$plain/.made" ]]; then
            echo "== writing a plain backup of $FILES files in $plain"
            rm -rf "$plain"
            "$MAKE_PLAIN" "$plain" "$FILES" >/dev/null
            touch "$plain/.made"
        fi ;;
    small)
        if [[ ! -s "$small.keys" ]]; then
            echo "== writing an encrypted backup of $FILES small files in $small"
            rm -rf "$small"
            "$MAKE_ENCRYPTED" "$small" "$FILES" small >"$small.keys.part"
            mv "$small.keys.part" "$small.keys"
        fi ;;
    large)
        if [[ ! -s "$large.keys" ]]; then
            echo "== writing an encrypted backup of $LARGE_FILES files of $LARGE_MB MB in $large"
            rm -rf "$large"
            "$MAKE_ENCRYPTED" "$large" "$LARGE_FILES" "$LARGE_MB" >"$large.keys.part"
            mv "$large.keys.part" "$large.keys"
        fi ;;
    *) echo "unknown part $part (plain, small, large)" >&2; exit 2 ;;
    esac
done

# extract_run BACKUP [--password-file F]: one extraction into a fresh $OUT.
extract_run() {
    local backup=$1; shift
    "$IBACKUP" extract "$backup" --to "$OUT" "$@" >/dev/null 2>"$WORK/extract.err"
}

# warm_extract BACKUP FILES PLAIN_BYTES_MIN PLAIN_BYTES_MAX [ARGS]: the untimed run, checked.
warm_extract() {
    local backup=$1 files=$2 least=$3 most=$4; shift 4
    fresh
    local code=0
    extract_run "$backup" "$@" || code=$?
    if [[ $code -ne 0 ]]; then
        echo "ibackup extract failed on $backup (exit $code); nothing timed. It said:" >&2
        head -n 20 "$WORK/extract.err" >&2
        echo "($IBACKUP: is \`extract\` implemented in this build?)" >&2
        exit 1
    fi
    local got bytes
    got=$(find "$OUT" -type f | wc -l)
    bytes=$(sum_sizes "$OUT")
    if [[ $got -ne $files ]] || ((bytes < least || bytes > most)); then
        echo "ibackup extract wrote $got files, $bytes bytes; the backup holds $files files," \
            "$least to $most bytes" >&2
        exit 1
    fi
}

# time_each NAME CMD [NAME CMD]...: warm-ups done by the caller; RUNS rounds, each running every
# CMD once in turn (a fresh output folder before each); prints each CMD's runs and sets meds[i]
# to the median of the i-th CMD.
time_each() {
    local names=() cmds=() runs=() i start
    while (($#)); do
        names+=("$1") cmds+=("$2") runs+=("")
        shift 2
    done
    for _ in $(seq "$RUNS"); do
        for i in "${!cmds[@]}"; do
            fresh
            start=$(now)
            ${cmds[i]}
            runs[i]+=" $(since "$start")"
        done
    done
    fresh
    meds=()
    for i in "${!cmds[@]}"; do
        # shellcheck disable=SC2086 # the runs are words of one string
        meds[i]=$(median ${runs[i]})
        printf '  %-32s %8ss median:%s\n' "${names[i]}" "${meds[i]}" "${runs[i]}"
    done
}

copy_blob_folders() { # cp -r of $copy_from's blob folders into a fresh $OUT
    mkdir "$OUT"
    blob_dirs "$copy_from" | xargs cp -r -t "$OUT"
}

echo "machine: $CORES cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $RUNS runs a side"
echo "ibackup: $IBACKUP"
summary=()

for part in $PARTS; do
    case $part in
    plain)
        bytes=$(blob_bytes "$plain")
        echo
        echo "== plain: $FILES files, $bytes bytes of blobs ($plain)"
        xargs -0 cat < <(find "$plain" -type f -print0) >/dev/null
        copy_from=$plain
        fresh; copy_blob_folders # warm-up
        warm_extract "$plain" "$FILES" "$bytes" "$bytes"
        plain_extract() { extract_run "$plain" || { cat "$WORK/extract.err" >&2; exit 1; }; }
        time_each "ibackup extract" plain_extract "cp -r of the blob folders" copy_blob_folders
        r=$(ratio "${meds[0]}" "${meds[1]}")
        echo "  extract $(mbps "$bytes" "${meds[0]}") MB/s, cp -r $(mbps "$bytes" "${meds[1]}") MB/s"
        summary+=("plain, $FILES files:  extract / cp -r = $r  (target <= 1.3)")
        ;;
    small)
        awk '{ print $1 }' "$small.keys" >"$WORK/small.blobs"
        bytes=$(blob_bytes "$small")
        echo
        echo "== small: $FILES encrypted files, $bytes bytes of blobs ($small)"
        xargs cat <"$WORK/small.blobs" >/dev/null
        rm -f "$WORK"/share.*
        split -n "r/$CORES" "$WORK/small.blobs" "$WORK/share."
        KEY=$(awk 'NR == 1 { print $2 }' "$small.keys")
        openssl_shares() {
            printf '%s\n' "$WORK"/share.* | xargs -P "$CORES" -I{} sh -c \
                'xargs -n 2000 cat <"$0" | openssl enc -d -aes-256-cbc -nopad -K "$1" -iv "$2" >/dev/null' \
                {} "$KEY" "$IV"
        }
        copy_from=$small
        fresh; copy_blob_folders; fresh; openssl_shares # warm-ups
        # Each blob carries 1 to 16 bytes of padding over its file.
        warm_extract "$small" "$FILES" $((bytes - 16 * FILES)) $((bytes - FILES)) \
            --password-file "$WORK/password"
        small_extract() {
            extract_run "$small" --password-file "$WORK/password" \
                || { cat "$WORK/extract.err" >&2; exit 1; }
        }
        time_each "ibackup extract" small_extract "cp -r of the blob folders" copy_blob_folders \
            "openssl enc -d, nproc shares" openssl_shares
        e=${meds[0]}
        base=$(awk -v a="${meds[1]}" -v b="${meds[2]}" 'BEGIN { printf "%.3f", a + b }')
        echo "  baseline cp -r + openssl: ${base}s; extract $(mbps "$bytes" "$e") MB/s"
        r=$(ratio "$e" "$base")
        summary+=("small encrypted, $FILES files:  extract / (cp -r + openssl) = $r  (target <= 1.3)")
        ;;
    large)
        bytes=$(blob_bytes "$large")
        echo
        echo "== large: $LARGE_FILES encrypted files of $LARGE_MB MB, $bytes bytes of blobs ($large)"
        awk '{ print $1 }' "$large.keys" | xargs cat >/dev/null
        openssl_files() {
            mkdir "$OUT"
            OUT=$OUT xargs -P "$CORES" -L 1 sh -c \
                'openssl enc -d -aes-256-cbc -K "$1" -iv 00000000000000000000000000000000 -in "$0" -out "$OUT/${0##*/}"' \
                <"$large.keys"
        }
        fresh; openssl_files # warm-up
        warm_extract "$large" "$LARGE_FILES" $((bytes - 16 * LARGE_FILES)) $((bytes - LARGE_FILES)) \
            --password-file "$WORK/password"
        large_extract() {
            extract_run "$large" --password-file "$WORK/password" \
                || { cat "$WORK/extract.err" >&2; exit 1; }
        }
        time_each "ibackup extract" large_extract "openssl enc -d, one per blob" openssl_files
        r=$(ratio "${meds[0]}" "${meds[1]}")
        echo "  extract $(mbps "$bytes" "${meds[0]}") MB/s, openssl $(mbps "$bytes" "${meds[1]}") MB/s"
        summary+=("large encrypted, $LARGE_FILES x $LARGE_MB MB:  extract / openssl = $r  (target <= 1.3)")
        ;;
    esac
done

echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s\n' "${summary[@]}"
