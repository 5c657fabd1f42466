#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Install everything nodemesh needs to build, test and demo on Debian 12.
# Idempotent: installs only what is missing, mounts bpffs only if absent.
set -euo pipefail

PKGS=(
	make clang llvm gcc pkg-config
	libbpf-dev bpftool libelf-dev zlib1g-dev
	libcurl4-openssl-dev libjson-c-dev libyaml-dev libcmocka-dev libmicrohttpd-dev libmnl-dev containernetworking-plugins iperf3 jq iptables curl
	iproute2 iputils-ping netcat-openbsd socat ethtool
	etcd-server etcd-client openssl
)

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: must run as root (installs packages, mounts bpffs)" >&2
	exit 1
fi

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
	echo "deps.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Debian etcd-server package starts a system etcd; tests start their own.
if systemctl is-active --quiet etcd 2>/dev/null; then
	systemctl stop etcd || true
	systemctl disable etcd >/dev/null 2>&1 || true
fi

if ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpf /sys/fs/bpf
fi
