package difytest

import (
	"encoding/json"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// pyDumps renders v as Python's json.dumps does with its default settings
// (separators ", " and ": ", ensure_ascii=True), which is how Dify stores a
// run's inputs and outputs in their Text columns. Map keys are sorted (a Go
// map has no order to keep).
func pyDumps(v any) string {
	var b strings.Builder
	pyWrite(&b, v)
	return b.String()
}

func pyWrite(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case string:
		pyString(b, x)
	case int:
		b.WriteString(strconv.Itoa(x))
	case int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		b.WriteString(strconv.FormatInt(reflect.ValueOf(x).Convert(reflect.TypeFor[int64]()).Int(), 10))
	case float32:
		b.WriteString(pyFloatString(float64(x)))
	case float64:
		b.WriteString(pyFloatString(x))
	case json.Number:
		b.WriteString(x.String())
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			pyString(b, k)
			b.WriteString(": ")
			pyWrite(b, x[k])
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			pyWrite(b, e)
		}
		b.WriteByte(']')
	default:
		// Anything else (structs, typed slices and maps): go through
		// encoding/json to a generic value first.
		raw, err := json.Marshal(x)
		if err != nil {
			b.WriteString("null")
			return
		}
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.UseNumber()
		var g any
		if err := dec.Decode(&g); err != nil {
			b.WriteString("null")
			return
		}
		pyWrite(b, g)
	}
}

// pyFloatString formats f like Python's float repr in JSON: integral
// values keep a ".0".
func pyFloatString(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-4 || abs >= 1e16) {
		s := strconv.FormatFloat(f, 'e', -1, 64)
		// Python writes 1e+16 as 1e+16 and 1.5e-05 with two exponent digits.
		return s
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// pyString writes s as a JSON string with ensure_ascii escaping.
func pyString(b *strings.Builder, s string) {
	b.WriteByte('"')
	pyEscape(b, s)
	b.WriteByte('"')
}

// pyEscape writes the body of an ensure_ascii JSON string.
func pyEscape(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	u4 := func(r uint16) {
		b.WriteString(`\u`)
		b.WriteByte(hex[r>>12&0xf])
		b.WriteByte(hex[r>>8&0xf])
		b.WriteByte(hex[r>>4&0xf])
		b.WriteByte(hex[r&0xf])
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r >= 0x20 && r <= 0x7e:
			b.WriteRune(r)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			u4(uint16(r1))
			u4(uint16(r2))
		default:
			u4(uint16(r))
		}
	}
}

// pyFloat is a float that marshals the way Python's json module writes a
// float (1.0, not 1).
type pyFloat float64

func (f pyFloat) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return []byte(pyFloatString(float64(f))), nil
}

// rfc822 formats t as flask_restful's fields.DateTime (rfc822) does:
// email.utils.formatdate of the UTC time, "Tue, 16 Jan 2024 12:20:29 -0000".
func rfc822(t time.Time) string {
	return t.UTC().Format("Mon, 02 Jan 2006 15:04:05") + " -0000"
}

// pySpacing rewrites compact JSON from encoding/json in the style of
// Python's json.dumps defaults: ", " and ": " separators outside strings
// and non-ASCII characters escaped as \uXXXX.
func pySpacing(in []byte) []byte {
	var b strings.Builder
	b.Grow(len(in) + len(in)/8)
	inString := false
	for i := 0; i < len(in); {
		c := in[i]
		if inString {
			switch {
			case c == '\\':
				b.WriteByte(c)
				if i+1 < len(in) {
					b.WriteByte(in[i+1])
				}
				i += 2
				continue
			case c == '"':
				inString = false
				b.WriteByte(c)
			case c >= utf8.RuneSelf:
				r, size := utf8.DecodeRune(in[i:])
				pyEscape(&b, string(r))
				i += size
				continue
			default:
				b.WriteByte(c)
			}
			i++
			continue
		}
		b.WriteByte(c)
		switch c {
		case '"':
			inString = true
		case ',', ':':
			b.WriteByte(' ')
		}
		i++
	}
	return []byte(b.String())
}
