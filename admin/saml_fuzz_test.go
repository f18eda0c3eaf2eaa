package admin

import (
	"encoding/base64"
	"net/http"
	"sync"
	"testing"
)

// FuzzSAMLACS posts arbitrary bytes as the SAMLResponse of a sign-in this
// browser really started: the ACS must never panic, never answer 2xx and
// never open a session for them. Seeds include a correctly signed
// response with single bytes changed.
func FuzzSAMLACS(f *testing.F) {
	var once sync.Once
	var fx *samlFixture
	setup := func(t *testing.T) *samlFixture {
		once.Do(func() { fx = newSAMLFixture(t) })
		fx.t = t
		return fx
	}
	f.Add([]byte(""), false)
	f.Add([]byte("<samlp:Response/>"), false)
	f.Add([]byte("not base64 at all %%%"), true)
	f.Fuzz(func(t *testing.T, data []byte, raw bool) {
		fx := setup(t)
		fl := fx.start("")
		resp := base64.StdEncoding.EncodeToString(data)
		if raw {
			resp = string(data)
		}
		rr := fx.post(fl, resp, true)
		if rr.Code < 400 || sessionCookieOf(rr) != nil {
			t.Fatalf("ACS answered %d (session cookie %v) for fuzzed bytes", rr.Code, sessionCookieOf(rr) != nil)
		}
		if rr.Code == http.StatusOK {
			t.Fatal("200 for fuzzed bytes")
		}
	})
}

// TestSAMLACSCorruptedSigned: a correctly signed response with one byte of
// its XML changed is refused (the seed class of FuzzSAMLACS, made concrete).
func TestSAMLACSCorruptedSigned(t *testing.T) {
	fx := newSAMLFixture(t)
	signedFor := func() (*flow, []byte) {
		fl := fx.start("")
		fx.assert(fl)
		xml, err := base64.StdEncoding.DecodeString(fx.signed(fl))
		if err != nil {
			t.Fatal(err)
		}
		return fl, xml
	}
	for _, frac := range []int{3, 2} { // a byte a third and half way in
		fl, xml := signedFor()
		xml[len(xml)/frac] ^= 0x01
		if rr := fx.post(fl, base64.StdEncoding.EncodeToString(xml), true); rr.Code < 400 || sessionCookieOf(rr) != nil {
			t.Fatalf("byte %d of %d changed: %d", len(xml)/frac, len(xml), rr.Code)
		}
	}
	// The control: the same response unchanged opens a session.
	fl, xml := signedFor()
	if rr := fx.post(fl, base64.StdEncoding.EncodeToString(xml), true); sessionCookieOf(rr) == nil {
		t.Fatalf("the unchanged response was refused: %d %s", rr.Code, rr.Body)
	}
}
