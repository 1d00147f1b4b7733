#!/usr/bin/env bash
# Writes a tarball of a stand-in for node:20-bookworm-slim, made from this Debian host: its node
# and npm where the official image has them (/usr/local), a shell, coreutils, the shared libraries
# they load, and the image's `node` user (uid 1000). It lets the Containerfile be built offline.
# Usage: stand-in-base.sh OUT.tar
set -euo pipefail
out=$1
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

node=$(readlink -f "$(command -v node)")
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")

mkdir -p "$root"/usr/{bin,lib,lib64,local/bin,local/lib/node_modules} "$root"/{etc,tmp,root,home/node,var/lib}
for dir in bin lib lib64 sbin; do ln -sfn "usr/$dir" "$root/$dir"; done  # usrmerge, as in Debian 12
chmod 1777 "$root/tmp"
chown 1000:1000 "$root/home/node"

cp "$node" "$root/usr/local/bin/node"
cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"

binaries=(/usr/bin/dash $(dpkg -L coreutils | grep -E '^(/usr)?/bin/.'))
cp -a "${binaries[@]}" "$root/usr/bin/"
ln -s dash "$root/usr/bin/sh"
# libc6's libraries (the real image has the whole package: native modules load librt and others)
# and every other library the binaries load, at the path ldd resolved it to.
libs=$({ dpkg -L libc6 | grep -E '^/lib/[^/]+/[^/]+\.so'; ldd "$node" "${binaries[@]}" | grep -oE '/[^ ]+\.so[^ ]*'; } | sort -u)
for lib in $libs; do cp -L --parents "$lib" "$root"; done

cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
node:x:1000:1000::/home/node:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
node:x:1000:
nogroup:x:65534:
GROUP

tar -C "$root" -cf "$out" .
