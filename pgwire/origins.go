package pgwire

import (
	"net"
	"sync"
)

// Origins attributes connections that this process opens to its own
// listener (the MCP server's sessions) to where their work came from: the
// session records the agent's address as client_addr, not the gateway's
// loopback. Only code in this process can attribute: an entry is keyed by
// the local address of a socket this process dialed, and lives exactly as
// long as that socket (Close removes it). The zero value is ready; a nil
// *Origins attributes nothing.
type Origins struct {
	mu sync.Mutex
	m  map[string]string // dialer's local address -> origin
}

// Attribute records that the server-side peer of c (a connection this
// process dialed to the listener) is origin, and returns c wrapped so that
// closing it forgets the attribution. An empty origin, or a nil o, returns
// c unchanged.
func (o *Origins) Attribute(c net.Conn, origin string) net.Conn {
	if o == nil || origin == "" || c.LocalAddr() == nil {
		return c
	}
	key := c.LocalAddr().String()
	o.mu.Lock()
	if o.m == nil {
		o.m = make(map[string]string)
	}
	o.m[key] = origin
	o.mu.Unlock()
	return &attributedConn{Conn: c, o: o, key: key}
}

// of returns the origin attributed to a client whose address is remote.
func (o *Origins) of(remote net.Addr) (string, bool) {
	if o == nil || remote == nil {
		return "", false
	}
	key := remote.String()
	o.mu.Lock()
	defer o.mu.Unlock()
	origin, ok := o.m[key]
	return origin, ok
}

func (o *Origins) forget(key string) {
	o.mu.Lock()
	delete(o.m, key)
	o.mu.Unlock()
}

type attributedConn struct {
	net.Conn
	o    *Origins
	key  string
	once sync.Once
}

func (c *attributedConn) Close() error {
	c.once.Do(func() { c.o.forget(c.key) })
	return c.Conn.Close()
}

// clientAddr is what a session records as its client's address: the
// attributed origin of an in-process connection, else the peer address.
func (s *Server) clientAddr(raw net.Conn) string {
	if origin, ok := s.cfg.Origins.of(raw.RemoteAddr()); ok {
		return origin
	}
	return raw.RemoteAddr().String()
}
