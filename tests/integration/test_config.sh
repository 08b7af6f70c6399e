#!/usr/bin/env bash
# test_config.sh — `actiond serve --check` as operators and systemd run it: the example passes,
# broken files fail with 78 and one FILE:LINE:COL line per error, secrets never show, and the
# key table in docs/config.md and the example cannot drift from the schema.
. "$(dirname "$0")/lib.sh"
top=$(cd "$(dirname "$0")/../.." && pwd)
example=$top/config/actiond.yaml
model=$top/models/default.adm
# --check loads the model as the daemon would: the example, pointed at this tree's model.
here=$TMP/example.yaml
sed "s|^model: .*|model: $model|" "$example" >"$here"

expect_status "example passes --check" 0 "$ACTIOND" serve --check -c "$here"
expect_match "example: verdict on stdout" "^$here: ok, 2 streams\$" "$OUT"
expect_lines "example: nothing on stderr" 0 "$ERR"
expect_status "--config=FILE works too" 0 "$ACTIOND" serve --config="$here" --check
expect_status "--check before -c works too" 0 "$ACTIOND" serve --check --config "$here"
expect_status "example as shipped: its model is not installed here, 78" 78 "$ACTIOND" serve --check -c "$example"
expect_match "missing model named" "^$example: model: .*default.adm" "$ERR"
sed "s|^    actions: \[wave1, wave2\]|    actions: [wave1, wave3]|" "$here" >"$TMP/action.yaml"
expect_status "an action the model lacks exits 78" 78 "$ACTIOND" serve --check -c "$TMP/action.yaml"
expect_match "the action and stream named" "^$TMP/action.yaml: stream '.*': the model .* has no action 'wave3'\$" "$ERR"
expect_lines "one line for it" 1 "$ERR"

bad=$TMP/bad.yaml
cat >"$bad" <<'YAML'
model: /m.adm
http:
  lisen: 127.0.0.1:8080
streams:
  - id: a
    url: rtsp://a
  - id: b
    url: rtsp://b
    fps: 120
  - id: a
    url: rtsp://c
    thresholds: {enter: 0.5, exit: 0.7}
YAML
chmod 600 "$bad"
expect_status "broken file exits 78" 78 "$ACTIOND" serve --check -c "$bad"
expect_lines "broken file: one line per error" 4 "$ERR"
expect_lines "broken file: nothing on stdout" 0 "$OUT"
expect_match "unknown key with its position" "^$bad:3:3: key 'http.lisen': unknown key \(did you mean 'listen'\?\)\$" "$ERR"
expect_match "bound with its position" "^$bad:9:10: key 'streams\[1\].fps': must be between 1 and 60\$" "$ERR"
expect_match "exit above enter" "^$bad:12:36: key 'streams\[2\].thresholds.exit': exit \(0.7\) must not be above enter \(0.5\)\$" "$ERR"
expect_match "duplicate id" "^$bad:10:9: key 'streams\[2\].id': duplicate stream id 'a' \(first at line 5\)\$" "$ERR"
if grep -qvE "^$bad:[0-9]+:[0-9]+: " <<<"$ERR"; then not_ok "every line names file:line:col"; else ok "every line names file:line:col"; fi

expect_status "missing file exits 78" 78 "$ACTIOND" serve --check -c "$TMP/absent.yaml"
expect_lines "missing file: one line" 1 "$ERR"
expect_match "missing file: clear message" "^$TMP/absent.yaml: cannot open: No such file or directory\$" "$ERR"

printf 'model: /m\n  x: [\n' >"$TMP/syntax.yaml"
expect_status "syntax error exits 78" 78 "$ACTIOND" serve --check -c "$TMP/syntax.yaml"
expect_match "syntax error has a position" "^$TMP/syntax.yaml:2:4: YAML syntax: " "$ERR"

head -c $((1024 * 1024 + 1)) /dev/zero | tr '\0' '#' >"$TMP/big.yaml"
expect_status "file over 1 MiB exits 78" 78 "$ACTIOND" serve --check -c "$TMP/big.yaml"
expect_match "file over 1 MiB: said so" "larger than the limit" "$ERR"

{ echo 'model: /m'; echo 'a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]'
  prev=a; for k in b c d e f g h i; do
      echo "$k: &$k [*$prev, *$prev, *$prev, *$prev, *$prev, *$prev, *$prev, *$prev, *$prev]"; prev=$k
  done; } >"$TMP/laughs.yaml"
expect_status "billion laughs exits 78 at once" 78 timeout 5 "$ACTIOND" serve --check -c "$TMP/laughs.yaml"
expect_match "billion laughs: aliases refused" "^$TMP/laughs.yaml:3:8: YAML aliases \(\*a\) are not supported" "$ERR"

# Secrets: never printed, whether the file passes or fails.
printf 'model: %s\nstreams: [{id: a, url: u}]\nhttp: {token_env: ACTIOND_IT_TOKEN}\n' "$model" >"$TMP/env.yaml"
chmod 600 "$TMP/env.yaml"
expect_status "token from the environment" 0 env ACTIOND_IT_TOKEN=hunter2-it "$ACTIOND" serve --check -c "$TMP/env.yaml"
expect_status "unset token variable exits 78" 78 env -u ACTIOND_IT_TOKEN "$ACTIOND" serve --check -c "$TMP/env.yaml"
expect_match "unset token variable named" "environment variable ACTIOND_IT_TOKEN is not set" "$ERR"
printf 'hunter2-file\nsecond line\n' >"$TMP/token"
chmod 600 "$TMP/token"
printf 'model: /m\nhttp: {token_file: token}\nqueue_depth: 0\n' >"$TMP/file.yaml"
expect_status "bad token file exits 78" 78 "$ACTIOND" serve --check -c "$TMP/file.yaml"
expect_lines "bad token file: two errors" 2 "$ERR"
if grep -q hunter2 <<<"$ERR$OUT"; then not_ok "secret not printed"; else ok "secret not printed"; fi
printf 'model: %s\nstreams: [{id: a, url: u}]\nhttp: {token: hunter2-inline}\n' "$model" >"$TMP/inline.yaml"
chmod 644 "$TMP/inline.yaml"
expect_status "inline secret in a public file: a warning, still valid" 0 "$ACTIOND" serve --check -c "$TMP/inline.yaml"
expect_match "inline secret warning" "^$TMP/inline.yaml:3:15: warning: key 'http.token': " "$ERR"
if grep -q hunter2 <<<"$ERR$OUT"; then not_ok "inline secret not printed"; else ok "inline secret not printed"; fi

# The example names the installed default model, absent here: the daemon refuses to start.
expect_status "serve with the example and no model exits 1" 1 "$ACTIOND" serve -c "$example"
expect_match "serve names the missing model" "^actiond: serve: .*default.adm" "$ERR"
expect_status "serve -c without a file exits 2" 2 "$ACTIOND" serve -c
expect_status "serve with an unknown flag exits 2" 2 "$ACTIOND" serve --frob
expect_match "unknown flag named" "unknown argument '--frob'" "$ERR"

# The documentation and the example are checked against the schema, so neither can drift.
expect_status "--dump-schema exits 0" 0 "$ACTIOND" serve --dump-schema
schema=$OUT
doc_table=$(sed -n '/^<!-- schema:begin/,/^<!-- schema:end/p' "$top/docs/config.md" | sed '1d;$d')
if [ "$doc_table" = "$schema" ]; then ok "docs/config.md key table matches the schema"
else not_ok "docs/config.md key table differs from the schema (run scripts/gen-config-doc)"; fi
missing=()
while read -r key; do
    leaf=${key##*.}
    grep -qE "^[[:space:]]*(#[[:space:]]*)?(- )?$leaf:" "$example" || missing+=("$key")
done < <(grep -oE '^\| `[^`]+`' <<<"$schema" | tr -d '|` ')
if [ "${#missing[@]}" -eq 0 ]; then ok "example shows every key"
else not_ok "example lacks: ${missing[*]}"; fi
finish
