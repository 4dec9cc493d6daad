# shellcheck shell=bash disable=SC2034 # FAILED is read by scripts/bench; MARGS_* through a nameref
# The media part of scripts/bench (BENCH_PARTS=media), sourced by it: uses its helpers
# (log, die, api, auth_post, parse_wrk, median, ratio, at_least, at_most, write_section)
# and globals (BASE, WORK, TH_VAR_DIR, TH_BIN_DIR, ROUNDS, DURATION, THREADS, WARMUP,
# MACHINE, BINS, MEDIA_BEGIN_MARK, MEDIA_END_MARK, FAILED).
#
#   uploads     a 10 MiB file POSTed to /api/media through nginx, one at a time, against
#               /bench/upload (nginx writes the same body to disk, a bare responder answers)
#               in alternating pairs; median and worst of N, MiB/s and the ratio
#   thumbnails  th-thumb_bench (tests/load/thumb_bench.c): image_process() on a 12 MP JPEG
#               in process, 1 process (= 1 core) and one per core
#   ranges      GET /media/:id/original with Range: 1 MiB at random offsets of a 64 MiB
#               medium (signed URL: nginx keeps the app's grant 1 s and sends the file;
#               Bearer: the app decides each request, X-Accel-Redirect),
#               against nginx serving a copy of the same bytes (/bench/files/), wrk rounds;
#               and open-ended ranges (bytes=S- to the end, as a browser <video> asks),
#               signed, against the same nginx alone, compared by bytes read per second
#
# Knobs (environment):
#   BENCH_MEDIA_UPLOADS      measured uploads per target (default 20; 2 more warm up)
#   BENCH_MEDIA_UPLOAD_MIB   upload size in MiB (default 10)
#   BENCH_MEDIA_THUMB_SECONDS  seconds per th-thumb_bench run (default 10)
#   BENCH_MEDIA_RANGE_KIB    bytes per ranged request in KiB (default 1024)
#   BENCH_MEDIA_FILE_MIB     size of the medium the ranges read, MiB (default 64)
#   BENCH_MEDIA_CONNECTIONS  wrk -c of the ranged runs (default 16)

MEDIA_UPLOADS=${BENCH_MEDIA_UPLOADS:-20}
MEDIA_UPLOAD_MIB=${BENCH_MEDIA_UPLOAD_MIB:-10}
MEDIA_THUMB_SECONDS=${BENCH_MEDIA_THUMB_SECONDS:-10}
MEDIA_RANGE_KIB=${BENCH_MEDIA_RANGE_KIB:-1024}
MEDIA_FILE_MIB=${BENCH_MEDIA_FILE_MIB:-64}
MEDIA_CONNS=${BENCH_MEDIA_CONNECTIONS:-16}

media_prereqs() {
  [ -x "$TH_BIN_DIR/th-thumb_bench" ] || die "$TH_BIN_DIR/th-thumb_bench missing (run make)"
  command -v convert >/dev/null || die "convert (ImageMagick) not installed"
  command -v file >/dev/null || die "file not installed"
  local v
  for v in MEDIA_UPLOADS MEDIA_UPLOAD_MIB MEDIA_THUMB_SECONDS MEDIA_RANGE_KIB MEDIA_FILE_MIB MEDIA_CONNS; do
    [[ ${!v} =~ ^[1-9][0-9]{0,5}$ ]] || die "BENCH_$v must be a positive number (got '${!v}')"
  done
  ((MEDIA_UPLOAD_MIB <= 100 && MEDIA_FILE_MIB <= 100)) || die "uploads are limited to 100 MiB (TH_MEDIA_MAX_BYTES)"
  ((MEDIA_RANGE_KIB * 1024 <= MEDIA_FILE_MIB * 1048576)) || die "the range is larger than the file"
}

# media_bytes FILE MIB: an MP4 file type box, then random bytes (libmagic: video/mp4; the
# app stores video as it comes, so no decoding cost hides in the upload figures)
media_bytes() {
  { printf '\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41'
    head -c $(($2 * 1048576 - 32)) /dev/urandom; } >"$1" || die "cannot write $1"
  [ "$(file -b --mime-type "$1")" = video/mp4 ] || die "$1 is not detected as video/mp4: $(file -b "$1")"
}

# media_post URL FILE [TOKEN] -> "http_code seconds" (response body in $WORK/media-post.out)
# Expect: off, as browsers send: no 100-continue round trip in the figures.
media_post() {
  local -a h=(-H 'Content-Type: application/octet-stream' -H 'Expect:')
  [ -n "${3:-}" ] && h+=(-H "Authorization: Bearer $3")
  curl -s -o "$WORK/media-post.out" -w '%{http_code} %{time_total}\n' "${h[@]}" \
    --data-binary "@$2" "$1" 2>/dev/null || echo "000 0"
}

# media_wrk_rounds NAME...: like the other parts' rounds; per target MURL[name] and the
# extra wrk arguments in MARGS_<name>. Results in $WORK/media-<name>.parsed.
media_wrk_rounds() {
  local n r f
  log "media: warm-up ${WARMUP}s per target ($*)"
  for n in "$@"; do
    unset -n _margs; local -n _margs=MARGS_$n
    wrk -t"$THREADS" -c"$MEDIA_CONNS" -d"${WARMUP}s" "${_margs[@]}" "${MURL[$n]}" >/dev/null 2>&1
  done
  for r in $(seq 1 "$ROUNDS"); do
    for n in "$@"; do
      unset -n _margs; local -n _margs=MARGS_$n
      log "media round $r/$ROUNDS: $n"
      f=$WORK/media-$n.$r.txt
      wrk -t"$THREADS" -c"$MEDIA_CONNS" -d"${DURATION}s" --latency "${_margs[@]}" "${MURL[$n]}" >"$f" 2>&1 \
        || die "wrk failed: $(cat "$f")"
      parse_wrk "$f" >>"$WORK/media-$n.parsed"
      log "  $(grep -E 'Requests/sec|Transfer/sec|Non-2xx|Socket errors' "$f" | tr '\n' ' ')"
    done
  done
}

bench_media() {
  local user=bench_media pw='bench-password-1' token cid i code t nonce load_start
  local up_file ref_url app_url id up_errors=0 ref_errors=0
  local up_med up_worst ref_med ref_worst up_mibs ref_mibs r_up t_up t_worst
  local photo thumb_line thumb_rate thumb_all thumb_all_line jpeg_med jpeg_n=3
  local big m signed oid sha range_bytes chunks len label n auth_us static_us predicted r_auth r_open t_open
  local -A MURL RPS P50 P99 ERR MIBS BPS
  # wrk arguments per target (media_wrk_rounds reads MARGS_<name> through a nameref)
  # shellcheck disable=SC2034
  local -a MARGS_static MARGS_signed MARGS_bearer MARGS_auth MARGS_fcgi
  local r_signed r_bearer t_signed t_bearer TABLE SECTION up_cmd thumb_cmd range_cmd

  media_prereqs
  read -r load_start _ </proc/loadavg
  auth_post /api/auth/register \
    "{\"email\":\"$user@bench.invalid\",\"username\":\"$user\",\"password\":\"$pw\"}" 201 >/dev/null
  token=$(auth_post /api/auth/login "{\"login\":\"$user\",\"password\":\"$pw\"}" 200 | jq -r .access_token)
  [[ -n $token && $token != null ]] || die "media: login gave no access token"
  cid=$(api POST /api/communities "$token" '{"slug":"bench-media","name":"Bench media","visibility":"private"}' 201 | jq -r .id)
  [[ $cid =~ ^[0-9]+$ ]] || die "media: no community id"

  # ---- 1. uploads: /bench/upload and /api/media in alternating pairs -------------------
  up_file=$WORK/upload.mp4
  ref_url=$BASE/bench/upload
  app_url="$BASE/api/media?filename=bench.mp4"
  media_bytes "$up_file" "$MEDIA_UPLOAD_MIB"
  : >"$WORK/media-up.times"
  : >"$WORK/media-ref.times"
  log "media: $((MEDIA_UPLOADS + 2)) pairs of ${MEDIA_UPLOAD_MIB} MiB uploads (2 warm up)"
  for i in $(seq -1 "$MEDIA_UPLOADS"); do
    # new bytes each time: equal files would be stored once (deduplication) and cost less
    nonce=$(printf '%016d' "$((i + 1000))")
    printf '%s' "$nonce" | dd of="$up_file" bs=1 seek=64 conv=notrunc status=none || die "dd failed"
    read -r code t < <(media_post "$ref_url" "$up_file")
    if [ "$code" = 200 ]; then ((i > 0)) && echo "$t" >>"$WORK/media-ref.times"; else ref_errors=$((ref_errors + 1)); log "  /bench/upload answered $code"; fi
    read -r code t < <(media_post "$app_url" "$up_file" "$token")
    if [ "$code" = 201 ]; then
      ((i > 0)) && echo "$t" >>"$WORK/media-up.times"
      id=$(jq -r .id "$WORK/media-post.out")
      # not timed: keeps the disk and the quota flat over the run
      api DELETE "/api/media/$id" "$token" '' 204 >/dev/null
    else
      up_errors=$((up_errors + 1))
      log "  /api/media answered $code: $(head -c 300 "$WORK/media-post.out")"
    fi
  done
  if [ ! -s "$WORK/media-up.times" ] || [ ! -s "$WORK/media-ref.times" ]; then die "media: no successful upload"; fi
  up_med=$(median <"$WORK/media-up.times")
  up_worst=$(sort -g "$WORK/media-up.times" | tail -1)
  ref_med=$(median <"$WORK/media-ref.times")
  ref_worst=$(sort -g "$WORK/media-ref.times" | tail -1)
  up_mibs=$(awk -v m="$MEDIA_UPLOAD_MIB" -v t="$up_med" 'BEGIN { printf "%.0f", m / t }')
  ref_mibs=$(awk -v m="$MEDIA_UPLOAD_MIB" -v t="$ref_med" 'BEGIN { printf "%.0f", m / t }')
  r_up=$(ratio "$ref_med" "$up_med")
  t_up=$(at_most "$up_med" 0.2)
  t_worst=$(at_most "$up_worst" 5)
  [ "$up_errors$ref_errors" = 00 ] || FAILED=1
  up_cmd="curl -s -H 'Content-Type: application/octet-stream' -H 'Expect:' [-H 'Authorization: Bearer \$TOKEN'] --data-binary @upload.mp4 -w '%{http_code} %{time_total}' URL"

  # ---- 2. thumbnails: image_process() in process --------------------------------------
  photo=$WORK/photo-12mp.jpg
  log "media: a 4000x3000 JPEG (convert plasma:fractal, quality 90)"
  convert -size 4000x3000 -seed 7 plasma:fractal -blur 0x1 -quality 90 "$photo" 2>"$WORK/convert.err" \
    || die "convert failed: $(cat "$WORK/convert.err")"
  : >"$WORK/media-thumb.rates"
  for i in $(seq 1 "$ROUNDS"); do
    log "media: th-thumb_bench, 1 process, round $i/$ROUNDS"
    thumb_line=$("$TH_BIN_DIR/th-thumb_bench" "$photo" "$MEDIA_THUMB_SECONDS" 1 2>"$WORK/thumb.err") \
      || die "th-thumb_bench failed: $(cat "$WORK/thumb.err")"
    log "  $thumb_line"
    sed -n 's/.* rate=\([0-9.]*\) .*/\1/p' <<<"$thumb_line" >>"$WORK/media-thumb.rates"
  done
  thumb_rate=$(median <"$WORK/media-thumb.rates")
  log "media: th-thumb_bench, $(nproc) processes"
  thumb_all_line=$("$TH_BIN_DIR/th-thumb_bench" "$photo" "$MEDIA_THUMB_SECONDS" "$(nproc)" 2>>"$WORK/thumb.err") \
    || die "th-thumb_bench failed: $(cat "$WORK/thumb.err")"
  log "  $thumb_all_line"
  thumb_all=$(sed -n 's/.* rate=\([0-9.]*\) .*/\1/p' <<<"$thumb_all_line")
  thumb_cmd="th-thumb_bench photo-12mp.jpg $MEDIA_THUMB_SECONDS 1 ($ROUNDS runs, median), then th-thumb_bench photo-12mp.jpg $MEDIA_THUMB_SECONDS $(nproc)"
  # the same image uploaded end to end, for scale (decode + three encodes + the rest)
  : >"$WORK/media-jpeg.times"
  for i in $(seq 1 "$jpeg_n"); do
    # unique bytes (no deduplication): a JPEG comment segment (FFFE, length 10) after SOI
    { head -c 2 "$photo"; printf '\xff\xfe\x00\x0abench%03d' "$i"; tail -c +3 "$photo"; } >"$WORK/photo-$i.jpg"
    read -r code t < <(media_post "$BASE/api/media?filename=photo.jpg" "$WORK/photo-$i.jpg" "$token")
    if [ "$code" = 201 ]; then
      echo "$t" >>"$WORK/media-jpeg.times"
      api DELETE "/api/media/$(jq -r .id "$WORK/media-post.out")" "$token" '' 204 >/dev/null
    else
      log "  12 MP JPEG upload answered $code: $(head -c 300 "$WORK/media-post.out")"
      FAILED=1
    fi
  done
  jpeg_med=$(median <"$WORK/media-jpeg.times" 2>/dev/null)

  # ---- 3. ranged downloads: the app's grant or X-Accel-Redirect vs nginx alone ----------
  big=$WORK/big.mp4
  media_bytes "$big" "$MEDIA_FILE_MIB"
  read -r code t < <(media_post "$BASE/api/media?community_id=$cid&filename=big.mp4" "$big" "$token")
  [ "$code" = 201 ] || die "media: upload of the ${MEDIA_FILE_MIB} MiB file answered $code: $(head -c 300 "$WORK/media-post.out")"
  m=$WORK/media-post.out
  oid=$(jq -r .id "$m")
  sha=$(jq -r .sha256 "$m")
  signed=$(jq -r .variants.original "$m")
  case $signed in http://* | https://*) signed=/${signed#*://*/} ;; esac
  [[ $signed == /media/*\?*sig=* ]] || die "media: the private medium's URL is not signed: $signed"
  mkdir -p "$TH_VAR_DIR/bench-files"
  chmod 0755 "$TH_VAR_DIR/bench-files"
  cp "$big" "$TH_VAR_DIR/bench-files/big.mp4"
  chmod 0644 "$TH_VAR_DIR/bench-files/big.mp4"
  cmp -s "$big" "$TH_VAR_DIR/bench-files/big.mp4" || die "media: the static copy differs"
  range_bytes=$((MEDIA_RANGE_KIB * 1024))
  chunks=$((MEDIA_FILE_MIB * 1048576 / range_bytes))
  MURL=([static]=$BASE/bench/files/big.mp4 [signed]=$BASE$signed [bearer]=$BASE/media/$oid/original
        [auth]=$BASE$signed [fcgi]=$BASE/bench/fcgi)
  # each target must answer a 1 MiB range with 206 and exactly those bytes
  for n in static signed bearer; do
    local -a h=(-H "Range: bytes=$range_bytes-$((2 * range_bytes - 1))")
    [ "$n" = bearer ] && h+=(-H "Authorization: Bearer $token")
    code=$(curl -s -o "$WORK/range-$n.bin" -w '%{http_code}' "${h[@]}" "${MURL[$n]}" 2>/dev/null || echo 000)
    [ "$code" = 206 ] || die "media: ${MURL[$n]} answered $code to a Range request, not 206"
    len=$(stat -c %s "$WORK/range-$n.bin")
    [ "$len" = "$range_bytes" ] || die "media: $n sent $len bytes for a $range_bytes-byte range"
    cmp -s "$WORK/range-$n.bin" <(tail -c +$((range_bytes + 1)) "$big" | head -c "$range_bytes") \
      || die "media: $n sent other bytes than the file's"
  done
  # One wrk script for both shapes: closed ranges of ${MEDIA_RANGE_KIB} KiB (range.lua), and
  # open-ended ranges (bytes=S-) read to the end of the file (open.lua) — what a browser's
  # <video> sends when it starts or seeks. Their sizes vary, so open.lua reports wrk's own
  # count of bytes read per second (done()), not req/s. The command line's headers go along
  # (Authorization for the bearer target).
  local f
  for f in range open; do
    cat >"$WORK/$f.lua" <<EOF
-- $f: a random aligned offset of the ${MEDIA_FILE_MIB} MiB file
local chunk, chunks, open = $range_bytes, $chunks, $([ "$f" = open ] && echo true || echo false)
function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 1000003)
end
function request()
  local h = {}
  for k, v in pairs(wrk.headers) do h[k] = v end
  local s = math.random(0, chunks - 1) * chunk
  h["Range"] = "bytes=" .. s .. "-" .. (open and "" or (s + chunk - 1))
  return wrk.format(nil, nil, h)
end
function done(summary, latency, requests)
  if open then
    io.write(string.format("bytes_per_sec %.0f\n", summary.bytes / (summary.duration / 1e6)))
  end
end
EOF
  done
  len=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' -H "Range: bytes=$range_bytes-" "${MURL[signed]}" 2>/dev/null || echo 000)
  [ "$len" = "206 $((MEDIA_FILE_MIB * 1048576 - range_bytes))" ] \
    || die "media: the signed URL answered '$len' to an open-ended range"
  # a 64 MiB read takes longer than wrk's 2 s default on a busy machine: a
  # timeout there is the load generator giving up, not an error of ours
  # shellcheck disable=SC2034
  MARGS_open_static=(--timeout 10s -s "$WORK/open.lua")
  # shellcheck disable=SC2034
  MARGS_open_signed=(--timeout 10s -s "$WORK/open.lua")
  MURL[open_static]=${MURL[static]}
  MURL[open_signed]=${MURL[signed]}
  # shellcheck disable=SC2034 # read through the nameref in media_wrk_rounds
  MARGS_static=(-s "$WORK/range.lua")
  # shellcheck disable=SC2034
  MARGS_signed=(-s "$WORK/range.lua")
  # shellcheck disable=SC2034
  MARGS_bearer=(-s "$WORK/range.lua" -H "Authorization: Bearer $token")
  # the authorization alone: the same signed request answered 304 by the app (its ETag
  # matches), so nginx sends no bytes: what each range pays on top of nginx's own work
  # shellcheck disable=SC2034
  MARGS_auth=(-s "$WORK/range.lua" -H "If-None-Match: \"$sha\"")
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: \"$sha\"" "${MURL[auth]}" 2>/dev/null || echo 000)
  [ "$code" = 304 ] || die "media: the signed URL with a matching If-None-Match answered $code, not 304"
  # the FastCGI floor in the same rounds: the bare responder, same request shape
  # shellcheck disable=SC2034
  MARGS_fcgi=(-s "$WORK/range.lua")
  media_wrk_rounds static signed bearer auth fcgi open_static open_signed
  for n in open_static open_signed; do
    BPS[$n]=$(for f in "$WORK"/media-$n.*.txt; do awk '/^bytes_per_sec / { print $2 }' "$f"; done | median)
    MIBS[$n]=$(awk -v b="${BPS[$n]}" 'BEGIN { printf "%.0f", b / 1048576 }')
    P50[$n]=$(awk '{print $2}' "$WORK/media-$n.parsed" | median)
    P99[$n]=$(awk '{print $3}' "$WORK/media-$n.parsed" | median)
    ERR[$n]=$(awk '{s += $4} END {print s + 0}' "$WORK/media-$n.parsed")
    RPS[$n]=$(awk '{print $1}' "$WORK/media-$n.parsed" | median)
  done
  r_open=$(ratio "${BPS[open_signed]}" "${BPS[open_static]}")
  t_open=$(at_least "$r_open" 0.9)
  for n in static signed bearer auth fcgi; do
    RPS[$n]=$(awk '{print $1}' "$WORK/media-$n.parsed" | median)
    P50[$n]=$(awk '{print $2}' "$WORK/media-$n.parsed" | median)
    P99[$n]=$(awk '{print $3}' "$WORK/media-$n.parsed" | median)
    ERR[$n]=$(awk '{s += $4} END {print s + 0}' "$WORK/media-$n.parsed")
    MIBS[$n]=$(awk -v r="${RPS[$n]}" -v k="$MEDIA_RANGE_KIB" 'BEGIN { printf "%.0f", r * k / 1024 }')
    [ "$n" = auth ] && MIBS[$n]='— (304)'
    [ "$n" = fcgi ] && MIBS[$n]='— (11 bytes)'
  done
  # CPU-time view on this machine: µs per request of nginx alone, and of an authorization;
  # if the two only added up, signed / static would be static_us / (static_us + auth_us)
  # (parenthesized: a bare > in awk's printf arguments is an output redirection)
  static_us=$(awk -v r="${RPS[static]}" 'BEGIN { printf "%.0f", (r > 0 ? 1e6 / r : 0) }')
  auth_us=$(awk -v r="${RPS[auth]}" 'BEGIN { printf "%.0f", (r > 0 ? 1e6 / r : 0) }')
  predicted=$(awk -v s="$static_us" -v a="$auth_us" 'BEGIN { printf "%.2f", (s + a > 0 ? s / (s + a) : 0) }')
  r_auth=$(ratio "${RPS[auth]}" "${RPS[fcgi]}")
  r_signed=$(ratio "${RPS[signed]}" "${RPS[static]}")
  r_bearer=$(ratio "${RPS[bearer]}" "${RPS[static]}")
  t_signed=$(at_least "$r_signed" 0.9)
  t_bearer=—
  [ "${ERR[static]}${ERR[signed]}${ERR[bearer]}${ERR[auth]}${ERR[fcgi]}${ERR[open_static]}${ERR[open_signed]}" = 0000000 ] || FAILED=1
  range_cmd="wrk -t$THREADS -c$MEDIA_CONNS -d${DURATION}s --latency -s range.lua [-H 'Authorization: Bearer \$TOKEN'] URL"

  TABLE=$(
    echo '| measure | value | target | result |'
    echo '|---|---:|---:|---|'
    printf '| %s MiB upload through nginx to POST /api/media: median of %s | %.3f s | ≤ 0.2 s | %s |\n' "$MEDIA_UPLOAD_MIB" "$(wc -l <"$WORK/media-up.times")" "$up_med" "$t_up"
    printf '| the same: worst of %s | %.3f s | < 5 s (the original design) | %s |\n' "$(wc -l <"$WORK/media-up.times")" "$up_worst" "$t_worst"
    printf '| upload throughput, median | %s MiB/s | report | — |\n' "$up_mibs"
    printf '| nginx writing the same body to disk, no app (/bench/upload): median · worst | %.3f s · %.3f s (%s MiB/s) | | |\n' "$ref_med" "$ref_worst" "$ref_mibs"
    printf '| upload MiB/s ÷ nginx-alone MiB/s | %s | report | — |\n' "$r_up"
    printf '| 12 MP JPEG (4000×3000) processed in process, 1 process (= 1 core): original re-encoded + thumb + medium | %.2f images/s | report | — |\n' "$thumb_rate"
    printf '| the same, %s processes (all cores) | %.2f images/s | report | — |\n' "$(nproc)" "$thumb_all"
    if [ -n "$jpeg_med" ]; then
      printf '| that JPEG uploaded through nginx to POST /api/media, median of %s | %.3f s | report | — |\n' "$(wc -l <"$WORK/media-jpeg.times")" "$jpeg_med"
    fi
    printf '| ranged GET, %s KiB ranges, signed URL (the app grants, nginx keeps the grant 1 s and sends) | %s MiB/s | | |\n' "$MEDIA_RANGE_KIB" "${MIBS[signed]}"
    printf '| the same with a Bearer token instead (the app decides every request: X-Accel-Redirect) | %s MiB/s | | |\n' "${MIBS[bearer]}"
    printf '| nginx alone, the same bytes (/bench/files/) | %s MiB/s | | |\n' "${MIBS[static]}"
    printf '| signed ÷ nginx alone | %s | ≥ 0.9 | %s |\n' "$r_signed" "$t_signed"
    printf '| Bearer ÷ nginx alone (a download with a token is never reused: see below) | %s | report | %s |\n' "$r_bearer" "$t_bearer"
    printf '| open-ended ranges (bytes=S- to the end, as a browser <video> asks), signed URL | %s MiB/s | | |\n' "${MIBS[open_signed]}"
    printf '| nginx alone, the same requests | %s MiB/s | | |\n' "${MIBS[open_static]}"
    printf '| open-ended: signed ÷ nginx alone | %s | ≥ 0.9 | %s |\n' "$r_open" "$t_open"
    printf '| the authorization alone (signed URL answered 304, no bytes) | %.0f req/s | report | — |\n' "${RPS[auth]}"
    printf '| that ÷ /bench/fcgi in the same rounds (%.0f req/s, the FastCGI floor) | %s | report | — |\n' "${RPS[fcgi]}" "$r_auth"
    printf '| per request on %s cores: nginx alone %s µs, authorization %s µs → expected Bearer ÷ nginx alone if they add up | %s | report | — |\n' "$(nproc)" "$static_us" "$auth_us" "$predicted"
    echo
    echo "| ranged target ($MEDIA_RANGE_KIB KiB, $MEDIA_CONNS connections) | req/s (median) | MiB/s | p50 ms | p99 ms | errors (all rounds) |"
    echo '|---|---:|---:|---:|---:|---:|'
    for n in static signed bearer auth fcgi open_static open_signed; do
      case $n in
        static) label='/bench/files/big.mp4 (nginx alone)' ;;
        signed) label='/media/:id/original?exp=&sig= (app grant kept 1 s, nginx sends)' ;;
        bearer) label='/media/:id/original + Authorization: Bearer (app, X-Accel-Redirect)' ;;
        auth) label='signed URL + If-None-Match: its ETag (app answers 304, no bytes)' ;;
        fcgi) label='/bench/fcgi (bare libfcgi responder)' ;;
        open_static) label='open-ended ranges, /bench/files/big.mp4 (nginx alone)' ;;
        open_signed) label='open-ended ranges, signed URL (app grant kept 1 s, nginx sends)' ;;
      esac
      printf '| %s | %.0f | %s | %.2f | %.2f | %s |\n' "$label" "${RPS[$n]}" "${MIBS[$n]}" "${P50[$n]}" "${P99[$n]}" "${ERR[$n]}"
    done
  )

  SECTION=$(
    echo "$MEDIA_BEGIN_MARK"
    echo "### Media: 10 MiB uploads, thumbnails of a 12 MP JPEG, ranged downloads"
    echo
    echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') with \`scripts/bench\` (\`make bench\`; \`BENCH_PARTS=media\` for this part alone), here with BENCH_ROUNDS=$ROUNDS BENCH_DURATION=$DURATION BENCH_MEDIA_UPLOADS=$MEDIA_UPLOADS."
    echo
    echo "$TABLE"
    echo
    echo "- Uploads: \`$up_cmd\`, one request at a time over a new connection: ${MEDIA_UPLOADS} pairs after 2 warm-up pairs, each pair /bench/upload then POST /api/media with the same bytes, new bytes for every pair (an MP4 file-type box, then random bytes: detected as video/mp4 and stored as it is, so no image work is in these figures; a repeated file would be deduplicated). The time is curl's time_total: connect, send, the whole server side, the 201 with the media JSON. Each medium is deleted after its upload (not timed). Errors: /api/media $up_errors, /bench/upload $ref_errors."
    echo "- What /api/media does for those seconds: nginx writes the body to a temporary file (client_body_buffer_size 64k, fastcgi_request_buffering on), then streams it over the unix socket to a worker, which hashes it (SHA-256) while writing it to \$TH_VAR_DIR/media/tmp, detects its type (libmagic), checks the quota, renames it into place and inserts the row in one transaction. /bench/upload has the same client-body settings and answers from the bare libfcgi responder without passing the body on (fastcgi_pass_request_body off): nginx's disk write and the FastCGI hop only. So the ratio is what the app's work costs on top of what nginx must do anyway."
    echo "- Thumbnails: \`$thumb_cmd\` (tests/load/thumb_bench.c): image_process() of fcgi-apps/media/image.c, the upload's own code with the worker's ImageMagick settings (one thread, the same resource limits), on a 4000×3000 JPEG made by \`convert -size 4000x3000 -seed 7 plasma:fractal -blur 0x1 -quality 90\` ($(stat -c %s "$photo") bytes): ping, decode, orient and strip, re-encode the original, the thumb (fits 320×320) and the medium (fits 1280×1280), SHA-256 of the three, files removed after each call. One process is one core's worth (media workers are single-threaded processes); the all-cores run shows how it scales on this machine."
    echo "- Ranged downloads: \`$range_cmd\`, range.lua asking for ${MEDIA_RANGE_KIB} KiB (the order of what a segment-fetching video player asks for per request as it plays or seeks; a browser's own \`<video>\` sends open-ended ranges and reads on, which costs fewer authorizations per MiB than this) at a random aligned offset of a ${MEDIA_FILE_MIB} MiB medium (the same kind of bytes as the uploads) uploaded into a private community: the signed URL from its media JSON (what a \`<video src>\` uses: nginx asks the app for a grant — the app loads the row and checks the HMAC — keeps it 1 s (TH_MEDIA_GRANT_TTL) and sends the file itself, sendfile), and the unsigned URL with the owner's Bearer token (token check and visibility query on every request, never reused, so a removed member is refused at once: the app answers X-Accel-Redirect and nginx sends the bytes from the internal /_media/ location). The reference is nginx serving a copy of the same file from \$TH_VAR_DIR/bench-files/ with the same location settings. Every target was checked first to answer a range with 206 and exactly the file's bytes. The fourth target is the signed request with If-None-Match set to the medium's ETag: the app authorizes it exactly as the others and answers 304, so no bytes move; it measures what the authorization costs per request, next to /bench/fcgi (the bare responder: the FastCGI hop alone) in the same rounds. $ROUNDS rounds alternating static → signed → bearer → 304 → fcgi after ${WARMUP} s warm-up each; medians; MiB/s = req/s × range size."
    echo "- Machine: $MACHINE; curl, wrk and the stack share it. Load average (1 min) when this part started: $load_start."
    echo "- Settings: workers per pool 4, nginx worker_processes ${NGINX_WORKERS:-as configured}, local storage under the bench's temporary var dir, TH_LOG_LEVEL=$TH_LOG_LEVEL, binaries $BINS."
    echo "- Targets: 10 MiB upload median ≤ 0.2 s $t_up (worst < 5 s $t_worst); ranged downloads ≥ 0.9 of nginx alone: signed $t_signed, Bearer $t_bearer (1 MiB ranges); open-ended ranges $t_open."
    echo "$MEDIA_END_MARK"
  )

  echo
  echo "$TABLE"
  echo
  write_section "$MEDIA_BEGIN_MARK" "$MEDIA_END_MARK" "$SECTION"
}
