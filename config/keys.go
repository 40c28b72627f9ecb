package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	promconfig "github.com/prometheus/common/config"
)

// maxKeyFileSize bounds what APIKey reads: a Dify key is some 30 bytes.
const maxKeyFileSize = 4096

// APIKey returns the app's API key, read from api_key_file or from the
// environment variable named by api_key_env. A leading UTF-8 byte order mark,
// surrounding whitespace and trailing NULs (what editors and `echo` leave) are
// dropped; any other control or non-ASCII character is refused, as no key
// holds one and it would only get every call a 401. Errors name the file or
// variable, never the key or the file's content.
func (a App) APIKey() (string, error) {
	switch {
	case a.APIKeyFile != "" && a.APIKeyEnv != "":
		return "", fmt.Errorf("app %q: both api_key_file and api_key_env are set", a.Name)
	case a.APIKeyFile != "":
		return readKeyFile(a.APIKeyFile)
	case a.APIKeyEnv != "":
		k, ok := os.LookupEnv(a.APIKeyEnv)
		if !ok {
			return "", fmt.Errorf("environment variable %s (api_key_env) is not set", a.APIKeyEnv)
		}
		return cleanKey(k, "environment variable "+a.APIKeyEnv+" (api_key_env)")
	}
	return "", fmt.Errorf("app %q: no API key source: set api_key_file or api_key_env", a.Name)
}

func readKeyFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("api_key_file: %w", pathError(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return "", fmt.Errorf("api_key_file %s: %w", path, pathError(err))
	}
	if len(b) > maxKeyFileSize {
		return "", fmt.Errorf("api_key_file %s is larger than %d bytes: want the key alone", path, maxKeyFileSize)
	}
	return cleanKey(string(b), "api_key_file "+path)
}

// cleanKey trims what surrounds a key and refuses what no key holds; src
// names where it came from.
func cleanKey(k, src string) (string, error) {
	k = strings.TrimPrefix(k, "\ufeff")
	k = strings.TrimLeftFunc(k, unicode.IsSpace)
	k = strings.TrimRightFunc(k, func(r rune) bool { return unicode.IsSpace(r) || r == 0 })
	if k == "" {
		return "", fmt.Errorf("%s is empty", src)
	}
	if strings.ContainsFunc(k, unicode.IsSpace) {
		return "", fmt.Errorf("%s holds more than one word or line: want the key alone", src)
	}
	for i, r := range k {
		if r > 0x20 && r < 0x7f {
			continue
		}
		what := fmt.Sprintf("a non-ASCII character (U+%04X)", r)
		switch {
		case r == utf8.RuneError:
			what = "a byte that is not UTF-8"
		case unicode.IsControl(r) || r == 0xfeff:
			what = fmt.Sprintf("a control character (U+%04X)", r)
		}
		return "", fmt.Errorf("%s holds %s at byte %d: want the key alone, in plain text", src, what, i)
	}
	return k, nil
}

// pathError keeps an *os.PathError's operation, path and cause, and drops
// anything else an error could carry.
func pathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s %s: %v", pe.Op, pe.Path, pe.Err)
	}
	return err
}

// CheckKeys reads every app's key and reports the first failure, naming the
// app and the file or environment variable (never the key).
func (c *Config) CheckKeys() error {
	for _, a := range c.Apps {
		if _, err := a.APIKey(); err != nil {
			return fmt.Errorf("app %q: %s", a.Name, redact(err.Error()))
		}
	}
	return nil
}

// Check does what start-up does with a loaded config beyond Parse, so that
// --config.check and start-up refuse the same files: it reads every app's
// key (as CheckKeys), builds the app's HTTP client from its
// http_client_config (its CA, certificate and key files must load), and
// reads its run_ids_file. The first failure is returned, naming the app and
// the file (and line), never a key.
func (c *Config) Check() error {
	if err := c.CheckKeys(); err != nil {
		return err
	}
	for _, a := range c.Apps {
		hc, err := promconfig.NewClientFromConfig(a.HTTPClientConfig, "dify_exporter_"+a.Name)
		if err != nil {
			return fmt.Errorf("app %q: http_client_config: %s", a.Name, redact(oneLine(err.Error())))
		}
		hc.CloseIdleConnections()
		if a.RunIDsFile != "" {
			if _, err := ReadRunIDs(a.RunIDsFile); err != nil {
				return fmt.Errorf("app %q: run_ids_file: %s", a.Name, redact(err.Error()))
			}
		}
	}
	return nil
}
