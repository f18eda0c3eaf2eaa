-- Connection profiles: the profile (upstream server) of the session that
-- held an approval request, beside its JSON record as an index for
-- listing by profile. Requests stored before profiles existed have ''.
-- (Session events need no column: the profile is in each event's line.)
ALTER TABLE pgwarden.approvals ADD COLUMN profile text NOT NULL DEFAULT '';
CREATE INDEX approvals_profile_created ON pgwarden.approvals (profile, created_at DESC, id);
