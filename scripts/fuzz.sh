#!/bin/bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs each one for the given
# number of seconds (default 20) over its corpus in tests/fuzz/corpus/<target>.
# Fails on any crash, leak, sanitizer report or failed invariant. New inputs go to a
# scratch copy of the corpus, never into the tree. The whole stage takes about
# (number of targets) x seconds, plus the build: see tests/fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
dir=build-fuzz
# -Ddaemon=true: the targets of the daemon's own parsers need GLib and libsystemd; only the
# fuzz targets and what they link are built below, not the daemon
if [ ! -f "$dir/build.ninja" ]; then
    CC=clang meson setup "$dir" -Dfuzzing=true -Ddaemon=true \
        -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
else
    opts=$(meson introspect "$dir" --buildoptions)
    if [[ $opts != *'"name": "daemon", "value": true'* ]]; then
        meson configure "$dir" -Ddaemon=true >/dev/null # a build dir from before the daemon's targets
    fi
fi
# only the fuzz targets (and what they link): the script's job is fuzzing, not checking
# that the whole tree builds with clang. Show the compiler's output if that fails. The
# build files first, so that a target added since the last run is listed.
ninja -C "$dir" build.ninja >/dev/null
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

# The longest input each target is given: a datagram for the wire targets; a state file
# with dozens of mappings (and a torn journal tail longer than the 16 KiB the daemon once
# looked at); a configuration file; a /proc file or label; a netlink dump of many
# messages; D-Bus options with long strings.
max_len() {
    case "$1" in
    fuzz-state) echo 32768 ;;
    fuzz-conf) echo 4096 ;;
    fuzz-declared) echo 5000 ;;
    fuzz-caller) echo 4096 ;;
    fuzz-netlink) echo 16384 ;;
    fuzz-addr) echo 512 ;;
    fuzz-bus-options) echo 4096 ;;
    *) echo 1200 ;;
    esac
}

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
rc=0
for bin in "$dir"/tests/fuzz/fuzz-*; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
    name=$(basename "$bin")
    work=$(mktemp -d)
    scratch=$(mktemp -d) # the target's own files (fuzz-state writes journals), even if it crashes
    cp -r "tests/fuzz/corpus/$name/." "$work/" 2>/dev/null || true
    extra=()
    if [ -f "tests/fuzz/$name.dict" ]; then
        extra+=("-dict=tests/fuzz/$name.dict")
    fi
    echo "fuzz: $name for ${secs}s"
    if ! TMPDIR="$scratch" "$bin" -max_total_time="$secs" -max_len="$(max_len "$name")" -print_final_stats=0 \
        -artifact_prefix="$dir/$name-" "${extra[@]}" "$work" >"$dir/$name.log" 2>&1; then
        echo "fuzz: $name FAILED; log $dir/$name.log:" >&2
        tail -n 60 "$dir/$name.log" >&2
        rc=1
    else
        grep -E '^#[0-9]+.*DONE' "$dir/$name.log" | tail -n 1 || true
    fi
    rm -rf "$work" "$scratch"
done
exit $rc
