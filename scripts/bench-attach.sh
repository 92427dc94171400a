#!/usr/bin/env bash
# Attachment throughput and memory against rage, on one 1 GiB file, in one run.
#
#   scripts/bench-attach.sh [SIZE_MIB]     (default 1024)
#
# Needs GNU time (/usr/bin/time), bc, and rage: set RAGE=/path/to/rage, or it
# is built once with `cargo install rage --root target/rage`. Outputs go to a
# temporary directory ($TMPDIR) on the same file system for both tools.
#
# On a VM the first write of a gigabyte pays for page allocation in the
# kernel, whichever tool comes first; so the tools take turns for RUNS rounds
# (default 3) and each one's best time is reported.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
rage=${RAGE:-target/rage/bin/rage}
if [ ! -x "$rage" ]; then
  cargo install --quiet rage --root target/rage
fi
rage_keygen="$(dirname "$rage")/rage-keygen"
cargo build --release --quiet
medcrypt=target/release/medcrypt
work=$(mktemp -d "${TMPDIR:-/tmp}/medcrypt-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$work/input.bin"
export MEDCRYPT_PASSPHRASE="benchmark passphrase"
"$medcrypt" --store "$work/doc.sqlite" init --name Bench > /dev/null
"$medcrypt" --store "$work/pat.sqlite" init > /dev/null
code=$("$medcrypt" --store "$work/doc.sqlite" pair new --patient pat | awk '/Typed code/{getline; print $1}')
"$medcrypt" --store "$work/pat.sqlite" pair accept --code "$code" --physician doc > /dev/null
"$rage_keygen" -o "$work/key.txt" 2> /dev/null
recipient=$(grep -o 'age1[0-9a-z]*' "$work/key.txt")
cat "$work/input.bin" > /dev/null   # warm the page cache for both

runs=${RUNS:-3}
measure() { # label, command...  (keeps the best of the calls for a label)
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" > /dev/null
  read -r secs rss < "$work/time"
  local best="$work/$label.secs"
  if [ ! -f "$best" ] || [ "$(echo "$secs < $(cat "$best")" | bc -l)" = 1 ]; then
    echo "$secs" > "$best"
    echo "$rss" > "$work/$label.rss"
  fi
}
report() {
  local label=$1 secs rss
  secs=$(cat "$work/$label.secs"); rss=$(cat "$work/$label.rss")
  printf '%-18s %7.2f s  %8.0f MiB/s  peak RSS %6.1f MiB\n' "$label" "$secs" \
    "$(echo "$size_mib / $secs" | bc -l)" "$(echo "$rss / 1024" | bc -l)"
}

echo "file: $size_mib MiB of random data; $(nproc) cores; best of $runs alternating runs"
for _ in $(seq "$runs"); do
  rm -f "$work/input.medcrypt" "$work/input.age"
  measure medcrypt-encrypt "$medcrypt" --store "$work/doc.sqlite" attach encrypt --to pat "$work/input.bin" -o "$work/input.medcrypt"
  measure rage-encrypt "$rage" -e -r "$recipient" -o "$work/input.age" "$work/input.bin"
  rm -f "$work/out-medcrypt.bin" "$work/out-rage.bin"
  measure medcrypt-decrypt "$medcrypt" --store "$work/pat.sqlite" attach decrypt "$work/input.medcrypt" -o "$work/out-medcrypt.bin"
  measure rage-decrypt "$rage" -d -i "$work/key.txt" -o "$work/out-rage.bin" "$work/input.age"
done
for label in medcrypt-encrypt rage-encrypt medcrypt-decrypt rage-decrypt; do report "$label"; done
cmp "$work/input.bin" "$work/out-medcrypt.bin"
cmp "$work/input.bin" "$work/out-rage.bin"
for op in encrypt decrypt; do
  printf 'throughput ratio medcrypt/rage, %s: %.2fx\n' "$op" \
    "$(echo "$(cat "$work/rage-$op.secs") / $(cat "$work/medcrypt-$op.secs")" | bc -l)"
done
