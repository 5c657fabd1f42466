#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Test PKI for etcd over TLS, in DIR:
#   ca.pem ca-key.pem            the test CA
#   server.pem server-key.pem    etcd's certificate, SAN IP:127.0.0.1 and localhost
#   client.pem client-key.pem    a client certificate signed by the CA (mTLS)
#   wrong-ca.pem wrong-ca-key.pem  an unrelated CA, for the negative tests
# EC P-256 keys (fast to make), valid for 2 days: for tests only.
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
dir=$1
mkdir -p "$dir"
cd "$dir"

key() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$1" 2>/dev/null
}

ca() {
	key "$1-key.pem"
	openssl req -x509 -new -key "$1-key.pem" -out "$1.pem" -days 2 \
		-subj "/CN=$2" -addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

leaf() {
	local name=$1 cn=$2 ext=$3

	key "$name-key.pem"
	openssl req -new -key "$name-key.pem" -out "$name.csr" -subj "/CN=$cn" \
		2>/dev/null
	printf '%s\n' "$ext" >"$name.ext"
	openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca-key.pem \
		-CAcreateserial -out "$name.pem" -days 2 -extfile "$name.ext" \
		2>/dev/null
	rm -f "$name.csr" "$name.ext"
}

ca ca "nodemesh test CA"
ca wrong-ca "nodemesh wrong CA"
leaf server "127.0.0.1" "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth
keyUsage=critical,digitalSignature,keyEncipherment"
leaf client "nodemesh-agent" "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature,keyEncipherment"
rm -f ca.srl
chmod 600 ./*-key.pem
