-- Let the migrating login role act as concierge_app (services run `SET ROLE concierge_app`).
-- A superuser needs no grant; a CREATEROLE admin on managed Postgres (16+) gets no SET right
-- on roles it creates unless granted explicitly.
DO $$
BEGIN
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    RETURN;
  END IF;
  IF current_setting('server_version_num')::int >= 160000 THEN
    EXECUTE format('GRANT concierge_app TO %I WITH SET TRUE, INHERIT FALSE', current_user);
  ELSE
    EXECUTE format('GRANT concierge_app TO %I', current_user);
  END IF;
END
$$;
