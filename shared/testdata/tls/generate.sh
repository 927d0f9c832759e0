#!/usr/bin/env bash
# The test CA and the server certificate it signs (localhost, 127.0.0.1), for tests and the
# benchmark's HTTPS front. Valid from 2000 to 2099 so a function on a scenario's fake clock (some
# run in 2026's past) still accepts it; generated under libfaketime for that start date (OpenSSL 3.0
# has no -not_before). The CA's key is thrown away: nothing else is ever signed with it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 FAKETIME="@2000-01-01 00:00:00"
days=$((365 * 99))
ca_key=$(mktemp)
trap 'rm -f "$ca_key" server.csr' EXIT
openssl ecparam -name prime256v1 -genkey -noout -out "$ca_key"
openssl req -x509 -new -key "$ca_key" -subj "/CN=openclaw-ops test CA" -days "$days" -sha256 \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem
openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out server.key
openssl req -new -key server.key -subj "/CN=localhost" -out server.csr
openssl x509 -req -in server.csr -CA ca.pem -CAkey "$ca_key" -CAcreateserial -days "$days" -sha256 -out server.pem \
  -extfile <(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n')
rm -f ca.srl
