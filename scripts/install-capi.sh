#!/usr/bin/env bash
# Builds the C library (crates/iocport-capi) in release and installs it for C and C++ programs:
#
#   PREFIX/lib/libiocport.so.VERSION, with the links libiocport.so.MAJOR (its SONAME) and
#                                     libiocport.so
#   PREFIX/lib/libiocport.a
#   PREFIX/include/iocport/windows.h  (and the headers it includes, iocport/*.h)
#   PREFIX/lib/pkgconfig/iocport.pc   (from crates/iocport-capi/iocport.pc.in)
#
# Usage: scripts/install-capi.sh [PREFIX]      (default /usr/local; a relative PREFIX is taken
#                                               from the current directory)
# DESTDIR, if set, is put before every path written (staged installs, packaging); the paths inside
# iocport.pc stay PREFIX's. Running it again replaces the files with the current build.
#
# Then:  cc prog.c $(pkg-config --cflags --libs iocport)
# (with PKG_CONFIG_PATH=PREFIX/lib/pkgconfig when PREFIX is not one pkg-config searches, and
# -Wl,-rpath,PREFIX/lib or LD_LIBRARY_PATH when PREFIX/lib is not one the loader searches).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prefix=${1:-/usr/local}
if [ "$#" -gt 1 ]; then
    echo "usage: $0 [PREFIX]" >&2
    exit 2
fi
case "$prefix" in
    /*) ;;
    *) prefix="$PWD/$prefix" ;;
esac
prefix=${prefix%/}
destdir=${DESTDIR:-}

# The version: [workspace.package] version in the workspace's Cargo.toml.
version=$(awk '
    /^\[/ { section = $0; next }
    section == "[workspace.package]" && $1 == "version" {
        gsub(/[" ]/, "", $0); sub(/^version=/, "", $0); print; exit
    }' "$root/Cargo.toml")
if ! [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    echo "install-capi: no [workspace.package] version in $root/Cargo.toml (got '$version')" >&2
    exit 1
fi
major=${version%%.*}

echo "install-capi: cargo build --release -p iocport-capi"
(cd "$root" && "${CARGO:-cargo}" build --release -p iocport-capi)

target=${CARGO_TARGET_DIR:-$root/target}
case "$target" in
    /*) ;;
    *) target="$root/$target" ;;
esac
so="$target/release/libiocport_capi.so"
archive="$target/release/libiocport_capi.a"
headers=("$root"/crates/iocport-capi/include/iocport/*.h)
header="$root/crates/iocport-capi/include/iocport/windows.h"
template="$root/crates/iocport-capi/iocport.pc.in"
for f in "$so" "$archive" "$header" "${headers[@]}" "$template"; do
    [ -f "$f" ] || { echo "install-capi: $f is missing" >&2; exit 1; }
done

# build.rs gives the library its SONAME: the link named after it is the one programs load.
soname="libiocport.so.$major"
if command -v readelf >/dev/null; then
    got=$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
    if [ "$got" != "$soname" ]; then
        echo "install-capi: $so has SONAME '$got', expected $soname" >&2
        exit 1
    fi
fi

libdir="$destdir$prefix/lib"
incdir="$destdir$prefix/include/iocport"
pcdir="$libdir/pkgconfig"
install -d "$libdir" "$incdir" "$pcdir"

# install(1) replaces a file by a new one (unlink, then create), so programs running on the old
# library keep their mapping.
install -m 0755 "$so" "$libdir/libiocport.so.$version"
ln -sfn "libiocport.so.$version" "$libdir/$soname"
ln -sfn "$soname" "$libdir/libiocport.so"
install -m 0644 "$archive" "$libdir/libiocport.a"
install -m 0644 "${headers[@]}" "$incdir/"

pc=$(mktemp)
trap 'rm -f "$pc"' EXIT
# The prefix goes into a sed replacement: escape what sed would read there.
prefix_sed=$(printf '%s' "$prefix" | sed 's/[\\|&]/\\&/g')
sed -e "s|@PREFIX@|$prefix_sed|g" -e "s|@VERSION@|$version|g" "$template" >"$pc"
if grep -q '@[A-Z_]*@' "$pc"; then
    echo "install-capi: $template has a placeholder this script does not fill" >&2
    exit 1
fi
install -m 0644 "$pc" "$pcdir/iocport.pc"

echo "install-capi: installed iocport $version:"
echo "  $libdir/libiocport.so.$version"
echo "  $libdir/$soname -> libiocport.so.$version"
echo "  $libdir/libiocport.so -> $soname"
echo "  $libdir/libiocport.a"
for h in "${headers[@]}"; do
    echo "  $incdir/$(basename "$h")"
done
echo "  $pcdir/iocport.pc"

# A system prefix: refresh the loader's cache so that libiocport.so.MAJOR is found at once.
if [ -z "$destdir" ] && [ "$(id -u)" -eq 0 ] && command -v ldconfig >/dev/null; then
    case "$prefix" in
        /usr | /usr/local) ldconfig ;;
    esac
fi
if command -v pkg-config >/dev/null; then
    case ":$(pkg-config --variable pc_path pkg-config 2>/dev/null || true):" in
        *":$prefix/lib/pkgconfig:"*) ;;
        *) echo "install-capi: pkg-config does not search $prefix/lib/pkgconfig:" \
            "use PKG_CONFIG_PATH=$prefix/lib/pkgconfig" ;;
    esac
fi
