package approvals

// Internals the external tests look at.

// ValidID reports whether s could be an ID the manager issued.
func ValidID(s string) bool { return validID(s) }

// LiveCount is the number of wait-mode requests the manager tracks.
func (m *Manager) LiveCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.live)
}

// MaxBodyBytes bounds a decision body.
const MaxBodyBytes = maxBodyBytes
