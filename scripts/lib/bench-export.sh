# shellcheck shell=bash disable=SC2034 # FAILED is read by scripts/bench
# The export part of scripts/bench (BENCH_PARTS=export), sourced by it: uses its helpers
# (log, die, api, auth_post, worker_env_file, wenv_get, raw_begin, fact, raw_end) and
# globals (BASE, WORK, RAW, TH_VAR_DIR, TH_BIN_DIR, PG_BIN_DIR, ROUNDS, FAILED). It
# launches and collects only: the figures, verdicts and the section are
# tests/bench/render-export.mjs's.
#
# GET /api/auth/me/export (fcgi-apps/auth/export.c) streams one JSON document of
# everything an account wrote, read in keyset pages that are written out and freed one by
# one, so the auth worker's memory must not grow with the account. Measured here on two
# accounts seeded with SQL: "large" with BENCH_EXPORT_ITEMS posts, comments and messages
# (a third each), "small" with a tenth of them (the reference: the same code, a tenth of
# the data). Each export goes through nginx with curl (bytes, time to the first byte,
# total time; the items counted in the document); around it the VmRSS of every auth
# worker before, their peak reset (echo 5 > /proc/PID/clear_refs) and VmHWM read after.
# Rounds alternate small → large; medians.
#
# Knobs (environment):
#   BENCH_EXPORT_ITEMS   items of the large account, a third each posts, comments and
#                        messages (default 180000; the small account has a tenth)
#   BENCH_EXPORT_BODY    mean body length in bytes; bodies vary ±50 around it (default 250)

EXPORT_ITEMS=${BENCH_EXPORT_ITEMS:-180000}
EXPORT_BODY=${BENCH_EXPORT_BODY:-250}

export_prereqs() {
  if ! [[ $EXPORT_ITEMS =~ ^[1-9][0-9]{0,6}$ ]] || ((EXPORT_ITEMS < 30 || EXPORT_ITEMS > 3000000)); then
    die "BENCH_EXPORT_ITEMS must be 30..3000000 (got '$EXPORT_ITEMS')"
  fi
  if ! [[ $EXPORT_BODY =~ ^[0-9]{2,4}$ ]] || ((EXPORT_BODY < 60 || EXPORT_BODY > 3900)); then
    die "BENCH_EXPORT_BODY must be 60..3900 (got '$EXPORT_BODY')"
  fi
  [ -r /proc/self/status ] || die "export: /proc is not readable"
}

# export_workers: the live auth worker pids (the children of the pool's multiwatch, as
# scripts/fcgi-pool lists them), one a line
export_workers() {
  local mw
  mw=$(cat "$TH_VAR_DIR/run/auth.pid" 2>/dev/null) || return 1
  ps -o pid= --ppid "$mw" 2>/dev/null | tr -d ' '
}

# export_status PID FIELD: a kB field of /proc/PID/status (VmRSS, VmHWM), 0 if gone
export_status() {
  awk -v f="$2:" '$1 == f { print $2; found = 1 } END { if (!found) print 0 }' "/proc/$1/status" 2>/dev/null ||
    echo 0
}

# export_reqs: "pid requests" of every live auth worker (th-poolstat: the requests each
# has served, counted when a request ends)
export_reqs() {
  "$TH_BIN_DIR/th-poolstat" "$TH_VAR_DIR/run/auth.metrics" 2>/dev/null | cut -f1,3 | tr '\t' ' '
}

# export_seed NAME ITEMS: registers NAME, creates its community through the API, then
# inserts ITEMS posts, comments and messages (a third each) written by it; prints
# "token items"
export_seed() {
  local name=$1 items=$2 reg token uid cid chid per
  reg=$(auth_post /api/auth/register \
    "{\"email\":\"$name@bench.invalid\",\"username\":\"$name\",\"password\":\"bench-password-1\"}" 201)
  token=$(jq -r .access_token <<<"$reg")
  uid=$(jq -r .user.id <<<"$reg")
  [[ $uid =~ ^[0-9]+$ && -n $token && $token != null ]] || die "export: registering $name gave no user"
  cid=$(api POST /api/communities "$token" \
    "{\"slug\":\"${name//_/-}\",\"name\":\"Export bench $name\",\"visibility\":\"public\"}" 201 | jq -r .id)
  chid=$(api GET "/api/communities/$cid/channels" "$token" '' 200 | jq -r '.items[0].id')
  [[ $cid =~ ^[0-9]+$ && $chid =~ ^[0-9]+$ ]] || die "export: no community or channel for $name"
  per=$((items / 3))
  # bodies of BODY-50 .. BODY+49 characters of plain words, no '@' (no mention to look
  # for, as most chat); the item's number first so no two are the same
  "$PG_BIN_DIR/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$EXPORT_CONNINFO" -v uid="$uid" -v cid="$cid" \
    -v chid="$chid" -v per="$per" -v body="$EXPORT_BODY" >/dev/null <<'SQL' || die "export: seeding $name failed"
BEGIN;
CREATE TEMP TABLE bench_words ON COMMIT DROP AS
  SELECT repeat('the quick brown fox jumps over the lazy dog and keeps on running ', 80) AS w;
INSERT INTO posts (community_id, author_id, title, body)
  SELECT :cid, :uid, 'Post ' || g, left(g || ' ' || w, :body - 50 + (g % 100)::int)
  FROM generate_series(1, :per) g, bench_words;
INSERT INTO comments (post_id, author_id, body)
  SELECT p.id, :uid, left(p.n || ' ' || w, :body - 50 + ((p.n * 7) % 100)::int)
  FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM posts WHERE author_id = :uid) p, bench_words;
INSERT INTO messages (id, channel_id, seq, sender_id, body)
  SELECT gen_random_uuid(), :chid, g, :uid, left(g || ' ' || w, :body - 50 + ((g * 13) % 100)::int)
  FROM generate_series(1, :per) g, bench_words;
UPDATE channels SET last_seq = :per WHERE id = :chid;
COMMIT;
VACUUM (ANALYZE) posts, comments, messages;
SQL
  printf '%s %s\n' "$token" "$((3 * per))"
}

# export_once LABEL ROUND TOKEN ITEMS: one export through nginx, every auth worker's
# VmRSS before and VmHWM after (peak reset first); lines in $RAW/tool-LABEL.ROUND.txt
export_once() {
  local label=$1 round=$2 token=$3 items=$4 f=$RAW/tool-$1.$2.txt out=$WORK/export.json
  local pid code bytes ttfb total found tail2 ok=1 p q
  local -a pids
  local -A before reqs0 reqs1
  mapfile -t pids < <(export_workers)
  ((${#pids[@]} > 0)) || die "export: no live auth worker"
  while read -r p q; do reqs0[$p]=$q; done < <(export_reqs)
  for pid in "${pids[@]}"; do
    before[$pid]=$(export_status "$pid" VmRSS)
    # 5: reset the peak resident set size to the present one (proc(5), clear_refs)
    echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || die "export: cannot reset the peak of worker $pid"
  done
  read -r code bytes ttfb total < <(curl -s -o "$out" \
    -w '%{http_code} %{size_download} %{time_starttransfer} %{time_total}\n' \
    -H "Authorization: Bearer $token" "$BASE/api/auth/me/export" 2>/dev/null || echo "000 0 0 0")
  # the worker that served it is the one whose request count moved (counted once the
  # response has ended, which curl may see first: a moment's wait, then its peak too)
  sleep 0.3
  while read -r p q; do reqs1[$p]=$q; done < <(export_reqs)
  : >"$f"
  for pid in "${pids[@]}"; do
    echo "worker pid=$pid rss_kb=${before[$pid]} hwm_kb=$(export_status "$pid" VmHWM)" \
      "after_kb=$(export_status "$pid" VmRSS) reqs=$((${reqs1[$pid]:-0} - ${reqs0[$pid]:-0}))" >>"$f"
  done
  # the document whole: its items all there (json_build_object writes "body" : ), and
  # its end (a document cut short ends elsewhere, export.c)
  found=$(grep -o '"body" : ' "$out" 2>/dev/null | wc -l)
  tail2=$(tail -c 2 "$out" 2>/dev/null | od -An -c | tr -d ' ')
  [[ $code == 200 && $found == "$items" && $tail2 == '}\n' ]] || ok=0
  echo "export code=$code bytes=$bytes ttfb_s=$ttfb s=$total items=$found whole=$ok" >>"$f"
  rm -f "$out"
  log "  $label round $round: $code, $bytes bytes, $total s, $found of $items items; $(grep '^worker' "$f" | awk '{ split($3, a, "="); split($4, b, "="); split($6, r, "="); printf "%s ", (b[2] - a[2]) " kB/" r[2] }')peak growth/requests per worker"
}

bench_export() {
  local small large n r i v
  local -a small_tok large_tok warm
  export_prereqs
  raw_begin export
  for v in EXPORT_ITEMS EXPORT_BODY; do fact "knob.${v,,}" "${!v}"; done
  worker_env_file
  EXPORT_CONNINFO=$(wenv_get TH_DB_CONNINFO '')
  [ -n "$EXPORT_CONNINFO" ] || die "export: no TH_DB_CONNINFO in the auth worker's environment"
  log "export: seeding $EXPORT_ITEMS items (large) and $((EXPORT_ITEMS / 10)) (small), bodies ~$EXPORT_BODY bytes"
  read -r -a large_tok <<<"$(export_seed bench_export_large "$EXPORT_ITEMS")"
  read -r -a small_tok <<<"$(export_seed bench_export_small $((EXPORT_ITEMS / 10)))"
  # export_seed runs in a subshell: its die only ends that
  [[ ${large_tok[1]:-} =~ ^[0-9]+$ && ${small_tok[1]:-} =~ ^[0-9]+$ ]] || die "export: seeding failed"
  fact items_large "${large_tok[1]}"
  fact items_small "${small_tok[1]}"
  n=$(export_workers | wc -l)
  fact auth_workers "$n"
  fact setting.TH_RL_EXPORT_MAX "$TH_RL_EXPORT_MAX"
  fact setting.export_page "$(sed -n 's/^#define EXPORT_PAGE \([0-9]*\).*/\1/p' "$ROOT/fcgi-apps/auth/export.c")"
  # warm-up: as many small exports at once as there are workers, twice, so that every
  # worker has exported before (its first export pays one-time costs: the snapshot
  # transaction's statements, the media signer, malloc's arenas)
  log "export: warm-up, $n small exports at once, twice"
  for r in 1 2; do
    warm=()
    for i in $(seq 1 "$n"); do
      curl -s -o /dev/null -H "Authorization: Bearer ${small_tok[0]}" "$BASE/api/auth/me/export" &
      warm+=("$!")
    done
    wait "${warm[@]}"
  done
  fact loadavg_measuring "$(cut -d' ' -f1 /proc/loadavg)"
  for r in $(seq 1 "$ROUNDS"); do
    log "export round $r/$ROUNDS"
    export_once small "$r" "${small_tok[0]}" "${small_tok[1]}"
    export_once large "$r" "${large_tok[0]}" "${large_tok[1]}"
  done
  fact loadavg_end "$(cut -d' ' -f1 /proc/loadavg)"
  raw_end export
}
