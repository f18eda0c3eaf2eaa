package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgwarden/pgwarden/internal/login"
)

// loginFlags are shared by `login` and `psql`.
type loginFlags struct {
	issuer, clientID, config string
	scopes                   []string
}

// client builds the login client from the client config file and flags
// (flags win).
func (f *loginFlags) client(prompt io.Writer) (*login.Client, *login.ClientConfig, error) {
	cc, err := login.LoadClientConfig(f.config)
	if err != nil {
		return nil, nil, usageError{err}
	}
	if f.issuer != "" {
		cc.Issuer = f.issuer
	}
	if f.clientID != "" {
		cc.ClientID = f.clientID
	}
	if len(f.scopes) > 0 {
		cc.Scopes = f.scopes
	}
	if cc.Issuer == "" {
		return nil, nil, usageError{errorf("no issuer: pass --issuer URL or set issuer: in %s", configHint(f.config))}
	}
	c, err := login.New(login.Options{Issuer: cc.Issuer, ClientID: cc.ClientID, Scopes: cc.Scopes, Prompt: prompt})
	if err != nil {
		return nil, nil, usageError{err}
	}
	return c, cc, nil
}

func configHint(explicit string) string {
	if explicit != "" {
		return explicit
	}
	if p, err := login.DefaultConfigPath(); err == nil {
		return p
	}
	return "the client config"
}

func (f *loginFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.issuer, "issuer", "", "OpenID Provider URL (default: issuer: in the client config)")
	c.Flags().StringVar(&f.clientID, "client-id", "", "OAuth client id (default: client_id: in the client config, else "+login.DefaultClientID+")")
	c.Flags().StringSliceVar(&f.scopes, "scope", nil, "scopes to request (default: openid,offline_access)")
	c.Flags().StringVar(&f.config, "config", "", "client config file (default: the user config dir's pgwarden/client.yaml)")
}

func loginCmd(g *globals) *cobra.Command {
	var f loginFlags
	var print, saml bool
	var admin, gwConfig string
	c := &cobra.Command{
		Use:   "login [--issuer URL] [--client-id ID] [--scope S] [--print] [--config client.yaml] | login --saml [--admin URL]",
		Short: "log in with the OAuth 2.0 device flow and cache the token; --print prints a valid token (refreshing or logging in as needed)",
		Long: `login runs the OAuth 2.0 device authorization grant against the issuer: it shows
a URL and a code on stderr, waits until you approve in a browser, and caches
the access and refresh tokens (0600) in the user cache dir.

With --print it prints only the access token on stdout, reusing the cached
token while it is valid and refreshing it silently when it has expired, so

  PGPASSWORD=$(pgwarden login --print) psql "host=... sslmode=require"

works without a prompt once you have logged in.

With --saml it signs in through the gateway's SAML web login instead (for IdPs
that speak SAML only): it prints a URL of the admin listener (--admin, else
admin.listen of --gateway-config) to open in a browser, waits for the browser
to come back to a loopback port, and prints the short-lived token pgwarden
issued on stdout:

  PGPASSWORD=$(pgwarden login --saml --admin https://pgwarden.example.com) psql ...`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if saml {
				base, err := adminURL(admin, gwConfig)
				if err != nil {
					return err
				}
				return samlLogin(cmd.Context(), base, g.stderr, g.stdout)
			}
			client, _, err := f.client(g.stderr)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if print {
				tok, err := client.Token(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintln(g.stdout, tok.AccessToken)
				return nil
			}
			tok, err := client.Login(ctx)
			if err != nil {
				return err
			}
			who := login.UserFromToken(tok.AccessToken)
			if who == "" {
				who = "(unknown user)"
			}
			fmt.Fprintf(g.stderr, "Logged in as %s; token valid until %s, cached in %s\n", who, tok.Expiry.Local().Format(time.DateTime), client.CachePath())
			return nil
		},
	}
	f.register(c)
	c.Flags().BoolVar(&print, "print", false, "print only the access token on stdout")
	c.Flags().BoolVar(&saml, "saml", false, "sign in through the gateway's SAML web login and print the token it issues")
	c.Flags().StringVar(&admin, "admin", "", "admin listener URL for --saml (default: admin.listen of --gateway-config, else http://127.0.0.1:6480)")
	c.Flags().StringVar(&gwConfig, "gateway-config", "", "the gateway's configuration file, to find the admin listener for --saml")
	return c
}
