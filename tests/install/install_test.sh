#!/usr/bin/env bash
# Installs a kvpool build into a temporary prefix and uses that copy only:
# checks that every installed piece is there, builds tests/install/hello.c
# with `pkg-config --cflags --libs kvpool` and tests/install/hello.cc with
# find_package(kvpool) (tests/install/CMakeLists.txt), and runs both on a
# pool with one DRAM region. Fails when any piece is missing or wrong.
# Usage: install_test.sh BUILD_DIR
# Environment: CC, CXX (the build's compilers), KVPOOL_SANITIZE (the build's
# sanitizer, so the programs carry the same runtime), KVPOOL_TEST_TMP.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SOURCE_ROOT="$(cd "$HERE/../.." && pwd)"
BUILD="$(cd "${1:?usage: install_test.sh BUILD_DIR}" && pwd)"
TMP_ROOT="${KVPOOL_TEST_TMP:-/tmp}"
mkdir -p "$TMP_ROOT"
WORK="$(mktemp -d "$TMP_ROOT/kvpool-install-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
PREFIX="$WORK/prefix"

fail() { echo "install_test: $*" >&2; exit 1; }

SAN_FLAGS=""
case "${KVPOOL_SANITIZE:-}" in
  "") ;;
  address) SAN_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer" ;;
  thread) SAN_FLAGS="-fsanitize=thread" ;;
  *) fail "unknown KVPOOL_SANITIZE '${KVPOOL_SANITIZE}'" ;;
esac

echo "== cmake --install $BUILD --prefix $PREFIX"
cmake --install "$BUILD" --prefix "$PREFIX" >"$WORK/install.log" ||
  { cat "$WORK/install.log" >&2; fail "cmake --install failed"; }

# Every piece, found where GNUInstallDirs put it.
PC_FILE="$(find "$PREFIX" -name kvpool.pc -path '*/pkgconfig/*' | head -n 1)"
[[ -n "$PC_FILE" ]] || fail "kvpool.pc not installed"
LIBDIR="$(dirname "$(dirname "$PC_FILE")")"
for f in "$LIBDIR/libkvpool.so" "$LIBDIR/libkvpool.so.0" \
         "$LIBDIR/cmake/kvpool/kvpoolConfig.cmake" \
         "$LIBDIR/cmake/kvpool/kvpoolConfigVersion.cmake" \
         "$LIBDIR/cmake/kvpool/kvpoolTargets.cmake"; do
  [[ -e "$f" ]] || fail "missing ${f#"$PREFIX"/}"
done
for h in "$SOURCE_ROOT"/include/kvpool/*.h; do
  name="include/kvpool/$(basename "$h")"
  [[ -f "$PREFIX/$name" ]] || fail "missing $name"
done
# The daemon, its unit (pointing at the installed binary) and an example configuration.
[[ -x "$PREFIX/bin/kvpoold" ]] || fail "missing bin/kvpoold"
UNIT="$PREFIX/lib/systemd/system/kvpoold.service"
[[ -f "$UNIT" ]] || fail "missing lib/systemd/system/kvpoold.service"
grep -q "^ExecStart=$PREFIX/bin/kvpoold --config " "$UNIT" ||
  fail "kvpoold.service does not start the installed kvpoold: $(grep ExecStart "$UNIT")"
[[ -f "$PREFIX/share/kvpool/kvpoold.toml.example" ]] || fail "missing share/kvpool/kvpoold.toml.example"
"$PREFIX/bin/kvpoold" --help >/dev/null || fail "the installed kvpoold does not run"
DYNAMIC="$(readelf -d "$LIBDIR/libkvpool.so")"
grep -qF "Library soname: [libkvpool.so.0]" <<<"$DYNAMIC" ||
  fail "libkvpool.so has no SONAME libkvpool.so.0"
# What the build tree offers (the temp dir may lie inside it, so name these).
TREE=(-e "$SOURCE_ROOT/include" -e "$SOURCE_ROOT/src" -e "$BUILD/lib" -e "$BUILD/src")
if grep -rqF "${TREE[@]}" "$PC_FILE" "$LIBDIR/cmake/kvpool"; then
  fail "the installed package refers to the source or build tree"
fi

# The programs are built from copies, away from the source tree.
mkdir -p "$WORK/hello"
cp "$HERE/hello.c" "$HERE/hello.cc" "$HERE/CMakeLists.txt" "$WORK/hello/"
cat >"$WORK/pool.toml" <<TOML
[model]
layers = 2
kv_heads = 2
head_dim = 64
chunk_tokens = 16

[[device]]
name = "dram0"
kind = "dram"
capacity = "1MiB"
bandwidth_gibps = 4.0
TOML

# The library that a program loads must be the installed one.
check_loads_installed() {  # program
  local libs
  libs="$(ldd "$1")"
  grep -qF "libkvpool.so.0 => $LIBDIR/libkvpool.so.0" <<<"$libs" ||
    { echo "$libs" >&2; fail "$(basename "$1") does not load $LIBDIR/libkvpool.so.0"; }
}

echo "== hello.c (pkg-config)"
export PKG_CONFIG_PATH="$LIBDIR/pkgconfig"
# shellcheck disable=SC2046,SC2086  # word splitting of the flags is intended
"${CC:-cc}" -std=c99 -Wall -Wextra -Wpedantic -Werror $SAN_FLAGS -o "$WORK/hello_c" \
  "$WORK/hello/hello.c" $(pkg-config --cflags --libs kvpool) -Wl,-rpath,"$LIBDIR"
check_loads_installed "$WORK/hello_c"
"$WORK/hello_c" "$WORK/pool.toml"

echo "== hello.cc (find_package)"
cmake -S "$WORK/hello" -B "$WORK/hello-build" -G Ninja -DCMAKE_PREFIX_PATH="$PREFIX" \
  -DCMAKE_CXX_COMPILER="${CXX:-c++}" -DCMAKE_CXX_FLAGS="$SAN_FLAGS" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >"$WORK/configure.log" ||
  { cat "$WORK/configure.log" >&2; fail "configuring hello.cc failed"; }
grep -q "^kvpool_DIR:PATH=$LIBDIR/cmake/kvpool$" "$WORK/hello-build/CMakeCache.txt" ||
  fail "find_package(kvpool) did not find the installed package"
cmake --build "$WORK/hello-build" >"$WORK/build.log" ||
  { cat "$WORK/build.log" >&2; fail "building hello.cc failed"; }
if grep -qF "${TREE[@]}" "$WORK/hello-build/build.ninja"; then
  fail "hello.cc was built against the source or build tree"
fi
check_loads_installed "$WORK/hello-build/hello_cc"
"$WORK/hello-build/hello_cc" "$WORK/pool.toml"
echo "install_test: ok"
