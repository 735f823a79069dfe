#!/usr/bin/env bash
# Issue 14's client requirement: the depth-1 p50 latency of libgmem's gmem_ring_gpc_read() and of the Rust crate's
# Ring::gpc_read, each within 1.2x of gmem-bench's own ring figure measured in the same run.
#
#   bash Benchmarks/clients-ring.sh            # ROUNDS=5 by default
#
# One gmemd (--size 64M) on a private socket serves every run. ROUNDS rounds, each running gmem-bench
# (`ring --op gpc-read --depth 1`), clients/c/examples/gmem-ring-latency and clients/rust/examples/ring_latency
# one after the other (2 s measured after 0.5 s of warm-up each, same method: one ring, one GPC, 8-byte reads,
# the completion queue polled); interleaving spreads the host's drift over all three. Each client's figure is the
# median of its rounds' p50. The table gives the ratio to gmem-bench's and whether it meets <= 1.2.
#
# Binaries: $GMEMD_BINARY (default .build/release/gmemd, else /work/bin/gmemd-release) and $GMEM_BENCH (default
# .build/release/gmem-bench, else /work/bin/gmem-bench); the C example is built in clients/c/build-release (meson,
# buildtype release), the Rust one with cargo --release (offline). Exit status 0 when everything ran, even if a
# target is missed (this is a measurement); 1 if something failed to build or run.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${ROUNDS:-5}
limit=1.2
# Before this script adds load of its own: the host's noise.
load=$(cut -d' ' -f1-3 /proc/loadavg)

fail() {
    echo "clients-ring: $*" >&2
    exit 1
}

pick() { # variable default fallback
    local v=${!1:-}
    if [ -n "$v" ]; then echo "$v"; elif [ -x "$2" ]; then echo "$2"; else echo "$3"; fi
}
gmemd=$(pick GMEMD_BINARY "$repo/.build/release/gmemd" /work/bin/gmemd-release)
bench=$(pick GMEM_BENCH "$repo/.build/release/gmem-bench" /work/bin/gmem-bench)
[ -x "$gmemd" ] || fail "no gmemd at $gmemd (set GMEMD_BINARY)"
[ -x "$bench" ] || fail "no gmem-bench at $bench (set GMEM_BENCH)"
[[ $rounds =~ ^[1-9][0-9]*$ ]] || fail "ROUNDS must be a positive integer"

dir=$(mktemp -d /tmp/clients-ring.XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# The two examples, release builds.
cbuild="$repo/clients/c/build-release"
if [ -f "$cbuild/build.ninja" ]; then
    meson setup --reconfigure "$cbuild" "$repo/clients/c" --buildtype=release >"$dir/build.log" 2>&1
else
    meson setup "$cbuild" "$repo/clients/c" --buildtype=release >"$dir/build.log" 2>&1
fi || { cat "$dir/build.log" >&2; fail "meson setup failed"; }
ninja -C "$cbuild" -j 2 examples/gmem-ring-latency >"$dir/build.log" 2>&1 ||
    { cat "$dir/build.log" >&2; fail "building gmem-ring-latency failed"; }
c_example="$cbuild/examples/gmem-ring-latency"

[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="$repo/clients/rust/target"
(cd "$repo/clients/rust" && cargo build --offline --release --example ring_latency) >"$dir/build.log" 2>&1 ||
    { cat "$dir/build.log" >&2; fail "building ring_latency failed"; }
rust_example="$CARGO_TARGET_DIR/release/examples/ring_latency"

sock="$dir/gmemd.sock"
"$gmemd" --socket "$sock" --size 64M --log-level warning &
pid=$!
for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] && kill -0 "$pid" 2>/dev/null || fail "gmemd did not start ($gmemd)"

run() { # client -> one JSON line on stdout
    local args=(--socket "$sock" --duration 2 --warmup 0.5 --json)
    case $1 in
    swift) "$bench" ring --op gpc-read --depth 1 "${args[@]}" ;;
    c) "$c_example" "${args[@]}" ;;
    rust) "$rust_example" "${args[@]}" ;;
    esac
}
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" <<<"$2"; }

echo "gmemd $gmemd, gmem-bench $bench"
echo "load average: $load on $(nproc) cores"
clients=(swift c rust)
declare -A p50s
for round in $(seq "$rounds"); do
    line="round $round:"
    for client in "${clients[@]}"; do
        out=$(run "$client") || fail "$client run failed: $out"
        p50=$(field p50_ns "$out")
        ops=$(field ops_per_second "$out")
        errors=$(field errors "$out")
        [ -n "$p50" ] && [ -n "$ops" ] || fail "$client printed no figures: $out"
        [ "${errors:-0}" = 0 ] || fail "$client counted $errors errors: $out"
        p50s[$client]+="$p50 "
        line+=$(printf '  %s p50 %s ns (%.0f ops/s)' "$client" "$p50" "$ops")
    done
    echo "$line"
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
swift=$(median "${p50s[swift]}")
echo
printf '%-8s %22s %15s %10s %5s\n' client "p50 ns (median of $rounds)" "ratio to swift" target met
for client in "${clients[@]}"; do
    m=$(median "${p50s[$client]}")
    if [ "$client" = swift ]; then
        printf '%-8s %22s %15s %10s %5s\n' "$client" "$m" 1.00 - -
    else
        awk -v c="$client" -v m="$m" -v s="$swift" -v l="$limit" -v r="$rounds" 'BEGIN {
            ratio = m / s
            printf "%-8s %22s %15.2f %10s %5s\n", c, m, ratio, "<= " l, (ratio <= l ? "yes" : "NO")
        }'
    fi
done
if awk -v l="${load%% *}" 'BEGIN {exit !(l > 0.5)}'; then
    echo "warning: the 1-minute load average was ${load%% *} (above 0.5) when this started: other work on the" \
        "host may have skewed the figures; run it again on a quiet machine"
fi
exit 0
