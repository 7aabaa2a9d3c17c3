#!/usr/bin/env bash
# Style checks run by scripts/test.sh:
#  - no unbounded or unsafe string functions (after curl's checksrc %banfunc);
#  - formatting as .clang-format says (clang-format --dry-run --Werror);
#  - the layers (scripts/check-layers.sh): no include of a higher layer, no
#    include circle, SQL only in stores/sqlite/, Cypher only in stores/neo4j/.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t sources < <(git ls-files '*.c' '*.h' | grep -v '^build')
status=0
banned='\b(sprintf|vsprintf|strcpy|strcat|strncpy|strncat|strtok|strtok_r|gets|atoi|atol|atoll|atof)[[:space:]]*\('
if grep -nE "$banned" "${sources[@]}"; then
  echo "check-style: banned functions above (use snprintf, struct buf, strtol...)" >&2
  status=1
fi
if ! clang-format --dry-run --Werror "${sources[@]}" 2>/tmp/clang-format.$$; then
  head -n 40 /tmp/clang-format.$$ >&2
  echo "check-style: run clang-format -i on the files above" >&2
  status=1
fi
rm -f /tmp/clang-format.$$
[ $status -eq 0 ] && echo "check-style: ok (${#sources[@]} files)"
scripts/check-layers.sh || status=1
exit $status
