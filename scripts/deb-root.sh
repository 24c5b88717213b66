#!/usr/bin/env bash
# A minimal Debian of this machine's release in a folder, for tests/packaging: the .deb
# files are installed into an overlay of it with chroot + dpkg, so their maintainer
# scripts run as they would on a fresh server (adduser there, systemd not running).
# Built once (a few minutes); `make deb-root` calls this when the folder is missing.
# The mirror is the one apt on this machine already uses, so nothing else is reached.
set -euo pipefail
target="$1"
if [ -f "$target/.complete" ]; then exit 0; fi
. /etc/os-release
mirror="$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null \
  | grep -v security | head -n1)"
if [ -z "$mirror" ]; then
  mirror="$(awk '$1 == "deb" && $3 == "'"$VERSION_CODENAME"'" {print $2; exit}' /etc/apt/sources.list)"
fi
rm -rf "$target.partial"
mkdir -p "$(dirname "$target")"
# python3 is what both packages depend on; adduser what the server package's postinst uses.
debootstrap --variant=minbase --include=python3,adduser "$VERSION_CODENAME" "$target.partial" "$mirror"
chroot "$target.partial" apt-get clean
rm -rf "$target"
mv "$target.partial" "$target"
touch "$target/.complete"
