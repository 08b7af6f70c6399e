#!/usr/bin/env bash
# test_synth.sh — `actiond synth`: folder layout, split lists, clips ffprobe reads cleanly,
# byte-identical output for a seed, the multi-action sequence, and option errors.
. "$(dirname "$0")/lib.sh"

small=(--classes 2 --clips-per-class 2 --size 64x48 --seconds 1 --seed 7)
expect_status "small set exits 0" 0 "$ACTIOND" synth -o "$TMP/a" "${small[@]}"
expect_match "progress on stderr" 'synth: 4/4 clips' "$ERR"
expect_lines "nothing on stdout" 0 "$OUT"

expect_match "classInd.txt" '^1 bend$' "$(cat "$TMP/a/classInd.txt")"
expect_lines "classInd.txt has 2 classes" 2 "$(cat "$TMP/a/classInd.txt")"
expect_match "classInd.txt second class" '^2 jack$' "$(cat "$TMP/a/classInd.txt")"
train=$(cat "$TMP/a/trainlist.txt"); test=$(cat "$TMP/a/testlist.txt")
expect_match "trainlist has clip and label" '^bend/bend_000\.mp4 1$' "$train"
expect_match "trainlist labels from 1" '^jack/jack_000\.mp4 2$' "$train"
expect_lines "trainlist: one clip per class" 2 "$train"
expect_match "testlist has the other clip" '^jack/jack_001\.mp4$' "$test"
expect_lines "testlist: one clip per class" 2 "$test"
missing=0
for rel in $(cut -d' ' -f1 "$TMP/a/trainlist.txt") $test; do [ -s "$TMP/a/$rel" ] || missing=1; done
[ "$missing" -eq 0 ] && ok "every listed clip exists" || not_ok "a listed clip is missing"
nclips=$(find "$TMP/a" -name '*.mp4' | wc -l)
[ "$nclips" -eq 4 ] && ok "4 clips written" || not_ok "$nclips clips written, want 4"

probe_clean=1
for f in "$TMP"/a/*/*.mp4; do
    [ -z "$(ffprobe -v warning "$f" 2>&1)" ] || { probe_clean=0; echo "# ffprobe: $f" ; }
done
[ "$probe_clean" -eq 1 ] && ok "ffprobe -v warning prints nothing" || not_ok "ffprobe warned"
info=$(ffprobe -v error -count_frames -show_entries stream=codec_name,profile,width,height,pix_fmt,has_b_frames,nb_read_frames,avg_frame_rate -of default=nw=1 "$TMP/a/bend/bend_000.mp4")
expect_match "H.264" '^codec_name=h264$' "$info"
expect_match "main profile" '^profile=Main$' "$info"
expect_match "64x48" 'width=64' "$info"
expect_match "yuv420p" '^pix_fmt=yuv420p$' "$info"
expect_match "no B-frames" '^has_b_frames=0$' "$info"
expect_match "25 fps" '^avg_frame_rate=25/1$' "$info"
expect_match "1 s = 25 frames" '^nb_read_frames=25$' "$info"
"$ACTIOND" synth -o "$TMP/g" --classes 8 --clips-per-class 1 --size 64x48 --seconds 3 --seed 7 2>/dev/null
gop=$(ffprobe -v error -select_streams v -show_entries frame=pict_type -of csv=p=0 "$TMP/g/walk/walk_000.mp4" | grep -v '^$' | grep -n I | cut -d: -f1 | tr '\n' ' ')
expect_match "an I-frame every 2 s (frames 1, 51)" '^1 51 $' "$gop"

expect_status "same seed again, one thread" 0 "$ACTIOND" synth -o "$TMP/b" "${small[@]}" --threads 1
if diff -r "$TMP/a" "$TMP/b" >/dev/null; then ok "same seed: byte-identical"; else not_ok "same seed differs"; fi
expect_status "another seed" 0 "$ACTIOND" synth -o "$TMP/c" --classes 2 --clips-per-class 2 --size 64x48 --seconds 1 --seed 8
if cmp -s "$TMP/a/bend/bend_000.mp4" "$TMP/c/bend/bend_000.mp4"; then not_ok "seed ignored"; else ok "another seed: other clips"; fi

expect_status "sequence exits 0" 0 "$ACTIOND" synth --sequence "$TMP/seq.mp4" --sequence-seconds 8 --size 64x48 --seed 3
csv=$(cat "$TMP/seq.csv")
expect_match "timeline header" '^start_s,end_s,action$' "$csv"
expect_match "timeline starts at 0" '^0\.000,[0-9.]+,[a-z0-9]+$' "$csv"
expect_match "timeline ends at the length" ',8\.000,[a-z0-9]+$' "$csv"
tiled=$(awk -F, 'NR>1 { if (NR>2 && $1 != prev) bad=1; prev=$2 } END { print bad ? "gap" : "tiled" }' "$TMP/seq.csv")
expect_match "timeline rows tile the clip" '^tiled$' "$tiled"
dur=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$TMP/seq.mp4")
expect_match "sequence lasts 8 s" '^8\.0' "$dur"
[ -z "$(ffprobe -v warning "$TMP/seq.mp4" 2>&1)" ] && ok "sequence: ffprobe clean" || not_ok "sequence: ffprobe warned"

for bad in "--size 13x7" "--size 99999x99999" "--size 64" "--classes 0" "--classes 11" \
           "--clips-per-class 99999999" "--fps 1000" "--fps 0" "--seconds 0" "--seconds abc" \
           "--seconds 1e9" "--seed -1" "--seed 0x10" "--test-fraction 1" "--threads 0" \
           "--frob" "extra"; do
    # shellcheck disable=SC2086
    expect_status "bad option '$bad' exits 2" 2 "$ACTIOND" synth -o "$TMP/x" $bad
    expect_lines "bad option '$bad': one-line error" 1 "$ERR"
done
expect_status "no output named exits 2" 2 "$ACTIOND" synth --seed 1
expect_match "no output: says what is missing" 'synth: .*-o DIR' "$ERR"
expect_status "option without value exits 2" 2 "$ACTIOND" synth -o
expect_lines "option without value: one-line error" 1 "$ERR"
expect_status "unwritable folder exits 1" 1 "$ACTIOND" synth -o /proc/actiond-synth "${small[@]}"
expect_lines "unwritable folder: one-line error" 1 "$ERR"
expect_match "unwritable folder named" '/proc/actiond-synth' "$ERR"
finish
