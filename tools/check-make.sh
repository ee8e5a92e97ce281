#!/usr/bin/env bash
# Fails when GNU make warns about the Makefile (e.g. "overriding recipe for target", where make
# silently keeps the last of two recipes): the README's commands must do what they say.
# `make test` runs it first; it only prints the recipes (-n), it runs none.
set -euo pipefail
cd "$(dirname "$0")/.."
warnings=$(make -n demo test 2>&1 >/dev/null | grep -i 'warning' || true)
if [ -n "$warnings" ]; then
  echo "make: the Makefile has warnings (make test treats them as errors):" >&2
  echo "$warnings" >&2
  exit 1
fi
