#!/bin/sh
# Run once by the postgres image on an empty data directory (/docker-entrypoint-initdb.d), as
# its superuser: a role for the authorization servers, owning the database `gatehouse`, and one
# for the reference services, owning `gatehouse_apps` (their own tables; they check tokens with
# the issuer's keys and never read the authorization server's tables). Neither role is a
# superuser, may create roles or databases, or connect to the other's database. The passwords
# come from the container's environment (AUTH_DB_PASSWORD, APPS_DB_PASSWORD), never this file.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     -v auth_password="$AUTH_DB_PASSWORD" -v apps_password="$APPS_DB_PASSWORD" <<'SQL'
CREATE ROLE gatehouse_auth LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'auth_password';
CREATE ROLE gatehouse_apps LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'apps_password';
CREATE DATABASE gatehouse OWNER gatehouse_auth;
CREATE DATABASE gatehouse_apps OWNER gatehouse_apps;
REVOKE ALL ON DATABASE gatehouse FROM PUBLIC;
REVOKE ALL ON DATABASE gatehouse_apps FROM PUBLIC;
SQL
