#!/usr/bin/env bash
# The layers of bistore, and the check that the code keeps to them.
#
# Each LAYER line names a folder and the folders its files may include.
# This is the one place the layer order is written: CMakeLists.txt reads
# these lines to build one static library per folder, linked only against
# the libraries of its line (and links each whole into a check program
# against those alone), so a call into a layer above fails to link; this
# script fails on an #include of one.
#
# LAYER common:
# LAYER stores/model: common
# LAYER stores/sqlite: stores/model common
# LAYER stores/neo4j: stores/model common
# LAYER stores/replica: common
# LAYER stores/engine: stores/sqlite stores/neo4j stores/replica stores/model common
# LAYER stores/reconcile: stores/engine stores/sqlite stores/neo4j stores/model common
# LAYER stores: stores/reconcile stores/engine stores/sqlite stores/neo4j stores/model common
# LAYER handlers/http: common
# LAYER handlers: handlers/http stores stores/model common
# LAYER server: handlers handlers/http stores common
#
# Checks, over the .c and .h files of those folders:
#  1. every #include "folder/file.h" is of the file's own folder or of one
#     its LAYER line lists (an upward or sideways include fails);
#  2. the folders' include graph has no circle;
#  3. SQL only in stores/sqlite/: no sqlite3_* call and no string literal
#     that starts with an SQL statement anywhere else;
#  4. Cypher only in stores/neo4j/: no string literal with Cypher clauses
#     (MATCH, MERGE, UNWIND, CREATE (, DETACH DELETE, ...) anywhere else.
# tests/ and bench/ are outside the layers: tests read both stores directly
# to check what the gateway wrote, and the benchmarks measure raw SQLite
# and Neo4j settings and baselines (the naive dual write).
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A allowed
while read -r folder deps; do
    allowed[$folder]="$deps"
done < <(sed -n 's/^# LAYER \([^:]*\):\(.*\)$/\1 \2/p' "$0")

status=0
fail() {
    echo "check-layers: $*" >&2
    status=1
}

mapfile -t files < <(git ls-files '*.c' '*.h' | grep -Ev '^(tests|bench|cmake)/')
edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
for f in "${files[@]}"; do
    folder=$(dirname "$f")
    if [[ -z ${allowed[$folder]+set} ]]; then
        fail "$f: folder $folder has no LAYER line"
        continue
    fi
    while IFS=: read -r line inc; do
        to=$(dirname "$inc")
        [[ $to == "$folder" || $to == "." ]] && continue
        echo "$folder $to" >>"$edges"
        if [[ " ${allowed[$folder]} " != *" $to "* ]]; then
            fail "$f:$line includes $inc: $folder may include only ${allowed[$folder]:-nothing} (scripts/check-layers.sh)"
        fi
    done < <(grep -n '^#include "' "$f" | sed 's/^\([0-9]*\):#include "\([^"]*\)".*/\1:\2/')
done
if ! sort -u "$edges" | tsort >/dev/null 2>"$edges.err"; then
    fail "the folders include each other in a circle: $(cat "$edges.err")"
fi
rm -f "$edges.err"

# String literals on code lines (not comments), for the text checks below.
literals() { # literals FILE...
    grep -nE '"[^"]*"' "$@" | grep -vE '^[^:]*:[0-9]+:\s*(/?\*|//)'
}
mapfile -t outside_sqlite < <(printf '%s\n' "${files[@]}" | grep -v '^stores/sqlite/')
mapfile -t outside_neo4j < <(printf '%s\n' "${files[@]}" | grep -v '^stores/neo4j/')
sql_start='"\s*(SELECT\b.*\bFROM\b|INSERT (OR \w+ )?INTO\b|UPDATE \w+ SET\b|DELETE FROM\b|CREATE (UNIQUE )?(TABLE|INDEX)\b|ALTER TABLE\b|DROP (TABLE|INDEX)\b|BEGIN( IMMEDIATE| DEFERRED| EXCLUSIVE)?"|COMMIT"|ROLLBACK( TO\b|")|SAVEPOINT\b|RELEASE \w+"|PRAGMA\b)'
if grep -nE '\bsqlite3_[a-z0-9_]+\s*\(' "${outside_sqlite[@]}"; then
    fail "SQLite is called outside stores/sqlite/ (above)"
fi
if literals "${outside_sqlite[@]}" | grep -E "$sql_start"; then
    fail "SQL text outside stores/sqlite/ (above)"
fi
cypher='\b(MATCH|MERGE|UNWIND|OPTIONAL MATCH|DETACH DELETE|CREATE CONSTRAINT)\b|CREATE \(|CALL db\.|RETURN count'
if literals "${outside_neo4j[@]}" | grep -E "$cypher"; then
    fail "Cypher text outside stores/neo4j/ (above)"
fi

[ $status -eq 0 ] && echo "check-layers: ok (${#files[@]} files, ${#allowed[@]} layers)"
exit $status
