package config

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dify-exporter/dify_exporter/client"
)

// maxRunIDsFileSize bounds what ReadRunIDs reads (some 400k IDs).
const maxRunIDsFileSize = 16 << 20

// ReadRunIDs reads a run IDs file: one ID per line, '#' starts a comment
// (whole-line or trailing), blank lines are skipped. Every ID is validated
// with client.ParseRunID and lower-cased; duplicates are dropped, the first
// occurrence keeps its place. An error names the file and line and the
// refused value, shortened.
func ReadRunIDs(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("run IDs file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRunIDsFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("run IDs file %s: %w", path, err)
	}
	if len(data) > maxRunIDsFileSize {
		return nil, fmt.Errorf("run IDs file %s is larger than %d MiB", path, maxRunIDsFileSize>>20)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	var ids []string
	seen := map[string]bool{}
	for n := 1; len(data) > 0; n++ {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		if i := bytes.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		s := strings.TrimSpace(string(line))
		if s == "" {
			continue
		}
		id, err := client.ParseRunID(s)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s", path, n, redact(err.Error()))
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}
