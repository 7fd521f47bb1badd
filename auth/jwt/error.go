package jwt

// Error is every verification failure that Verify returns.
//
// Reason is a short, stable token for logs and metrics (the list is in the
// package documentation). Msg, which Error returns, is safe to show a client:
// it never contains the token, a key, or a claim's value, only the names of
// what failed.
type Error struct {
	Reason string
	Msg    string
}

// Error returns Msg.
func (e *Error) Error() string {
	if e.Msg == "" {
		return "invalid token (" + e.Reason + ")"
	}
	return e.Msg
}

const (
	reasonMalformed      = "malformed"
	reasonTooLarge       = "too_large"
	reasonAlgorithm      = "algorithm"
	reasonTyp            = "typ"
	reasonUnknownKID     = "unknown_kid"
	reasonMissingKID     = "missing_kid"
	reasonKeyMismatch    = "key_mismatch"
	reasonSignature      = "signature"
	reasonMissingExp     = "missing_exp"
	reasonExpired        = "expired"
	reasonNotYetValid    = "not_yet_valid"
	reasonIssuedInFuture = "issued_in_future"
	reasonIssuer         = "issuer"
	reasonAudience       = "audience"
)

func fail(reason, msg string) *Error { return &Error{Reason: reason, Msg: msg} }
