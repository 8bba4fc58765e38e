-- Database logins bound to one tenant. In a cluster every tenant namespace's services connect
-- with their own login (the operator creates it): whatever tenant such a connection names in
-- `concierge.tenant`, row-level security shows and accepts only the rows of the tenant bound
-- to the login. Shared logins (the laptop, the migrating owner) are not listed here and keep
-- choosing the tenant per transaction.
CREATE TABLE tenant_logins (
  login      name        PRIMARY KEY,
  bound_tenant text      NOT NULL CHECK (bound_tenant <> ''),
  created_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON tenant_logins FROM PUBLIC;

-- SECURITY DEFINER: a tenant login cannot read tenant_logins itself. session_user is the login
-- even after SET ROLE concierge_app.
CREATE FUNCTION concierge_login_tenant() RETURNS text
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$ SELECT bound_tenant FROM public.tenant_logins WHERE login = session_user $$;

-- Every tenant isolation policy gains the binding; `(SELECT …)` runs once per query.
DO $$
DECLARE
  p record;
  rule text := 'tenant = current_setting(''concierge.tenant'', true) '
               'AND tenant = coalesce((SELECT concierge_login_tenant()), tenant)';
BEGIN
  FOR p IN SELECT schemaname, tablename, policyname FROM pg_policies WHERE policyname LIKE '%tenant_isolation' LOOP
    EXECUTE format('ALTER POLICY %I ON %I.%I USING (%s) WITH CHECK (%s)',
                   p.policyname, p.schemaname, p.tablename, rule, rule);
  END LOOP;
END $$;
