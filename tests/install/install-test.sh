#!/usr/bin/env bash
# install-test.sh SRC_DIR BUILD_DIR
#
# 1. `meson install` into a scratch DESTDIR, then build tests/install/consumer.c
#    with `pkg-config --cflags --libs svcinfra` against it, run it and fetch
#    /healthz over loopback.
# 2. Use the source tree as a meson subproject (dependency('svcinfra') with a
#    fallback) and build the same program.
# Exits non-zero at the first step that does not work.
set -euo pipefail
src=$(cd "$1" && pwd); build=$(cd "$2" && pwd)
tmp=$(mktemp -d); pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

meson install -C "$build" --destdir "$tmp/root" --no-rebuild --quiet >/dev/null
pcdir=$(dirname "$(find "$tmp/root" -name svcinfra.pc | head -n1)")
[ -f "$pcdir/svcinfra.pc" ] || { echo "svcinfra.pc was not installed"; exit 1; }
export PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$tmp/root"
cc -std=c11 -Wall -Wextra -Werror -o "$tmp/consumer" "$src/tests/install/consumer.c" \
   $(pkg-config --cflags --libs svcinfra)
libdir=$(dirname "$(find "$tmp/root" -name 'libsvcinfra.so.*' | head -n1)")
port=$((20000 + RANDOM % 20000))
LD_LIBRARY_PATH="$libdir" "$tmp/consumer" "$port" >"$tmp/out" 2>&1 &
pid=$!
body=""
for _ in $(seq 1 50); do
    body=$(curl -fsS "http://127.0.0.1:$port/healthz" 2>/dev/null) && break
    sleep 0.1
done
[ -n "$body" ] || { echo "installed consumer did not serve /healthz"; cat "$tmp/out"; exit 1; }
echo "pkg-config consumer: /healthz -> $body"
kill -TERM "$pid"; wait "$pid"; pid=""
grep -q stopped "$tmp/out" || { echo "consumer did not shut down gracefully"; exit 1; }

mkdir -p "$tmp/sub/subprojects"
ln -s "$src" "$tmp/sub/subprojects/svcinfra"
cp "$src/tests/install/consumer.c" "$tmp/sub/"
# exactly the README's line: the subproject's tests and benchmarks stay out
cat >"$tmp/sub/meson.build" <<'MESON'
project('consumer', 'c', default_options: ['c_std=c11'])
dep = dependency('svcinfra', fallback: ['svcinfra', 'svcinfra_dep'])
executable('consumer', 'consumer.c', dependencies: dep)
MESON
(cd "$tmp/sub" && PKG_CONFIG_PATH= PKG_CONFIG_SYSROOT_DIR= meson setup b --force-fallback-for=svcinfra >/dev/null && ninja -C b >/dev/null)
[ -x "$tmp/sub/b/consumer" ] || { echo "subproject build failed"; exit 1; }
tests=$(cd "$tmp/sub" && meson introspect --tests b)
[ "$tests" = "[]" ] || { echo "the subproject added its tests to the parent project"; exit 1; }
[ -z "$(find "$tmp/sub/b" -path '*bench*' -type f -perm -u+x)" ] ||
    { echo "the subproject built its benchmarks"; exit 1; }
[ ! -e "$tmp/sub/b/subprojects/svcinfra/examples/hello/hello" ] ||
    { echo "the subproject built its example server"; exit 1; }
echo "meson subproject consumer: built, without the library's tests, benchmarks and examples"
echo "install test passed"
