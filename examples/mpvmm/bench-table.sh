#!/usr/bin/env bash
# Reduces the mpvmm-bench and mpvmm-dev-phase lines of several rounds (run.sh --bench) to one table: each row's
# median over the rounds, and the ring transport's ratios to the direct-mapping baseline and to the socket
# transport. A batch is 16 requests and one kick; "serve" is the device's time per batch (its transport's
# share), "rest" the remainder of the batch's time (the kick's exit and wake-ups, the guest's own work).
#
#   bash examples/mpvmm/bench-table.sh FILE
set -euo pipefail
awk '
function field(name,    i, kv) {
    for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == name) return kv[2] }
}
function median(list,    n, v, i, j, t) {
    n = split(list, v, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
/^mpvmm-bench/ {
    key = field("phase") SUBSEP field("transport")
    host[key] = host[key] " " field("req_per_s"); guest[key] = guest[key] " " field("guest_req_per_s")
    mb[key] = mb[key] " " field("mb_per_s"); rounds[key]++
}
/^mpvmm-dev-phase/ {
    key = field("phase") SUBSEP field("transport")
    serve[key] = serve[key] " " field("serve_us_per_batch")
}
END {
    split("write-4k read-4k write-64k read-64k", phases, " ")
    split("socket ring direct", transports, " ")
    printf "%-10s %-7s %6s %12s %13s %9s %14s %13s\n", "phase", "via", "rounds", "req/s host", "req/s guest", "MB/s", "serve us/batch", "rest us/batch"
    for (p = 1; p <= 4; p++) {
        for (t = 1; t <= 3; t++) {
            key = phases[p] SUBSEP transports[t]
            rate[transports[t]] = median(host[key])
            batch_us = rate[transports[t]] > 0 ? 16e6 / rate[transports[t]] : 0
            printf "%-10s %-7s %6d %12.0f %13.0f %9.1f %14.1f %13.1f\n", phases[p], transports[t], rounds[key], rate[transports[t]], median(guest[key]), median(mb[key]), median(serve[key]), batch_us - median(serve[key])
        }
        if (rate["direct"] > 0 && rate["socket"] > 0)
            printf "%-10s ring / direct %.2f (target >= 0.3), ring / socket %.2f (target >= 3)\n", phases[p], rate["ring"] / rate["direct"], rate["ring"] / rate["socket"]
        else
            printf "%-10s no ratios: a transport has no result\n", phases[p]
    }
}' "$1"
