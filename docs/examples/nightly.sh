#!/usr/bin/env bash
# Back up one folder to ftpd every night, with the batch script beside this file.
#
# crontab -e (02:30 every night; the password comes from the profile's password_command):
#   30 2 * * *  FTPC_PROFILE=backup BACKUP_SOURCE=/srv/data /opt/ftpc/nightly.sh >>/var/log/ftpc-nightly.log 2>&1
#
# BACKUP_SOURCE  the folder to back up (required)
# BACKUP_DATE    the night's folder name (default: today, as 2026-11-22)
# FTPC           how to run ftpc (default: ftpc)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
source_dir=${BACKUP_SOURCE:?set BACKUP_SOURCE to the folder to back up}
night=${BACKUP_DATE:-$(date +%F)}
ftpc=${FTPC:-ftpc}

cd "$source_dir"
status=0
sed "s/@DATE@/$night/g" "$here/nightly.batch" | $ftpc --quiet batch - || status=$?
if [ "$status" -ne 0 ]; then
    echo "backup of $source_dir for $night failed (ftpc exit code $status)" >&2
    exit "$status"
fi

# Every line succeeded: mark the night whole.
marker=$(mktemp -d)
trap 'rm -rf "$marker"' EXIT
date -u +%Y-%m-%dT%H:%M:%SZ >"$marker/COMPLETE"
$ftpc --quiet put "$marker/COMPLETE" --to "backups/$night"
echo "backup of $source_dir for $night complete"
