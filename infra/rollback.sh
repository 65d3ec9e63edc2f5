#!/usr/bin/env bash
# infra/rollback.sh VERSION [STAGE] - the seed's emergency rollback: point the active-model parameter at VERSION.
#
# This is the break-glass path. It performs NO checks: not that VERSION exists, not that its bundle
# verifies, and it records nothing in the registry. A predict instance that is handed a missing or
# tampered version refuses it and keeps serving its last good model, so a wrong VERSION cannot take
# serving down, but it also does not switch. The checked path (version exists, checksums verify,
# registry statuses with who/when/why, "previous") is `nbaml rollback` or POST /admin/rollback.
#
# The parameter name is read from template.yaml (ActiveModelParameter's `Name: !Sub ...${Stage}...`), so the
# template stays its one source. Every warm predict instance re-reads it within MODEL_PARAM_MAX_AGE_SECONDS
# (about 30 s on AWS), with no restart.
#
# AWS_ENDPOINT_URL, when set, is passed as --endpoint-url (the local stack's moto server, or LocalStack);
# otherwise the AWS CLI's own credentials and region decide where the write goes.
# Without the `aws` CLI on PATH, the same one-parameter write runs through boto3:
#   python -m infra rollback --raw VERSION --parameter PARAM   (PYTHON overrides the interpreter)
#
# Usage: infra/rollback.sh v1            # stage dev
#        infra/rollback.sh v20240101_050000 prod
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 || "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    echo "usage: $0 VERSION [STAGE]   (STAGE defaults to dev)" >&2
    exit 64
fi

VERSION="$1"
STAGE="${2:-dev}"
TEMPLATE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/template.yaml"
NAME_PATTERN="$(awk '/^  ActiveModelParameter:/ {found=1} found && /Name: !Sub / {print $NF; exit}' "${TEMPLATE}")"
if [[ -z "${NAME_PATTERN}" ]]; then
    echo "rollback.sh: no ActiveModelParameter Name in ${TEMPLATE}" >&2
    exit 1
fi
PARAM="${NAME_PATTERN//\$\{Stage\}/${STAGE}}"
BY="${USER:-$(id -un 2>/dev/null || echo unknown)}"
DESCRIPTION="rollback.sh by ${BY}: emergency rollback to ${VERSION} (unchecked)"

if command -v aws >/dev/null 2>&1 && aws --version >/dev/null 2>&1; then
    endpoint_args=()
    if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
        endpoint_args=(--endpoint-url "${AWS_ENDPOINT_URL}")
    fi
    echo "rollback.sh: path aws-cli (aws ssm put-parameter${AWS_ENDPOINT_URL:+ at ${AWS_ENDPOINT_URL}})"
    new_version="$(aws "${endpoint_args[@]}" ssm put-parameter \
        --name "${PARAM}" --value "${VERSION}" --type String --overwrite \
        --description "${DESCRIPTION}" --query Version --output text)"
    echo "rollback.sh: wrote ${PARAM} = ${VERSION} (parameter version ${new_version})"
else
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    python="${PYTHON:-}"
    if [[ -z "${python}" ]]; then
        if [[ -x "${here}/../.venv/bin/python" ]]; then
            python="${here}/../.venv/bin/python"
        else
            python="python3"
        fi
    fi
    echo "rollback.sh: path python (no aws CLI on PATH): ${python} -m infra rollback --raw"
    cd "${here}/.."
    "${python}" -m infra rollback --raw "${VERSION}" --parameter "${PARAM}" --by "${BY}"
fi
