package query

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadClientsRefuses(t *testing.T) {
	secret := strings.Repeat("s", 32)
	tests := []struct{ name, file, want string }{
		{"bad id", "clients: [{id: 'no spaces', secrets: ['" + secret + "'], rate: 1, burst: 1}]", "id must be"},
		{"duplicate id", "clients: [{id: a, secrets: ['" + secret + "'], rate: 1, burst: 1}, {id: a, secrets: ['" + secret + "'], rate: 1, burst: 1}]", "twice"},
		{"short secret", "clients: [{id: a, secrets: ['short'], rate: 1, burst: 1}]", "secret 1 must be"},
		{"no secret", "clients: [{id: a, secrets: [], rate: 1, burst: 1}]", "secrets"},
		{"zero rate", "clients: [{id: a, secrets: ['" + secret + "'], rate: 0, burst: 1}]", "rate must be"},
		{"unknown key", "clients: []\nanonymus: {enabled: true}", "unknown field"},
		{"anonymous without rate", "anonymous: {enabled: true}", "anonymous"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "clients.yaml")
			if err := os.WriteFile(f, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadClients(f)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Fatal("the error echoes a secret")
			}
		})
	}
}
