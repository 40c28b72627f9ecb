package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxKeyFileSize bounds what APIKey reads: a Dify key is some 30 bytes.
const maxKeyFileSize = 4096

// APIKey returns the app's API key, read from api_key_file (surrounding
// whitespace and newlines trimmed) or from the environment variable named by
// api_key_env. Errors name the file or variable, never the key or the file's
// content.
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
		k = strings.TrimSpace(k)
		if k == "" {
			return "", fmt.Errorf("environment variable %s (api_key_env) is empty", a.APIKeyEnv)
		}
		if strings.ContainsAny(k, " \t\r\n") {
			return "", fmt.Errorf("environment variable %s (api_key_env) holds more than one word: want the key alone", a.APIKeyEnv)
		}
		return k, nil
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
	k := strings.TrimSpace(string(b))
	if k == "" {
		return "", fmt.Errorf("api_key_file %s is empty", path)
	}
	if strings.ContainsAny(k, " \t\r\n") {
		return "", fmt.Errorf("api_key_file %s holds more than one word or line: want the key alone", path)
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
