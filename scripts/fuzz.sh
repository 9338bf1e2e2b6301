#!/bin/bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs each one for the given
# number of seconds (default 20) over its corpus in tests/fuzz/corpus/<target>.
# Fails on any crash, leak or sanitizer report. New inputs go to a scratch copy of the
# corpus, never into the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
dir=build-fuzz
if [ ! -f "$dir/build.ninja" ]; then
    CC=clang meson setup "$dir" -Dfuzzing=true -Ddaemon=false \
        -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
ninja -C "$dir" >/dev/null
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
rc=0
for bin in "$dir"/tests/fuzz/fuzz-*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    work=$(mktemp -d)
    cp -r "tests/fuzz/corpus/$name/." "$work/" 2>/dev/null || true
    echo "fuzz: $name for ${secs}s"
    if ! "$bin" -max_total_time="$secs" -max_len=1200 -print_final_stats=0 \
        -artifact_prefix="$dir/$name-" "$work" >"$dir/$name.log" 2>&1; then
        echo "fuzz: $name FAILED; log $dir/$name.log:" >&2
        tail -n 60 "$dir/$name.log" >&2
        rc=1
    else
        grep -E '^#[0-9]+.*DONE' "$dir/$name.log" | tail -n 1 || true
    fi
    rm -rf "$work"
done
exit $rc
