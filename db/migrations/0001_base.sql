-- 0001_base: what later migrations build on.

-- Case-insensitive text: emails are unique regardless of case (API.md).
-- citext is a trusted extension, so the database owner may create it.
CREATE EXTENSION IF NOT EXISTS citext;

-- Trigger helper: keeps an updated_at column current on every UPDATE.
-- Use: CREATE TRIGGER t BEFORE UPDATE ON x
--        FOR EACH ROW EXECUTE FUNCTION th_touch_updated_at();
CREATE OR REPLACE FUNCTION th_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
