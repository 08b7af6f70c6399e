#!/usr/bin/env bash
# test_deb.sh — `make deb` builds the Debian package; its contents (binary, model, example config
# as a conffile, unit, docs, maintainer scripts) are checked from dpkg-deb -x, and lintian is clean
# apart from the overrides that packaging/README.md documents. Installs nothing.
. "$(dirname "$0")/lib.sh"
top=$(cd "$(dirname "$0")/../.." && pwd)

for tool in dpkg-deb dpkg-shlibdeps lintian; do
    if ! command -v "$tool" >/dev/null; then
        not_ok "$tool is installed (scripts/install-deps --arm64)"
        finish
        exit
    fi
done

# The package is built as `make deb` builds it, whatever make (or sanitizer) runs this test.
expect_status "make deb" 0 env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS \
    make -j2 -C "$top" --no-print-directory deb DEB_OUT="$TMP/dist"
deb=$(ls "$TMP"/dist/actiond_*.deb 2>/dev/null | head -1)
arch=$(dpkg --print-architecture)
expect_match "package named actiond_VERSION-1_$arch.deb" "actiond_[0-9.]+-1_$arch\\.deb$" "$deb"

ctl=$(dpkg-deb -f "$deb" Package Architecture Depends 2>&1)
expect_match "control: Package actiond" '^Package: actiond$' "$ctl"
expect_match "control: Architecture $arch" "^Architecture: $arch$" "$ctl"
expect_match "control: Depends from dpkg-shlibdeps" '^Depends: .*libavcodec[0-9]+.*libopenblas0' "$ctl"
expect_match "control: Depends names libavdevice, loaded at run time" 'libavdevice[0-9]+' "$ctl"
expect_match "conffile: the example config" '^/etc/actiond/actiond\.yaml\.example$' \
    "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)"

x=$TMP/x
dpkg-deb -x "$deb" "$x"
expect_status "packaged binary runs --version" 0 "$x/usr/bin/actiond" --version
expect_match "--version names the OpenBLAS core" '^openblas core: ' "$OUT"
[ -z "$(readelf -S "$x/usr/bin/actiond" | grep -E '\.(debug_info|symtab)')" ] &&
    ok "binary is stripped" || not_ok "binary keeps debug information or symbols"
cmp -s "$top/models/default.adm" "$x/usr/share/actiond/models/default.adm" &&
    ok "default model in /usr/share/actiond/models" || not_ok "default model missing or different"

unit=$x/lib/systemd/system/actiond.service
expect_match "unit in /lib/systemd/system runs /usr/bin/actiond" \
    '^ExecStart=/usr/bin/actiond serve -c /etc/actiond/actiond.yaml$' "$(cat "$unit" 2>&1)"
expect_match "unit starts only once actiond.yaml exists" \
    '^ConditionPathExists=/etc/actiond/actiond.yaml$' "$(cat "$unit" 2>&1)"
[ -z "$(grep -l '@[A-Z]*@' "$unit")" ] && ok "unit has no unfilled @PATHS@" || not_ok "unit has @...@ left"

# The example points at the packaged model; checked against the extracted tree.
example=$x/etc/actiond/actiond.yaml.example
expect_match "example names /usr/share/actiond/models/default.adm" \
    '^model: /usr/share/actiond/models/default.adm$' "$(cat "$example" 2>&1)"
sed "s|^model: /usr/share|model: $x/usr/share|" "$example" >"$TMP/actiond.yaml"
expect_status "serve --check accepts the example" 0 "$x/usr/bin/actiond" serve --check -c "$TMP/actiond.yaml"

for f in README.md config.md copyright changelog.Debian.gz; do
    [ -f "$x/usr/share/doc/actiond/$f" ] && ok "doc: $f" || not_ok "doc: $f missing"
done
[ -f "$x/usr/share/man/man1/actiond.1.gz" ] && ok "man page" || not_ok "man page missing"
for s in postinst prerm postrm; do
    dpkg-deb --ctrl-tarfile "$deb" | tar -xO "./$s" >"$TMP/$s"
    sh -n "$TMP/$s" && ok "$s parses" || not_ok "$s has a syntax error"
done
# postinst starts the service only when actiond.yaml exists.
grep -q '\[ -f /etc/actiond/actiond.yaml \]' "$TMP/postinst" && ok "postinst: start needs actiond.yaml" ||
    not_ok "postinst starts without a config"

lint=$(lintian --allow-root "$deb" 2>&1 | grep -E '^[EW]: ')
expect_lines "lintian: no errors or warnings" 0 "$lint"
[ -z "$lint" ] || echo "# $lint"
finish
