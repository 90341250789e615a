#!/bin/sh
# manage.py as the services run it, for the operator (as root):
#
#   sudo deploy/manage.sh migrate --noinput
#   sudo deploy/manage.sh createsuperuser
#
# The same user, working directory, /etc/slotpay/slotpay.env and secrets as the units
# (deploy/systemd/slotpay-.service.d/10-slotpay.conf): each LoadCredential= file is
# copied into a private directory that only the service user can read, for the length
# of the command (as systemd does for the services), and NAME_FILE points at it. No
# secret is typed, put in the environment or left behind.
#
# SLOTPAY_USER, SLOTPAY_HOME, SLOTPAY_ENV_FILE and SLOTPAY_UNIT_DROPIN override the
# defaults below (a second instance, or a test).
set -eu

user=${SLOTPAY_USER:-slotpay}
home=${SLOTPAY_HOME:-/srv/slotpay}
env_file=${SLOTPAY_ENV_FILE:-/etc/slotpay/slotpay.env}
dropin=${SLOTPAY_UNIT_DROPIN:-/etc/systemd/system/slotpay-.service.d/10-slotpay.conf}

if [ "$(id -u)" -ne 0 ]; then
  echo "deploy/manage.sh: run it as root (it reads the root-only credentials)" >&2
  exit 1
fi

credentials=$(mktemp -d /run/slotpay-manage.XXXXXX)
trap 'rm -rf "$credentials"' EXIT INT TERM
chmod 0700 "$credentials"

# A clean environment, as systemd gives the services, plus the settings that are not
# secret (systemd's EnvironmentFile= syntax: NAME=value a line, no quotes).
exports="'PATH=/usr/local/bin:/usr/bin:/bin' 'HOME=$home' 'LANG=C.UTF-8' "
while IFS= read -r line || [ -n "$line" ]; do
  case $line in '' | \#*) continue ;; esac
  exports="$exports$(printf '%s' "$line" | sed "s/'/'\\\\''/g; s/^/'/; s/\$/'/") "
done <"$env_file"

# LoadCredential=ID:PATH -> a private copy; Environment=NAME_FILE=%d/ID -> its path.
for entry in $(sed -n 's/^LoadCredential=//p' "$dropin"); do
  id=${entry%%:*}
  install -m 0400 -o "$user" "${entry#*:}" "$credentials/$id"
done
for entry in $(sed -n 's/^Environment=\([A-Z_]*_FILE\)=%d\//\1=/p' "$dropin"); do
  exports="$exports'${entry%%=*}=$credentials/${entry#*=}' "
done
chown "$user" "$credentials"

cd "$home"
status=0
eval "runuser -u \"\$user\" -- env -i $exports \"\$home/.venv/bin/python\" manage.py \"\$@\"" || status=$?
exit $status
