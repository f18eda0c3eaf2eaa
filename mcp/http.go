package mcp

import (
	"context"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pgwarden/pgwarden/admin"
	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/internal/httpjson"
	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// HTTPOptions configure the streamable HTTP endpoint.
type HTTPOptions struct {
	// Verifier checks every request's bearer token (the gateway's own: OIDC
	// and gateway-issued tokens).
	Verifier identity.Verifier
	// Database is the database a request's session opens: ?database=D
	// when it names one the gateway serves, else the default. An error
	// (a *pgerr.Error) refuses the request with 400.
	Database func(r *http.Request) (string, error)
	// SessionTimeout closes a session idle this long (its gateway session
	// ends with it); 0 keeps idle sessions.
	SessionTimeout time.Duration
}

// callerKey is where the verified Caller travels in auth.TokenInfo.Extra.
const callerKey = "pgwarden.caller"

type tokenInfoKey struct{}

// HTTPHandler serves MCP's streamable HTTP transport. Every request must
// carry "Authorization: Bearer <token>" that Verifier accepts (else 401
// with WWW-Authenticate and {"error": "pgwarden: ..."}; 503 while the
// identity provider cannot be reached); a session's later requests must
// carry a token of the same identity (else 403). The session's gateway
// connection logs in with the newest request's token.
func (s *Server) HTTPHandler(o HTTPOptions) http.Handler {
	streamable := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s.sdk },
		&sdk.StreamableHTTPOptions{
			SessionTimeout: o.SessionTimeout,
			// The SDK's DNS-rebinding guard refuses a loopback listener's
			// requests whose Host is not loopback, which would break a
			// reverse proxy on the gateway's host. It protects servers that
			// trust whoever can reach them; every request here needs a
			// bearer token that a rebinding page cannot have.
			DisableLocalhostProtection: true,
		})
	// The SDK binds a session to TokenInfo.UserID (403 for another
	// identity); it gets the TokenInfo the middleware below verified.
	bound := auth.RequireBearerToken(func(_ context.Context, _ string, r *http.Request) (*auth.TokenInfo, error) {
		if ti, ok := r.Context().Value(tokenInfoKey{}).(*auth.TokenInfo); ok {
			return ti, nil
		}
		return nil, auth.ErrInvalidToken
	}, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(streamable)

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		token, ok := admin.BearerToken(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pgwarden"`)
			httpjson.Error(w, http.StatusUnauthorized, "pgwarden: a bearer token is required (Authorization: Bearer <token>)")
			return
		}
		p, err := o.Verifier.Verify(r.Context(), token, "")
		if err != nil {
			short := "invalid token"
			ref, isRef := identity.AsRefusal(err)
			if isRef {
				short = ref.Short()
			}
			s.log.Info().Str("remote", r.RemoteAddr).Err(err).Msg("mcp token refused")
			if isRef && ref.Reason == identity.ReasonUnavailable {
				w.Header().Set("Retry-After", "5")
				httpjson.Error(w, http.StatusServiceUnavailable, "pgwarden: "+short)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="pgwarden", error="invalid_token", error_description="`+short+`"`)
			httpjson.Error(w, http.StatusUnauthorized, "pgwarden: "+short)
			return
		}
		db, err := o.Database(r)
		if err != nil {
			msg := "pgwarden: no database for this session"
			if pe, ok := pgerr.As(err); ok {
				msg = pe.Message
			}
			httpjson.Error(w, http.StatusBadRequest, msg)
			return
		}
		// Tool calls may wait for an approval, and the standalone event
		// stream stays open: the admin listener's write timeout does not
		// apply here (sessions end on their idle timeout).
		_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
		c := callerOf(p, db, token, r.RemoteAddr)
		ti := &auth.TokenInfo{UserID: c.key(), Extra: map[string]any{callerKey: c}}
		bound.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenInfoKey{}, ti)))
	})
}

// callerOf is the identity a verified principal's session acts as.
func callerOf(p identity.Principal, database, token, remote string) Caller {
	return Caller{
		User: p.User, Actor: p.Actor, Database: database, Remote: remote,
		Token: func(context.Context) (string, error) { return token, nil },
	}
}

// callerOf returns the identity a tool call acts for: the HTTP request's
// verified caller, or the stdio session's.
func (s *Server) callerOf(req *sdk.CallToolRequest) (Caller, error) {
	if req.Extra != nil && req.Extra.TokenInfo != nil {
		if c, ok := req.Extra.TokenInfo.Extra[callerKey].(Caller); ok {
			return c, nil
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stdio != nil {
		return *s.stdio, nil
	}
	return Caller{}, pgerr.New(pgerr.InvalidPassword, "pgwarden: this call carries no verified identity")
}
