#!/usr/bin/env bash
# Install the Debian packages listed in scripts/apt-packages.txt that are not
# installed yet. Runs apt-get update only when something must be installed, and
# keeps services from starting while packages install (policy-rc.d exits 101).
set -euo pipefail

list_file="${1:-$(dirname "$0")/apt-packages.txt}"
policy=/usr/sbin/policy-rc.d
policy_backup=""

wanted=$(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$list_file")

missing=()
for pkg in $wanted; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "installed" ]; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "apt: all $(echo "$wanted" | wc -w) packages from $list_file are installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "apt: missing packages: ${missing[*]}" >&2
    echo "apt: run as root (Slipway's setup needs root on Debian 12)" >&2
    exit 1
fi

restore_policy() {
    if [ -n "$policy_backup" ]; then
        mv -f "$policy_backup" "$policy"
    else
        rm -f "$policy"
    fi
}

if [ -e "$policy" ]; then
    policy_backup=$(mktemp "$policy.slipway-backup.XXXXXX")
    cp -p "$policy" "$policy_backup"
fi
trap restore_policy EXIT
printf '#!/bin/sh\n# Written by Slipway install-apt-packages.sh: start no services.\nexit 101\n' >"$policy"
chmod 755 "$policy"

export DEBIAN_FRONTEND=noninteractive
echo "apt: installing ${#missing[@]} missing package(s): ${missing[*]}"
echo "apt: apt-get update"
apt-get update
echo "apt: apt-get install"
apt-get install -y --no-install-recommends "${missing[@]}"
echo "apt: done"
