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
# only the fuzz targets (and what they link): the script's job is fuzzing, not checking
# that the whole tree builds with clang. Show the compiler's output if that fails.
targets=$(ninja -C "$dir" -t targets all | sed -n 's|^\(tests/fuzz/fuzz-[^:/]*\): .*|\1|p' | sort -u)
if [ -z "$targets" ]; then
    echo "fuzz: no fuzz targets in $dir" >&2
    exit 1
fi
# shellcheck disable=SC2086
if ! out=$(ninja -C "$dir" $targets 2>&1); then
    echo "$out" >&2
    exit 1
fi
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
rc=0
for bin in "$dir"/tests/fuzz/fuzz-*; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
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
