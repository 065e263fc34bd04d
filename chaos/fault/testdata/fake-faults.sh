#!/usr/bin/env bash
# A stand-in for scripts/faults.sh in tests: prints its arguments, lists
# three nodes, and answers the leader lookups.
skiff_nodes() { printf 'skiff-1\nskiff-2\nskiff-3\n'; }
skiff_wait_for() { return 0; }
skiff_cluster_ok() { return 0; }
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case $1 in
    leader-of) echo skiff-2 ;;
    leader-of-controller) echo skiff-3 ;;
    delay) [ "${FAKE_NO_DELAY:-}" = 1 ] && exit 3; echo "$*" ;;
    *) echo "$*" ;;
  esac
fi
