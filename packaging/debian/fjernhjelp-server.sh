#!/bin/sh
# fjernhjelp-server COMMAND...: a fjernhjelp command (`admin create-operator`, `db upgrade`,
# `audit verify`, ...) as the service's account with the service's settings, so what it
# writes in /var/lib/fjernhjelp belongs to that account. The postinst runs `db upgrade`
# through it too.
set -eu
set -a
. /usr/lib/fjernhjelp-server/package.env
. /etc/fjernhjelp/fjernhjelp.env
set +a
cd /var/lib/fjernhjelp
if [ "$(id -u)" = 0 ]; then
  HOME=/var/lib/fjernhjelp exec setpriv --reuid=fjernhjelp --regid=fjernhjelp --init-groups \
    /usr/lib/fjernhjelp-server/bin/fjernhjelp "$@"
fi
exec /usr/lib/fjernhjelp-server/bin/fjernhjelp "$@"
