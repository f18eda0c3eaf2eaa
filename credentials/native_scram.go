package credentials

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
)

// SCRAMIterations is the iteration count of SCRAMSHA256Verifier; it
// matches PostgreSQL's default scram_iterations (4096).
const SCRAMIterations = 4096

// MintedSCRAMIterations is the iteration count of the verifiers of minted
// session roles. PBKDF2's iterations slow down guessing a low-entropy
// password from a leaked verifier; a minted password is 256 random bits,
// which no number of guesses finds, so stretching it protects nothing and
// costs every connect twice (building the verifier, and the gateway's own
// SCRAM login, which repeats PBKDF2 with the count the server sends).
// PostgreSQL accepts any count >= 1 (16's scram_iterations has minimum 1).
const MintedSCRAMIterations = 1

// SCRAMSHA256Verifier returns a PostgreSQL SCRAM-SHA-256 password verifier
// ("SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>", RFC 5802/7677) for
// password with a fresh 16-byte random salt. Sending the verifier instead of
// the password (CREATE/ALTER ROLE ... PASSWORD '<verifier>') keeps the
// cleartext out of the server's logs and statistics. The password must be
// ASCII without control characters (SASLprep is then the identity), which
// holds for every password pgwarden generates.
func SCRAMSHA256Verifier(password string) (string, error) {
	return saltedVerifier(password, SCRAMIterations)
}

// mintedVerifier is SCRAMSHA256Verifier with MintedSCRAMIterations, for
// the random passwords of minted roles only.
func mintedVerifier(password string) (string, error) {
	return saltedVerifier(password, MintedSCRAMIterations)
}

// saltedVerifier is the verifier of password with a fresh 16-byte random
// salt and iter iterations.
func saltedVerifier(password string, iter int) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return scramVerifier(password, salt, iter)
}

func scramVerifier(password string, salt []byte, iter int) (string, error) {
	for i := 0; i < len(password); i++ {
		if c := password[i]; c < 0x20 || c > 0x7e {
			return "", fmt.Errorf("scram: password must be printable ASCII")
		}
	}
	stored, server, err := scramKeys(password, salt, iter)
	if err != nil {
		return "", err
	}
	b64 := base64.StdEncoding.EncodeToString
	return "SCRAM-SHA-256$" + strconv.Itoa(iter) + ":" + b64(salt) + "$" + b64(stored) + ":" + b64(server), nil
}

// scramKeys derives StoredKey and ServerKey (RFC 5802 section 3).
func scramKeys(password string, salt []byte, iter int) (storedKey, serverKey []byte, err error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		return nil, nil, err
	}
	clientKey := hmacSHA256(salted, "Client Key")
	sum := sha256.Sum256(clientKey)
	serverKey = hmacSHA256(salted, "Server Key")
	clear(salted)
	clear(clientKey)
	return sum[:], serverKey, nil
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
