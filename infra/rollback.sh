#!/usr/bin/env bash
# infra/rollback.sh VERSION [STAGE] - the seed's emergency rollback: point the active-model parameter at VERSION.
#
# This is the break-glass path: one parameter write, no registry, no lock. It checks two things first,
# because a cold predict instance has no last good model to fall back on, so a typo here would make every
# new instance answer 503: VERSION must be a model version (v1 or vYYYYMMDD_HHMMSS, as nbaml.bundle
# spells it), and its bundle must be committed (its manifest, models/VERSION/manifest.json as
# nbaml/layout.py spells it, exists in the artifact bucket). It does not verify the checksums, nor record
# who/when/why in the registry: the checked path is `nbaml rollback` or POST /admin/rollback. A warm
# instance handed a tampered bundle refuses it and keeps serving its last good model.
#
# The parameter and bucket names are read from template.yaml (ActiveModelParameter's and ArtifactBucket's
# `!Sub ...` names), so the template stays their one source; the account comes from STS, the region from
# AWS_REGION / AWS_DEFAULT_REGION or the AWS CLI's configuration. Every warm predict instance re-reads the
# parameter within MODEL_PARAM_MAX_AGE_SECONDS (about 30 s on AWS), with no restart.
#
# AWS_ENDPOINT_URL, when set, is passed as --endpoint-url (the local stack's moto server, or LocalStack);
# otherwise the AWS CLI's own credentials and region decide where the write goes.
# Without the `aws` CLI on PATH, the same checks and write run through boto3:
#   python -m infra rollback --raw VERSION --parameter PARAM --stage STAGE   (PYTHON overrides the interpreter)
#
# Written for bash 3.2 (macOS's /bin/bash) as well as bash 5: no arrays, no bash-4 expansions.
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
VERSION_PATTERN='^v([1-9][0-9]{0,5}|[0-9]{8}_[0-9]{6})$'
if [[ ! "${VERSION}" =~ ${VERSION_PATTERN} ]]; then
    echo "rollback.sh: '${VERSION}' is not a model version (v1 or vYYYYMMDD_HHMMSS); nothing written" >&2
    exit 65
fi

TEMPLATE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/template.yaml"
template_name() {  # the `Name: !Sub ...` (or BucketName) of one resource of the template
    awk -v resource="  $1:" -v key="$2: !Sub " \
        '$0 == resource {found=1; next} found && /^  [A-Za-z]/ {exit} found && index($0, key) {print $NF; exit}' \
        "${TEMPLATE}"
}
NAME_PATTERN="$(template_name ActiveModelParameter Name)"
BUCKET_PATTERN="$(template_name ArtifactBucket BucketName)"
if [[ -z "${NAME_PATTERN}" || -z "${BUCKET_PATTERN}" ]]; then
    echo "rollback.sh: no ActiveModelParameter Name or ArtifactBucket BucketName in ${TEMPLATE}" >&2
    exit 1
fi
PARAM="${NAME_PATTERN//\$\{Stage\}/${STAGE}}"
MANIFEST_KEY="models/${VERSION}/manifest.json"
BY="${USER:-$(id -un 2>/dev/null || echo unknown)}"
DESCRIPTION="rollback.sh by ${BY}: emergency rollback to ${VERSION} (unchecked)"

aws_cli() {  # the aws CLI, pointed at AWS_ENDPOINT_URL when it is set
    if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
        aws --endpoint-url "${AWS_ENDPOINT_URL}" "$@"
    else
        aws "$@"
    fi
}

if command -v aws >/dev/null 2>&1 && aws --version >/dev/null 2>&1; then
    echo "rollback.sh: path aws-cli (aws ssm put-parameter${AWS_ENDPOINT_URL:+ at ${AWS_ENDPOINT_URL}})"
    account="$(aws_cli sts get-caller-identity --query Account --output text)"
    region="${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region || true)}}"
    bucket="${BUCKET_PATTERN//\$\{Stage\}/${STAGE}}"
    bucket="${bucket//\$\{AWS::AccountId\}/${account}}"
    bucket="${bucket//\$\{AWS::Region\}/${region}}"
    if ! aws_cli s3api head-object --bucket "${bucket}" --key "${MANIFEST_KEY}" >/dev/null 2>&1; then
        echo "rollback.sh: ${VERSION} has no committed bundle (s3://${bucket}/${MANIFEST_KEY}); nothing written" >&2
        exit 66
    fi
    new_version="$(aws_cli ssm put-parameter \
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
    "${python}" -m infra rollback --raw "${VERSION}" --parameter "${PARAM}" --stage "${STAGE}" --by "${BY}"
fi
