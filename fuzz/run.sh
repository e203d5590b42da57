#!/bin/sh
# Run the H3 fuzz target for SECONDS (default 600) at low priority.
# New inputs go to $WORK (default /tmp/pwt-fuzz-h3); the committed seeds in
# fuzz/corpus/h3 are read, never written.  Crashes land in $WORK/crashes/.
# Afterwards: python fuzz/coverage_report.py $WORK fuzz/corpus/h3  (line coverage of h3/)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-600}
work=${WORK:-/tmp/pwt-fuzz-h3}
mkdir -p "$work/corpus" "$work/crashes"
shift 2>/dev/null || true
exec nice -n 10 python "$here/fuzz_h3.py" "$work/corpus" "$here/corpus/h3" \
    -max_total_time="$seconds" -max_len=4096 -len_control=0 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$work/crashes/" -print_final_stats=1 "$@"
