#!/usr/bin/env bash
# test_train.sh — `actiond train` and `actiond eval` on a tiny synth data set: the model, the
# per-epoch JSON log, checkpoints and resume, eval's JSON, and bad data sets.
. "$(dirname "$0")/lib.sh"

"$ACTIOND" synth -o "$TMP/d" --classes 3 --clips-per-class 6 --size 96x64 --seconds 1.5 \
    --seed 4 >/dev/null 2>&1 || not_ok "synth"
small=(--size 48 --batch 2 --width 0.25 --segments 2 --motion-len 2 --fps 8 --loader-threads 1)
expect_status "train two of three epochs" 0 "$ACTIOND" train -d "$TMP/d" -o "$TMP/m.adm" --epochs 3 \
    "${small[@]}" --stop-after 2
[ ! -e "$TMP/m.adm" ] && ok "no model before the last epoch" || not_ok "no model before the last epoch"
[ -s "$TMP/m.adm.ckpt" ] && ok "checkpoint written" || not_ok "checkpoint written"
expect_lines "one log line per epoch" 2 "$(cat "$TMP/m.adm.train.jsonl")"
for k in epoch train_loss val_top1_rgb val_top1_motion val_top1_fused fusion lr seconds; do
    expect_match "log has $k" "\"$k\":" "$(head -1 "$TMP/m.adm.train.jsonl")"
done
expect_status "resume to epoch 3" 0 "$ACTIOND" train -d "$TMP/d" -o "$TMP/m.adm" --epochs 3 \
    "${small[@]}" --resume "$TMP/m.adm.ckpt"
expect_match "resumed at epoch 3" 'resuming at epoch 3' "$ERR"
expect_lines "log continued" 3 "$(cat "$TMP/m.adm.train.jsonl")"
[ -s "$TMP/m.adm" ] && ok "model written" || not_ok "model written"
cp "$TMP/m.adm" "$TMP/m1.adm"
expect_status "resume a finished run" 0 "$ACTIOND" train -d "$TMP/d" -o "$TMP/m.adm" --epochs 3 \
    "${small[@]}" --resume "$TMP/m.adm.ckpt"
expect_match "chooses the fusion weights again" 'all 3 epochs done; choosing the fusion weights again' "$ERR"
expect_lines "no epoch trained" 3 "$(cat "$TMP/m.adm.train.jsonl")"
cmp -s "$TMP/m.adm" "$TMP/m1.adm" && ok "same weights, same choice: the same model" ||
    not_ok "resuming a finished run changed the model"
expect_status "info of the trained model" 0 "$ACTIOND" info "$TMP/m.adm"
expect_match "trained model metadata" '3 classes, input 48x48, K=2 segments, motion mv \(L=2\), 8.0 fps' "$OUT"

expect_status "eval --json" 0 "$ACTIOND" eval -m "$TMP/m.adm" -d "$TMP/d" --json
for k in top1 top5 streams per_class confusion clips; do
    expect_match "eval has $k" "\"$k\":" "$OUT"
done
expect_match "eval: every test clip" "\"clips\":$(grep -c . "$TMP/d/testlist.txt")" "$OUT"
expect_match "eval: each clip's outcome in list order" \
    "\"right\":\"[01]{$(grep -c . "$TMP/d/testlist.txt")}\"" "$OUT"
expect_match "eval: both streams, each per class" \
    '"streams":\{"rgb":\{"top1":[0-9.]+,"per_class":\{"bend":[0-9.]+,.*\},"motion":\{"top1":[0-9.]+,"per_class":\{"bend":' "$OUT"
expect_status "eval, text" 0 "$ACTIOND" eval -m "$TMP/m.adm" -d "$TMP/d"
expect_match "eval, text: a column per stream" '^  bend +[0-9.]+ [0-9.]+ [0-9.]+$' "$OUT"

# --from: a model file fine-tuned in place of a new one; 0 epochs choose the fusion only
expect_status "--from, 0 epochs" 0 "$ACTIOND" train --from "$TMP/m.adm" -d "$TMP/d" -o "$TMP/f.adm" \
    --epochs 0 --batch 2 --loader-threads 1
expect_match "--from: the fusion chosen again" 'choosing the fusion weights again' "$ERR"
"$ACTIOND" eval -m "$TMP/m.adm" -d "$TMP/d" --json >"$TMP/e1.json" 2>/dev/null
"$ACTIOND" eval -m "$TMP/f.adm" -d "$TMP/d" --json >"$TMP/e2.json" 2>/dev/null
streams() { python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["streams"]))' "$1"; }
[ -n "$(streams "$TMP/e1.json")" ] && [ "$(streams "$TMP/e1.json")" = "$(streams "$TMP/e2.json")" ] &&
    ok "--from, 0 epochs: the streams untouched" || not_ok "--from, 0 epochs: the streams changed"
ft=(--from "$TMP/m.adm" -d "$TMP/d" -o "$TMP/f1.adm" --epochs 2 --batch 2 --lr 0.001 --loader-threads 1)
expect_status "--from, stopped after 1 of 2 epochs" 0 "$ACTIOND" train "${ft[@]}" --stop-after 1
expect_status "--from, resumed" 0 "$ACTIOND" train "${ft[@]}" --resume "$TMP/f1.adm.ckpt"
expect_match "--from, resumed at epoch 2" 'resuming at epoch 2' "$ERR"
expect_lines "--from: one log line per epoch" 2 "$(cat "$TMP/f1.adm.train.jsonl")"
expect_status "info of the fine-tuned model" 0 "$ACTIOND" info "$TMP/f1.adm"
expect_match "--from keeps the model's shape" '3 classes, input 48x48, K=2 segments, motion mv \(L=2\), 8.0 fps' "$OUT"
expect_status "--from with a shape option" 2 "$ACTIOND" train --from "$TMP/m.adm" -d "$TMP/d" \
    -o "$TMP/x.adm" --size 64
expect_match "--from: the clashing option named" "not with '--size'" "$ERR"
expect_status "--epochs 0 without --from" 2 "$ACTIOND" train -d "$TMP/d" -o "$TMP/x.adm" --epochs 0
expect_match "--epochs 0 needs --from" 'only with --from' "$ERR"
expect_status "--from a missing model" 1 "$ACTIOND" train --from "$TMP/none.adm" -d "$TMP/d" -o "$TMP/x.adm"
expect_lines "--from a missing model: one line" 1 "$ERR"
expect_status "--from, 0 epochs, no validation clips" 1 "$ACTIOND" --log-level warn train \
    --from "$TMP/m.adm" -d "$TMP/d" -o "$TMP/x.adm" --epochs 0 --val-split 0
expect_match "nothing to do, said" 'nothing to do' "$ERR"

expect_status "resume with other options is refused" 1 "$ACTIOND" --log-level warn train -d "$TMP/d" -o "$TMP/x.adm" \
    --epochs 3 "${small[@]}" --lr 0.5 --resume "$TMP/m.adm.ckpt"
expect_lines "refusal: one line" 1 "$ERR"

# a corrupt clip is skipped with a warning naming it
head -c 5000 /dev/urandom >"$TMP/d/bend/bend_000.mp4"
expect_status "train with a corrupt clip" 0 "$ACTIOND" train -d "$TMP/d" -o "$TMP/c.adm" --epochs 1 "${small[@]}"
expect_match "the corrupt clip is named" 'bend_000.mp4' "$ERR"
expect_status "missing data set" 1 "$ACTIOND" --log-level warn train -d "$TMP/none" -o "$TMP/n.adm"
expect_lines "missing data set: one line" 1 "$ERR"
mkdir -p "$TMP/empty"
expect_status "empty data set" 1 "$ACTIOND" train -d "$TMP/empty" -o "$TMP/n.adm"
expect_status "eval of a model on other classes" 1 "$ACTIOND" eval -m "$TMP/m.adm" -d "$TMP/empty"
expect_status "dropout out of range" 2 "$ACTIOND" train -d "$TMP/d" -o "$TMP/n.adm" --dropout 1
expect_match "dropout range named" "--dropout must be a number in \[0, 0.9\]" "$ERR"
expect_status "train without -o" 2 "$ACTIOND" train -d "$TMP/d"
expect_status "a negative seed" 2 "$ACTIOND" train -d "$TMP/d" -o "$TMP/n.adm" --seed -1
expect_match "names the flag and its range" \
    "--seed must be a whole number in 0\.\.18446744073709551615" "$ERR"
expect_lines "in one line" 1 "$ERR"
expect_status "a seed over 64 bits" 2 "$ACTIOND" train -d "$TMP/d" -o "$TMP/n.adm" \
    --seed 18446744073709551616
expect_status "train with a bad motion" 2 "$ACTIOND" train -d "$TMP/d" -o "$TMP/x.adm" --motion wind
expect_status "train with flow is refused for now" 1 "$ACTIOND" --log-level warn train -d "$TMP/d" \
    -o "$TMP/x.adm" --motion flow --epochs 1 "${small[@]/--motion-len/--motion-len}"
expect_match "says flow is not supported yet" 'flow is not supported' "$ERR"
finish
