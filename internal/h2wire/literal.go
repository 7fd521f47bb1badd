package h2wire

// appendNeverIndexed appends a header field as an HPACK literal never
// indexed (RFC 7541 §6.2.3): the name by its static-table index when the
// table has one, else as a literal, and the value as raw octets. It leaves
// the connection's dynamic table as it is, so it may follow the encoder's
// output in the same block; it searches no table and computes no Huffman
// code, which x/net's encoder does for every field.
func appendNeverIndexed(b []byte, name, value string) []byte {
	if i := staticName(name); i > 0 {
		b = appendInt(b, 0x10, 4, uint64(i))
	} else {
		b = append(b, 0x10)
		b = appendString(b, name)
	}
	return appendString(b, value)
}

// staticName is name's index in the HPACK static table (RFC 7541
// appendix A), for the names neverIndexed lists; 0 for the others.
func staticName(name string) int {
	switch name {
	case "authorization":
		return 23
	case "content-length":
		return 28
	case "cookie":
		return 32
	case "date":
		return 33
	case "proxy-authorization":
		return 49
	case "retry-after":
		return 53
	case "set-cookie":
		return 55
	}
	return 0
}

// staticField is the index of the field name: value in the HPACK static
// table, for the fields every gRPC call has that the table holds whole;
// 0 for the others.
func staticField(name, value string) byte {
	switch {
	case name == ":status" && value == "200":
		return 8
	case name == ":method" && value == "POST":
		return 3
	case name == ":scheme" && value == "http":
		return 6
	case name == ":scheme" && value == "https":
		return 7
	}
	return 0
}

// appendString appends s as an HPACK string literal without Huffman
// coding (RFC 7541 §5.2).
func appendString(b []byte, s string) []byte {
	b = appendInt(b, 0, 7, uint64(len(s)))
	return append(b, s...)
}

// appendInt appends i as an HPACK integer with an n-bit prefix, the
// prefix's octet starting with the bits of first (RFC 7541 §5.1).
func appendInt(b []byte, first byte, n uint, i uint64) []byte {
	limit := uint64(1)<<n - 1
	if i < limit {
		return append(b, first|byte(i))
	}
	b = append(b, first|byte(limit))
	for i -= limit; i >= 128; i >>= 7 {
		b = append(b, byte(0x80|i&0x7f))
	}
	return append(b, byte(i))
}
