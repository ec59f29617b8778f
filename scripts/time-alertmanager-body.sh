#!/usr/bin/env bash
# Times one Alertmanager body of N alerts into a fresh Snowbound on SQLite or PostgreSQL.
# Usage: scripts/time-alertmanager-body.sh BIN sqlite|postgres [N]
set -euo pipefail
BIN=$1; BACKEND=$2; N=${3:-8000}
DIR=$(mktemp -d); PORT=$((20000 + RANDOM % 20000))
export SNOWBOUND_DATA_DIR=$DIR SNOWBOUND_LISTEN=127.0.0.1:$PORT SNOWBOUND_ADMIN_TOKEN=measure-token \
  SNOWBOUND_PUBLIC_URL=http://127.0.0.1:$PORT RUST_LOG=warn
if [ "$BACKEND" = postgres ]; then
  DB=sb_measure_$$; psql -qAt postgres://postgres@127.0.0.1:5432/postgres -c "CREATE DATABASE $DB" >/dev/null
  export SNOWBOUND_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
fi
"$BIN" serve >"$DIR/log" 2>&1 & PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; [ "$BACKEND" = postgres ] && psql -qAt postgres://postgres@127.0.0.1:5432/postgres -c "DROP DATABASE $DB" >/dev/null; rm -rf $DIR' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.1; done
H=(-H "Authorization: Bearer measure-token" -H "Content-Type: application/json")
TEAM=$(curl -sf "${H[@]}" -d '{"name":"ops"}' http://127.0.0.1:$PORT/api/v1/teams | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
URL=$(curl -sf "${H[@]}" -d "{\"team_id\":\"$TEAM\",\"type\":\"alertmanager\",\"name\":\"am\"}" http://127.0.0.1:$PORT/api/v1/sources | python3 -c 'import json,sys;print(json.load(sys.stdin)["ingest_url"])')
python3 -c "
import json
alerts=[{'status':'firing','labels':{'alertname':'A%d'%i},'fingerprint':'f%08d'%i} for i in range($N)]
print(json.dumps({'version':'4','status':'firing','alerts':alerts},separators=(',',':')))" > "$DIR/body.json"
START=$(date +%s.%N)
CODE=$(curl -s -o "$DIR/answer" -w '%{http_code}' -H "Content-Type: application/json" --data-binary @"$DIR/body.json" "$URL")
END=$(date +%s.%N)
echo "$BACKEND N=$N bytes=$(stat -c %s $DIR/body.json) status=$CODE seconds=$(python3 -c "print(round($END-$START,2))")"
