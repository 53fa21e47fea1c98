#!/usr/bin/env bash
# Installs the Debian packages the benchmark-target tests need, when they are missing:
#   openssh-server + openssh-client  tests/test_bench_ssh.py starts a throwaway sshd on 127.0.0.1
#   qemu-user-static + debootstrap    tests/test_bench_qemu.py runs the runner on an emulated arm64 CPU
#   adb                               tests/test_device_*.py drive the real adb client (no device attached)
# Idempotent: a machine that has them all is left untouched (no apt-get call at all). Needs root and
# apt-get to install; without them it lists what is missing and exits 1.
#
#   bash .ci/setup-test-hosts.sh            (from .ci/run and `make test`)
#
# Nothing is started or enabled: the Debian packages' post-install scripts may try to start sshd as
# a service, which is suppressed (policy-rc.d) so no daemon listens on port 22 afterwards.
set -euo pipefail

# command that proves the package is there -> Debian package
declare -A NEEDED=(
    [/usr/sbin/sshd]=openssh-server
    [/usr/bin/ssh]=openssh-client
    [/usr/bin/scp]=openssh-client
    [/usr/bin/qemu-aarch64-static]=qemu-user-static
    [/usr/sbin/debootstrap]=debootstrap
    [/usr/bin/dpkg-deb]=dpkg
    [/usr/bin/adb]=adb
)

missing=()
for path in "${!NEEDED[@]}"; do
    [ -x "$path" ] || missing+=("${NEEDED[$path]}")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "setup-test-hosts: sshd, ssh, qemu-aarch64-static, debootstrap and adb are present"
    exit 0
fi
mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-test-hosts: error: missing ${packages[*]}; install these Debian packages as root and re-run" >&2
    exit 1
fi

echo "setup-test-hosts: installing ${packages[*]}"
# Keep the packages' maintainer scripts from starting services (exit 101 = "action forbidden").
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created_policy=1
fi
cleanup() { if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null; }
if ! install 2>/dev/null; then
    apt-get update -q >/dev/null
    install
fi

for path in "${!NEEDED[@]}"; do
    if [ ! -x "$path" ]; then
        echo "setup-test-hosts: error: ${NEEDED[$path]} is installed but $path is still missing" >&2
        exit 1
    fi
done
echo "setup-test-hosts: installed ${packages[*]}"
