//go:build !linux

package filestore

import "os"

// Elsewhere than on Linux the active segment is a plain appending file
// (one write(2) per flush); readers' zero-tail handling is then unused.
var openSegFile = func(path string) (segFile, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
}
