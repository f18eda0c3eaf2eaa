// Package gwtoken issues and verifies pgwarden's own short-lived gateway
// tokens: after a login that yields no OIDC token pgwarden can pass on
// (SAML), it signs an ES256 JWT with its own P-256 key, publishes the public
// key at /.well-known/jwks.json (JWKSHandler) under the issuer
// admin.public_url, and the Postgres listener and the admin API accept the
// token like an OIDC token (Verifier, routed by identity.Multi).
//
// A gateway token carries iss, aud (auth.oidc.audience), sub, iat, nbf,
// exp, a random jti and the IdP's claim names: the username under
// auth.oidc.username_claim and the groups under auth.oidc.groups_claim, as
// literal top-level keys (identity's claim lookup tries the literal key
// first, so a dotted name such as "realm_access.roles" still resolves).
// A token issued for a delegated principal (Principal.Actor set) also
// carries an RFC 8693 "act" object with the actor's sub and the effective
// groups, and the verifier reads "act" as identity.OIDC does
// (identity.WithActor), so a delegated principal stays delegated.
// Its lifetime is auth.gateway_tokens.ttl (default 1h, at most 12h) and
// never outlives the principal it was issued for.
//
// The signing key lives in a PEM file (KeyFile) created with mode 0600 on
// first use and reused afterwards, so tokens survive a restart; a key file
// readable by group or others, or holding anything but an EC P-256 private
// key, is refused.
//
// What it must never do: accept a token it did not sign (ES256 only, the
// key id must be its own, iss and aud exact), serve a private key part, or
// put a token into an error or a log.
package gwtoken
