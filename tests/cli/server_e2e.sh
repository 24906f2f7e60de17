#!/usr/bin/env bash
# ctest entry for the server end-to-end test (tests/server/e2e.sh); $1 is the moeinfer binary.
exec bash "$(dirname "$0")/../server/e2e.sh" "$1"
