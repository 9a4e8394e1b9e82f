#!/usr/bin/env bash
# Upload a CI build's artifacts to releases/<RELEASE>/ and fail the job with a reason.
#
# FTPC_HOST, FTPC_PORT, FTPC_USER, FTPC_PASSWORD  the server and a CI secret
# RELEASE        the release folder name, e.g. the tag (required)
# ARTIFACTS      the folder holding the build's files (default: dist)
# ATTEMPTS       tries when the network fails (default: 3); RETRY_DELAY seconds between (30)
# FTPC, PYTHON   how to run ftpc and python (default: ftpc, python3)
set -uo pipefail

release=${RELEASE:?set RELEASE to the release name}
artifacts=${ARTIFACTS:-dist}
attempts=${ATTEMPTS:-3}
ftpc=${FTPC:-ftpc}
python=${PYTHON:-python3}
events=$(mktemp)
trap 'rm -f "$events"' EXIT

# Reads the NDJSON events on stdin: prints "ok skipped failed bytes" from the summary,
# and each failed file on stderr.
summarize='
import json, sys
summary = {"ok": 0, "skipped": 0, "failed": 0, "bytes": 0}
for line in sys.stdin:
    event = json.loads(line)
    if event["event"] == "error":
        print("  failed:", event["name"], "-", event["message"], file=sys.stderr)
    elif event["event"] == "summary":
        summary = event
print(summary["ok"], summary["skipped"], summary["failed"], summary["bytes"])
'

for attempt in $(seq 1 "$attempts"); do
    # Identical files already stored count as done, so a retry resends only what is missing.
    $ftpc --json put -r "$artifacts" --to "releases/$release" --jobs 4 >"$events"
    code=$?
    read -r ok skipped failed bytes < <($python -c "$summarize" <"$events")
    case $code in
    0)
        echo "release $release: $ok files uploaded ($bytes bytes), $skipped already there"
        exit 0
        ;;
    7)
        echo "attempt $attempt of $attempts: the network failed" >&2
        [ "$attempt" -lt "$attempts" ] && sleep "${RETRY_DELAY:-30}"
        ;;
    3)
        echo "the server refused the login or the upload: check the CI secret and the account" >&2
        exit "$code"
        ;;
    5)
        echo "release $release already holds different files: a release is never overwritten" >&2
        exit "$code"
        ;;
    8)
        echo "the server is out of space or over quota: $failed files not uploaded" >&2
        exit "$code"
        ;;
    *)
        echo "upload failed (ftpc exit code $code): $failed files not uploaded" >&2
        exit "$code"
        ;;
    esac
done
echo "giving up after $attempts attempts" >&2
exit 7
