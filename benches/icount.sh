#!/bin/sh
# Instructions per message under callgrind, isml against prost, for the
# operations of the comparison table: a measure the machine's load does not
# move (docs/performance.md). Each count is the run with ITER loops over the
# workload's 1,000 messages minus the run with none (the setup), divided by
# 1,000 * ITER.
#
#   benches/icount.sh [workload ...]        (default: all four)
#
# Build first: cargo build --release -p isml-benches --bin profile
set -eu
BIN=${BIN:-target/release/profile}
ITER=${ITER:-5}
WORKLOADS=${*:-telemetry log station config}

count() { # op workload iterations -> instructions
    out=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BIN" "$1" "$2" "$3" 2>"$out" >/dev/null
    sed -n 's/.*Collected : *\([0-9]*\).*/\1/p' "$out"
    rm -f "$out"
}

per_msg() { # op workload
    base=$(count "$1" "$2" 0)
    full=$(count "$1" "$2" "$ITER")
    echo $(( (full - base) / (ITER * 1000) ))
}

printf '%-10s %-28s %8s %8s %7s\n' workload operation isml prost ratio
OPS=${OPS:-encode_to_vec encode decode lazy view}
for w in $WORKLOADS; do
    pb_decode=
    for a in $OPS; do
        case $a in
            decode | lazy | view)
                # prost's one way to read a message, counted once
                [ -n "$pb_decode" ] || pb_decode=$(per_msg pb_decode "$w")
                ib=$pb_decode ;;
            *) ib=$(per_msg "pb_$a" "$w") ;;
        esac
        ia=$(per_msg "$a" "$w")
        printf '%-10s %-28s %8d %8d %6sx\n' "$w" "$a" "$ia" "$ib" \
            "$(echo "scale=2; $ib / $ia" | bc)"
    done
done
