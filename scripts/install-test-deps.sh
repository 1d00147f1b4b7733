#!/usr/bin/env bash
# Installs what the integration tests need on Debian 12 with Node 20, as root. Idempotent:
# apt runs only when a package is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  docker-registry skopeo umoci apache2-utils openssl nginx-light wrk containerd podman
  docker.io # dockerd pulls through registry-mirrors (test/clients/dockerd.test.ts)
  ca-certificates git curl # curl: proxy tests and the bench
  chromium # the status page's browser test (playwright-core drives Debian's chromium)
  pebble # ACME test server for the TLS tests
  swift swift-proxy swift-object swift-container swift-account memcached # S3 (s3api) for scale-out tests
  redis-server # fleet coordination tests
  util-linux # setpriv: fixture processes die with the test process
)

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$package")
done

if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
fi

npm ci
