-- Run once, when the compose PostgreSQL is first created (postgres --single -j: statements end with a
-- semicolon and a blank line). grantline holds the services' own tables (review inbox, read side);
-- grantline_target stands for a system whose access Grantline governs, with the roles the demo
-- catalogue's entitlements grant (GRANTLINE_PG_ROLES).
CREATE DATABASE grantline_target;

CREATE ROLE analytics_read NOLOGIN;

CREATE ROLE payments_admin NOLOGIN;

CREATE ROLE reporting_read NOLOGIN;
