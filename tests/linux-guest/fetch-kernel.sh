#!/usr/bin/env bash
# Fetches the Linux-guest tests' kernel: the newest Debian cloud kernel the apt index offers
# (linux-image-6.1.0-N-cloud-amd64), with `apt-get download` and `dpkg-deb -x`, into
#   CACHE/kernel/VERSION/   (boot/vmlinuz-VERSION, lib/modules/VERSION/, and .complete once whole)
# and prints that directory on its last line. A version already in the cache is not fetched again;
# older versions are removed once a newer one is complete.
#   usage: fetch-kernel.sh [CACHE]   (default $VBLK_LINUX_GUEST_CACHE, else ~/.cache/vblk/linux-guest)
# When the index names no such kernel, or names one the mirror no longer has, it runs `apt-get update`
# (as root, or with sudo -n) and tries once more. Exit status 1 with a one-line reason when it cannot.
set -euo pipefail
cache=${1:-${VBLK_LINUX_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vblk/linux-guest}}
say() { echo "fetch-kernel: $*" >&2; }

sudo_=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo_=(sudo -n); fi
can_update() { [ "$(id -u)" -eq 0 ] || [ ${#sudo_[@]} -gt 0 ]; }
update_index() {
  say "updating the apt index (apt-get update) ..."
  "${sudo_[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
}
# sort -V reads all its input, so no early exit of a pipe's reader can fail the pipeline
newest() {
  apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' 2>/dev/null | awk '{print $1}' \
    | sort -V | sed -n '$p'
}
for tool in apt-cache apt-get dpkg-deb; do
  command -v "$tool" >/dev/null 2>&1 || { say "$tool is missing: the kernel comes from Debian's archive"; exit 1; }
done

pkg=$(newest)
if [ -z "$pkg" ] && can_update; then update_index || true; pkg=$(newest); fi
if [ -z "$pkg" ]; then
  say "the apt index names no linux-image-6.1.0-*-cloud-amd64 (run apt-get update as root, on Debian 12)"
  exit 1
fi
version=${pkg#linux-image-}
dir=$cache/kernel/$version
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi

mkdir -p "$cache/kernel"
tmp=$(mktemp -d "$cache/kernel/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
say "downloading $pkg (about 27 MB) ..."
if ! (cd "$tmp" && apt-get download -q "$pkg" >&2 2>"$tmp/apt.err"); then
  if can_update; then
    update_index || true
    pkg=$(newest); version=${pkg#linux-image-}; dir=$cache/kernel/$version
    (cd "$tmp" && apt-get download -q "$pkg" >&2 2>"$tmp/apt.err") || { say "apt-get download $pkg failed: $(tr '\n' ' ' <"$tmp/apt.err")"; exit 1; }
  else
    say "apt-get download $pkg failed: $(tr '\n' ' ' <"$tmp/apt.err")"
    exit 1
  fi
fi
dpkg-deb -x "$tmp"/linux-image-*.deb "$tmp/tree"
[ -f "$tmp/tree/boot/vmlinuz-$version" ] || { say "$pkg has no boot/vmlinuz-$version"; exit 1; }
touch "$tmp/tree/.complete"
rm -rf "$dir"
mv "$tmp/tree" "$dir"
for old in "$cache"/kernel/*/; do
  [ "${old%/}" = "$dir" ] || rm -rf "${old%/}"
done
say "$pkg is in $dir"
echo "$dir"
