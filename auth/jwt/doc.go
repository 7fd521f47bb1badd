// Package jwt verifies the gateway's bearer tokens: JSON Web Tokens (RFC
// 7519) in JWS compact serialization, signed with an asymmetric key that an
// issuer publishes in a JSON Web Key Set (a file, or an https URL).
//
// A Verifier is built once from a Config (New checks it and loads the keys,
// or fails) and is safe for concurrent use. Verify checks, in this order:
//
//  1. the size (Config.MaxTokenBytes) and the shape (three base64url parts,
//     canonically encoded);
//  2. the header, decoded before any key is looked up: "alg" must be in the
//     allowlist (compared case-sensitively; "none" and HMAC algorithms can
//     never be allowed), "typ" absent, "JWT" or "at+jwt", no "crit";
//  3. the key: chosen by "kid", which is only ever a key of an in-memory map
//     (never a path or a URL, and no header such as "jku", "x5u" or "jwk" is
//     ever followed); a token without "kid" is accepted only when exactly one
//     key of the set fits its algorithm. The key's type must fit the
//     algorithm's family (an RSA key never verifies an HMAC or ECDSA token)
//     and the key's own "alg", when set, must equal the token's;
//  4. the signature;
//  5. the claims: "exp" is required; "exp", "nbf" and "iat" are checked with
//     Config.ClockSkew; then "iss" and "aud" when configured.
//
// Keys are refreshed on Config.RefreshInterval, and also when a token names
// an unknown "kid", but never more than once per Config.MinRefreshInterval,
// and concurrent callers share one fetch, so a flood of tokens with random
// key ids costs a bounded number of fetches. A failed refresh keeps the last
// good key set.
//
// Every verification failure is an *Error whose Reason is one of these
// stable tokens, for logs and metrics:
//
//	malformed         not a compact JWS, bad base64 or JSON, a claim of the wrong type
//	too_large         longer than Config.MaxTokenBytes
//	algorithm         "alg" not in the allowlist
//	typ               "typ" not JWT or at+jwt
//	unknown_kid       no key with the token's "kid", even after a refresh
//	missing_kid       no "kid", and not exactly one key fits the algorithm
//	key_mismatch      the key's type or own "alg" does not fit the token's "alg"
//	signature         the signature does not verify
//	missing_exp       no "exp" claim
//	expired           "exp" is past (beyond the skew)
//	not_yet_valid     "nbf" is in the future (beyond the skew)
//	issued_in_future  "iat" is in the future (beyond the skew)
//	issuer            "iss" is not Config.Issuer
//	audience          "aud" names none of Config.Audiences
package jwt
