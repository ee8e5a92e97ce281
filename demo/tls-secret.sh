#!/bin/sh
# A self-signed certificate for the demo's HTTPS listener, and the Kubernetes Secret (type
# kubernetes.io/tls) that examples/00-gateway.yaml's `https` listener names. `make demo` and the
# docker-compose demo run it at start-up; nothing it writes belongs in git (the Secret holds the
# private key).
#
#   demo/tls-secret.sh DIR [NAMESPACE [NAME [HOSTNAME]]]     (defaults: demo demo-tls secure.example)
#
# Writes DIR/tls.crt (the certificate: `curl --cacert DIR/tls.crt`) and DIR/secret.yaml (the
# Secret, mode 0600). Needs the openssl CLI (1.1.1 or later).
set -eu
dir=$1
namespace=${2:-demo}
name=${3:-demo-tls}
host=${4:-secure.example}
mkdir -p "$dir"
umask 077
key=$(mktemp "$dir/.key.XXXXXX")
trap 'rm -f "$key" "$dir/.secret.yaml.tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -keyout "$key" -out "$dir/tls.crt" -subj "/CN=$host" \
    -addext "subjectAltName=DNS:$host" 2>/dev/null
chmod 0644 "$dir/tls.crt"
cat > "$dir/.secret.yaml.tmp" <<YAML
# Written by demo/tls-secret.sh: a self-signed certificate for $host. Holds a private key.
apiVersion: v1
kind: Secret
metadata:
  name: $name
  namespace: $namespace
type: kubernetes.io/tls
data:
  tls.crt: $(openssl base64 -A < "$dir/tls.crt")
  tls.key: $(openssl base64 -A < "$key")
YAML
mv "$dir/.secret.yaml.tmp" "$dir/secret.yaml"
