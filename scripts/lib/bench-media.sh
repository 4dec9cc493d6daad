# shellcheck shell=bash disable=SC2034 # FAILED is read by scripts/bench; MARGS_* through a nameref
# The media part of scripts/bench (BENCH_PARTS=media), sourced by it: uses its helpers
# (log, die, api, auth_post, raw_begin, fact, raw_end) and globals (BASE, WORK, RAW,
# TH_VAR_DIR, TH_BIN_DIR, ROUNDS, DURATION, THREADS, WARMUP, FAILED). It launches and
# collects only: the figures, verdicts and the section are tests/bench/render-media.mjs's.
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

# media_bytes FILE MIB: a PDF header, then random bytes (libmagic: application/pdf, which
# the app stores as it comes, so no decoding cost hides in the upload figures; a video is
# re-muxed by ffmpeg since dcef0a0, which refuses random bytes after an MP4 box)
media_bytes() {
  { printf '%%PDF-1.4\n%%\xe2\xe3\xcf\xd3\n'
    head -c $(($2 * 1048576 - 15)) /dev/urandom; } >"$1" || die "cannot write $1"
  [ "$(file -b --mime-type "$1")" = application/pdf ] || die "$1 is not detected as application/pdf: $(file -b "$1")"
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
# extra wrk arguments in MARGS_<name>. wrk's output in $RAW/wrk-<name>.<round>.txt.
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
      f=$RAW/wrk-$n.$r.txt
      wrk -t"$THREADS" -c"$MEDIA_CONNS" -d"${DURATION}s" --latency "${_margs[@]}" "${MURL[$n]}" >"$f" 2>&1 \
        || die "wrk failed: $(cat "$f")"
      log "  $(grep -E 'Requests/sec|Transfer/sec|Non-2xx|Socket errors' "$f" | tr '\n' ' ')"
    done
  done
}

bench_media() {
  local user=bench_media pw='bench-password-1' token cid i code t nonce
  local up_file ref_url app_url id up photo thumb_line jpeg_n=3
  local big m signed oid sha range_bytes chunks len n
  local -A MURL
  # wrk arguments per target (media_wrk_rounds reads MARGS_<name> through a nameref)
  # shellcheck disable=SC2034
  local -a MARGS_static MARGS_signed MARGS_bearer MARGS_auth MARGS_fcgi

  media_prereqs
  raw_begin media
  for n in MEDIA_UPLOADS MEDIA_UPLOAD_MIB MEDIA_THUMB_SECONDS MEDIA_RANGE_KIB MEDIA_FILE_MIB MEDIA_CONNS; do
    fact "knob.${n,,}" "${!n}"
  done
  fact cores "$(nproc)"
  auth_post /api/auth/register \
    "{\"email\":\"$user@bench.invalid\",\"username\":\"$user\",\"password\":\"$pw\"}" 201 >/dev/null
  token=$(auth_post /api/auth/login "{\"login\":\"$user\",\"password\":\"$pw\"}" 200 | jq -r .access_token)
  [[ -n $token && $token != null ]] || die "media: login gave no access token"
  cid=$(api POST /api/communities "$token" '{"slug":"bench-media","name":"Bench media","visibility":"private"}' 201 | jq -r .id)
  [[ $cid =~ ^[0-9]+$ ]] || die "media: no community id"

  # ---- 1. uploads: /bench/upload and /api/media in alternating pairs -------------------
  up_file=$WORK/upload.pdf
  ref_url=$BASE/bench/upload
  app_url="$BASE/api/media?filename=bench.pdf"
  media_bytes "$up_file" "$MEDIA_UPLOAD_MIB"
  # one line per upload: "up|ref code=C s=SECONDS warm=0|1" (curl's time_total)
  up=$RAW/tool-uploads.1.txt
  : >"$up"
  log "media: $((MEDIA_UPLOADS + 2)) pairs of ${MEDIA_UPLOAD_MIB} MiB uploads (2 warm up)"
  for i in $(seq -1 "$MEDIA_UPLOADS"); do
    # new bytes each time: equal files would be stored once (deduplication) and cost less
    nonce=$(printf '%016d' "$((i + 1000))")
    printf '%s' "$nonce" | dd of="$up_file" bs=1 seek=64 conv=notrunc status=none || die "dd failed"
    read -r code t < <(media_post "$ref_url" "$up_file")
    echo "ref code=$code s=$t warm=$((i > 0 ? 0 : 1))" >>"$up"
    [ "$code" = 200 ] || log "  /bench/upload answered $code"
    read -r code t < <(media_post "$app_url" "$up_file" "$token")
    echo "up code=$code s=$t warm=$((i > 0 ? 0 : 1))" >>"$up"
    if [ "$code" = 201 ]; then
      id=$(jq -r .id "$WORK/media-post.out")
      # not timed: keeps the disk and the quota flat over the run
      api DELETE "/api/media/$id" "$token" '' 204 >/dev/null
    else
      log "  /api/media answered $code: $(head -c 300 "$WORK/media-post.out")"
    fi
  done

  # ---- 2. thumbnails: image_process() in process --------------------------------------
  photo=$WORK/photo-12mp.jpg
  log "media: a 4000x3000 JPEG (convert plasma:fractal, quality 90)"
  convert -size 4000x3000 -seed 7 plasma:fractal -blur 0x1 -quality 90 "$photo" 2>"$WORK/convert.err" \
    || die "convert failed: $(cat "$WORK/convert.err")"
  fact photo_bytes "$(stat -c %s "$photo")"
  for i in $(seq 1 "$ROUNDS"); do
    log "media: th-thumb_bench, 1 process, round $i/$ROUNDS"
    thumb_line=$("$TH_BIN_DIR/th-thumb_bench" "$photo" "$MEDIA_THUMB_SECONDS" 1 2>"$WORK/thumb.err") \
      || die "th-thumb_bench failed: $(cat "$WORK/thumb.err")"
    log "  $thumb_line"
    printf '%s\n' "$thumb_line" >"$RAW/tool-thumb.$i.txt"
  done
  log "media: th-thumb_bench, $(nproc) processes"
  thumb_line=$("$TH_BIN_DIR/th-thumb_bench" "$photo" "$MEDIA_THUMB_SECONDS" "$(nproc)" 2>>"$WORK/thumb.err") \
    || die "th-thumb_bench failed: $(cat "$WORK/thumb.err")"
  log "  $thumb_line"
  printf '%s\n' "$thumb_line" >"$RAW/tool-thumball.1.txt"
  # the same image uploaded end to end, for scale (decode + three encodes + the rest)
  for i in $(seq 1 "$jpeg_n"); do
    # unique bytes (no deduplication): a JPEG comment segment (FFFE, length 10) after SOI
    { head -c 2 "$photo"; printf '\xff\xfe\x00\x0abench%03d' "$i"; tail -c +3 "$photo"; } >"$WORK/photo-$i.jpg"
    read -r code t < <(media_post "$BASE/api/media?filename=photo.jpg" "$WORK/photo-$i.jpg" "$token")
    echo "jpeg code=$code s=$t warm=0" >>"$up"
    if [ "$code" = 201 ]; then
      api DELETE "/api/media/$(jq -r .id "$WORK/media-post.out")" "$token" '' 204 >/dev/null
    else
      log "  12 MP JPEG upload answered $code: $(head -c 300 "$WORK/media-post.out")"
    fi
  done

  # ---- 3. ranged downloads: the app's grant or X-Accel-Redirect vs nginx alone ----------
  big=$WORK/big.pdf
  media_bytes "$big" "$MEDIA_FILE_MIB"
  read -r code t < <(media_post "$BASE/api/media?community_id=$cid&filename=big.pdf" "$big" "$token")
  [ "$code" = 201 ] || die "media: upload of the ${MEDIA_FILE_MIB} MiB file answered $code: $(head -c 300 "$WORK/media-post.out")"
  m=$WORK/media-post.out
  oid=$(jq -r .id "$m")
  sha=$(jq -r .sha256 "$m")
  signed=$(jq -r .variants.original "$m")
  case $signed in http://* | https://*) signed=/${signed#*://*/} ;; esac
  [[ $signed == /media/*\?*sig=* ]] || die "media: the private medium's URL is not signed: $signed"
  mkdir -p "$TH_VAR_DIR/bench-files"
  chmod 0755 "$TH_VAR_DIR/bench-files"
  cp "$big" "$TH_VAR_DIR/bench-files/big.pdf"
  chmod 0644 "$TH_VAR_DIR/bench-files/big.pdf"
  cmp -s "$big" "$TH_VAR_DIR/bench-files/big.pdf" || die "media: the static copy differs"
  range_bytes=$((MEDIA_RANGE_KIB * 1024))
  chunks=$((MEDIA_FILE_MIB * 1048576 / range_bytes))
  MURL=([static]=$BASE/bench/files/big.pdf [signed]=$BASE$signed [bearer]=$BASE/media/$oid/original
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
  raw_end media
}
