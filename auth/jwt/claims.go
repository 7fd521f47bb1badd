package jwt

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// Claims are the verified claims of a token.
type Claims struct {
	// Subject is the claim named by Config.SubjectClaim ("sub"); empty when
	// absent.
	Subject string
	// Scopes is the claim named by Config.ScopesClaim ("scope"), split on
	// spaces when it is a string; nil when absent.
	Scopes []string
	// Issuer is "iss"; empty when absent.
	Issuer string
	// Audience is "aud" (a string is a list of one); nil when absent.
	Audience []string
	// Expiry is "exp".
	Expiry time.Time
	// Raw is every claim, as encoding/json decodes it into a map[string]any
	// (numbers are float64).
	Raw map[string]any

	notBefore, issuedAt time.Time // "nbf" and "iat"; zero when absent

	jsonOnce sync.Once
	json     string
}

// JSON returns Raw encoded as JSON (keys sorted), encoded on the first
// call only: the Claims of a remembered token are shared by its calls.
func (c *Claims) JSON() string {
	c.jsonOnce.Do(func() {
		if b, err := json.Marshal(c.Raw); err == nil {
			c.json = string(b)
		}
	})
	return c.json
}

// Bounds of a NumericDate: the years 1 to 9999.
const (
	minNumericDate = -62135596800
	maxNumericDate = 253402300799
)

// numericDate reads a NumericDate claim (seconds since the epoch, maybe
// fractional); ok is false when v is not a number.
func numericDate(v any) (t time.Time, ok bool) {
	f, ok := v.(float64)
	if !ok || math.IsNaN(f) {
		return time.Time{}, false
	}
	f = min(max(f, minNumericDate), maxNumericDate)
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
}

// checkClaims decodes a verified payload and checks its claims at now.
func (v *Verifier) checkClaims(payload []byte, now time.Time) (*Claims, *Error) {
	var raw map[string]any
	if err := json.Unmarshal(payload, &raw); err != nil || raw == nil {
		return nil, fail(reasonMalformed, "token claims are not a JSON object")
	}
	skew := v.cfg.ClockSkew
	c := &Claims{Raw: raw}

	expV, ok := raw["exp"]
	if !ok {
		return nil, fail(reasonMissingExp, `token has no expiry ("exp")`)
	}
	exp, ok := numericDate(expV)
	if !ok {
		return nil, fail(reasonMalformed, `token claim "exp" is not a number`)
	}
	if !now.Before(exp.Add(skew)) {
		return nil, fail(reasonExpired, "token is expired")
	}
	c.Expiry = exp
	if nbfV, ok := raw["nbf"]; ok {
		nbf, ok := numericDate(nbfV)
		if !ok {
			return nil, fail(reasonMalformed, `token claim "nbf" is not a number`)
		}
		if now.Add(skew).Before(nbf) {
			return nil, fail(reasonNotYetValid, `token is not valid yet ("nbf")`)
		}
		c.notBefore = nbf
	}
	if iatV, ok := raw["iat"]; ok {
		iat, ok := numericDate(iatV)
		if !ok {
			return nil, fail(reasonMalformed, `token claim "iat" is not a number`)
		}
		if iat.After(now.Add(skew)) {
			return nil, fail(reasonIssuedInFuture, `token is issued in the future ("iat")`)
		}
		c.issuedAt = iat
	}

	if issV, ok := raw["iss"]; ok {
		if c.Issuer, ok = issV.(string); !ok {
			return nil, fail(reasonMalformed, `token claim "iss" is not a string`)
		}
	}
	if v.cfg.Issuer != "" && c.Issuer != v.cfg.Issuer {
		return nil, fail(reasonIssuer, "token issuer is not accepted")
	}

	switch aud := raw["aud"].(type) {
	case nil:
		if _, present := raw["aud"]; present {
			return nil, fail(reasonMalformed, `token claim "aud" is not a string or an array of strings`)
		}
	case string:
		c.Audience = []string{aud}
	case []any:
		c.Audience = make([]string, len(aud))
		for i, a := range aud {
			s, ok := a.(string)
			if !ok {
				return nil, fail(reasonMalformed, `token claim "aud" is not a string or an array of strings`)
			}
			c.Audience[i] = s
		}
	default:
		return nil, fail(reasonMalformed, `token claim "aud" is not a string or an array of strings`)
	}
	if len(v.cfg.Audiences) > 0 && !slices.ContainsFunc(c.Audience, func(a string) bool {
		return slices.Contains(v.cfg.Audiences, a)
	}) {
		return nil, fail(reasonAudience, "token audience is not accepted")
	}

	if subV, ok := raw[v.cfg.SubjectClaim]; ok {
		if c.Subject, ok = subV.(string); !ok {
			return nil, fail(reasonMalformed, "token claim "+v.subjectName+" is not a string")
		}
	}
	switch sc := raw[v.cfg.ScopesClaim].(type) {
	case nil:
		if _, present := raw[v.cfg.ScopesClaim]; present {
			return nil, fail(reasonMalformed, "token claim "+v.scopesName+" is not a string or an array of strings")
		}
	case string:
		c.Scopes = strings.Fields(sc)
	case []any:
		c.Scopes = make([]string, 0, len(sc))
		for _, s := range sc {
			str, ok := s.(string)
			if !ok {
				return nil, fail(reasonMalformed, "token claim "+v.scopesName+" is not a string or an array of strings")
			}
			c.Scopes = append(c.Scopes, str)
		}
	default:
		return nil, fail(reasonMalformed, "token claim "+v.scopesName+" is not a string or an array of strings")
	}
	return c, nil
}
