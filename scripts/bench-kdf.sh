#!/usr/bin/env bash
# Benchmarks ibackup's encryption core against OpenSSL on the same inputs, in one run:
#   1. the password-to-key chain with real parameters (DPIC 10,000,000, ITER 10,000):
#      ibackup's derive_kek vs `openssl kdf` PBKDF2-SHA256 then PBKDF2-SHA1 (target <= 1.1x);
#   2. AES-256-CBC decryption of encrypted blobs (what `verify --deep` does per blob):
#      ibackup's check_blob vs `openssl enc -d -aes-256-cbc` over the same files (target <= 1.5x).
# Both sides run on one thread. Prints the timings and the two ratios (ibackup / OpenSSL).
# Usage: scripts/bench-kdf.sh [MB of blobs, default 300]
set -euo pipefail

cd "$(dirname "$0")/.."
MB=${1:-300}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --quiet --release --example crypto_bench
BENCH="$CARGO_TARGET_DIR/release/examples/crypto_bench"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

now() { date +%s.%N; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# The third hashcat -m 14800 self-test vector (real parameters); password "hashcat".
PASSWORD=hashcat
DPSL=425b4bb4e200b5fd4c66979c9caca31716052063
DPIC=10000000
SALT=2353363784073608264337337723324886300850
ITER=10000

echo "== key derivation: PBKDF2-HMAC-SHA256 x $DPIC, then PBKDF2-HMAC-SHA1 x $ITER"
start=$(now)
ours=$(printf '%s\n' "$PASSWORD" | "$BENCH" kdf "$DPSL" "$DPIC" "$SALT" "$ITER")
ibackup_kdf=$(awk -v s="$start" -v e="$(now)" 'BEGIN { printf "%.3f", e - s }')
ours_kek=$(sed -n 's/^kek //p' <<<"$ours")

start=$(now)
k1=$(openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt "pass:$PASSWORD" \
    -kdfopt "hexsalt:$DPSL" -kdfopt "iter:$DPIC" PBKDF2 | tr -d ':\n')
kek=$(openssl kdf -keylen 32 -kdfopt digest:SHA1 -kdfopt "hexpass:$k1" \
    -kdfopt "hexsalt:$SALT" -kdfopt "iter:$ITER" PBKDF2 | tr -d ':\n')
openssl_kdf=$(awk -v s="$start" -v e="$(now)" 'BEGIN { printf "%.3f", e - s }')

if [[ "${kek,,}" != "$ours_kek" ]]; then
    echo "MISMATCH: openssl kek ${kek,,}, ibackup kek $ours_kek" >&2
    exit 1
fi
echo "same key from both: $ours_kek"
echo "ibackup ${ibackup_kdf}s (process included), openssl ${openssl_kdf}s (two processes)"
kdf_ratio=$(ratio "$ibackup_kdf" "$openssl_kdf")

echo "== AES-256-CBC decryption of ${MB} MB of blobs"
KEY=$(openssl rand -hex 32)
IV=00000000000000000000000000000000
files=()
for i in $(seq 1 $(( (MB + 24) / 25 ))); do
    # 25 MB minus a few bytes, so each blob ends in a partial block plus padding.
    head -c $(( 25 * 1000 * 1000 - i )) /dev/urandom >"$WORK/plain"
    openssl enc -aes-256-cbc -K "$KEY" -iv "$IV" -in "$WORK/plain" -out "$WORK/blob$i"
    files+=("$WORK/blob$i")
done
rm -f "$WORK/plain"
cat "${files[@]}" >/dev/null # warm the page cache for both sides

start=$(now)
"$BENCH" check "$KEY" "${files[@]}" >"$WORK/ours"
ibackup_aes=$(awk -v s="$start" -v e="$(now)" 'BEGIN { printf "%.3f", e - s }')

start=$(now)
for f in "${files[@]}"; do
    openssl enc -d -aes-256-cbc -K "$KEY" -iv "$IV" -in "$f" -out /dev/null
done
openssl_aes=$(awk -v s="$start" -v e="$(now)" 'BEGIN { printf "%.3f", e - s }')

bytes=$(sed -n 's/^bytes //p' "$WORK/ours")
echo "ibackup ${ibackup_aes}s, openssl ${openssl_aes}s for $bytes bytes in ${#files[@]} blobs"
aes_ratio=$(ratio "$ibackup_aes" "$openssl_aes")

echo
echo "key derivation ratio (ibackup/openssl): $kdf_ratio  (target <= 1.1)"
echo "decryption ratio     (ibackup/openssl): $aes_ratio  (target <= 1.5)"
