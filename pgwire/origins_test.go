package pgwire

import (
	"net"
	"testing"
)

// An attribution lives as long as the dialed connection, and only the
// server side of that connection (its peer address) sees it.
func TestOriginsLiveWithTheConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var o Origins
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := o.Attribute(raw, "203.0.113.7:4242")
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	s := &Server{cfg: Config{Origins: &o}}
	if got := s.clientAddr(srv); got != "203.0.113.7:4242" {
		t.Fatalf("attributed connection: client_addr %q", got)
	}
	other, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	srv2, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	if got := s.clientAddr(srv2); got != srv2.RemoteAddr().String() {
		t.Fatalf("unattributed connection: client_addr %q, want its peer %s", got, srv2.RemoteAddr())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.Close() // twice: no panic
	if got := s.clientAddr(srv); got != srv.RemoteAddr().String() {
		t.Fatalf("after Close the attribution stayed: %q", got)
	}
	var none *Origins
	if none.Attribute(other, "x") != other {
		t.Fatal("a nil Origins wrapped the connection")
	}
	if _, ok := none.of(srv.RemoteAddr()); ok {
		t.Fatal("a nil Origins attributed")
	}
	if o.Attribute(other, "") != other {
		t.Fatal("an empty origin wrapped the connection")
	}
}
