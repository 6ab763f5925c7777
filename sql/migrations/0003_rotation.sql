-- Schema version 4: rotation with overlap. Applied by schema.sql, which
-- adds sts_tokens.previous_digest and previous_until, the view
-- sts_token_digests, the functions sts_token_rotate and
-- sts_token_retire_previous and the change log's recording of previous
-- digests before it includes this file; nothing else has to happen once.
-- httpd processes of the previous version keep working meanwhile (they
-- know no previous digests: a rotated token's old secret stops working for
-- them at once); restart httpd with the new module afterwards.

SELECT NOT EXISTS (SELECT 1 FROM sts_schema_version WHERE version >= 4)
    AS sts_needs_0003 \gset
\if :sts_needs_0003
INSERT INTO sts_schema_version (version) VALUES (4);
\endif
