package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/pgwarden/pgwarden/config"
)

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// loadOptionalConfig loads --config when given (nil config when not).
func loadOptionalConfig(path string) (*config.Config, error) {
	if path == "" {
		return nil, nil
	}
	return config.Load(path)
}

// loadRequiredConfig loads --config, a usage error when it is not given.
func loadRequiredConfig(path string) (*config.Config, error) {
	if path == "" {
		return nil, usageError{errorf("--config is required")}
	}
	return config.Load(path)
}

// tokenFrom resolves a bearer token: the flag, else PGWARDEN_TOKEN.
func tokenFrom(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if t := os.Getenv("PGWARDEN_TOKEN"); t != "" {
		return t, nil
	}
	return "", usageError{errors.New("a token is required: --token or PGWARDEN_TOKEN")}
}
