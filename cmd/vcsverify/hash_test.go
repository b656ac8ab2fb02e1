package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// hashFixtures builds testdata/repos once for the hash command tests.
var hashFixtures = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "vcsverify-hash-")
	if err != nil {
		return "", err
	}
	cmd := exec.Command("sh", "../../testdata/repos/build.sh", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", &exec.ExitError{Stderr: out}
	}
	return dir, nil
})

func hashFixture(t *testing.T, name string) string {
	t.Helper()
	dir, err := hashFixtures()
	if err != nil {
		t.Fatalf("building fixtures: %v", err)
	}
	return filepath.Join(dir, name)
}

// runHash runs vcsverify in this process with a fresh cache.
func runHash(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("VCSVERIFY_CACHE", t.TempDir())
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func gitRev(t *testing.T, dir, rev string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", dir, "rev-parse", rev).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func TestHashJSON(t *testing.T) {
	basic := hashFixture(t, "basic")
	code, out, errOut := runHash(t, "hash", "--json", basic, "v1.0.0")
	if code != exitOK {
		t.Fatalf("vcsverify hash --json = exit %d, stderr %q", code, errOut)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output %q is not JSON: %v", out, err)
	}
	want := map[string]string{
		"key":        "file://" + basic + "@v1.0.0",
		"repo":       "file://" + basic,
		"tag":        "v1.0.0",
		"commit":     gitRev(t, basic, "v1.0.0^{commit}"),
		"tag_object": gitRev(t, basic, "v1.0.0"),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("hash --json %s = %q, want %q", k, got[k], v)
		}
	}
	if !strings.HasPrefix(got["tree"], "t1:") || len(got["tree"]) != 47 {
		t.Errorf("hash --json tree = %q, want t1:<base64 sha256>", got["tree"])
	}
	for _, k := range []string{"h1", "gomod_h1"} {
		if _, ok := got[k]; ok {
			t.Errorf("hash --json of a non-Go repository has %s", k)
		}
	}
	if errOut != "" {
		t.Errorf("stderr = %q, want nothing when it is not a terminal", errOut)
	}

	// A relative path gives the same key.
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	os.Chdir(filepath.Dir(basic))
	_, out2, _ := runHash(t, "hash", "--json", "./basic", "v1.0.0")
	var got2 map[string]string
	json.Unmarshal([]byte(out2), &got2)
	if got2["key"] != got["key"] || got2["tree"] != got["tree"] {
		t.Errorf("hash ./basic = %v, want the key and tree of %v", got2, got)
	}
}

func TestHashGoModule(t *testing.T) {
	gomod := hashFixture(t, "gomod")
	code, out, errOut := runHash(t, "hash", "--json", "--subdir", "sub", gomod, "sub/v0.1.0")
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var got hashOutput
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Module != "example.com/fixture/sub" || got.Version != "v0.1.0" ||
		!strings.HasPrefix(got.H1, "h1:") || !strings.HasPrefix(got.GoModH1, "h1:") || got.TagObject != "" {
		t.Errorf("hash --subdir sub = %+v, want h1 hashes of example.com/fixture/sub@v0.1.0", got)
	}

	code, out, _ = runHash(t, "hash", gomod, "release-1")
	if code != exitOK || !strings.Contains(out, "h1      none: tag release-1 is not a canonical semantic version") {
		t.Errorf("hash of a non-semver tag = exit %d, output %q, want a note instead of h1", code, out)
	}
	code, out, _ = runHash(t, "hash", gomod, "v1.0.0")
	if code != exitOK || !strings.Contains(out, "(example.com/fixture@v1.0.0)") || !strings.Contains(out, "go.mod  h1:") {
		t.Errorf("hash of a module = exit %d, output %q", code, out)
	}
}

func TestHashErrors(t *testing.T) {
	basic := hashFixture(t, "basic")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // in stderr
	}{
		{"unknown tag", []string{"hash", basic, "v9.9.9"}, nil, "tag not found"},
		{"unknown repo", []string{"hash", basic + "-missing", "v1.0.0"}, nil, "repository not found"},
		{"tag not a commit", []string{"hash", basic, "treetag"}, nil, "does not point to a commit"},
		{"invalid tag", []string{"hash", basic, "a..b"}, nil, "invalid"},
		{"missing argument", []string{"hash", basic}, nil, "accepts 2 arg(s)"},
		{"token without hosts", []string{"hash", basic, "v1.0.0"}, map[string]string{"VCSVERIFY_HTTP_TOKEN": "s3cret"}, "VCSVERIFY_HTTP_HOSTS"},
		{"timeout", []string{"hash", "--timeout", "1ns", basic, "v1.0.0"}, nil, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, out, errOut := runHash(t, tt.args...)
			if code != exitOther {
				t.Errorf("vcsverify %v = exit %d, want %d", tt.args, code, exitOther)
			}
			if out != "" {
				t.Errorf("stdout = %q, want nothing", out)
			}
			if !strings.HasPrefix(errOut, "vcsverify: ") || !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr = %q, want vcsverify: ...%s...", errOut, tt.want)
			}
			if strings.Contains(errOut, "s3cret") {
				t.Errorf("stderr %q shows the token", errOut)
			}
		})
	}
}

func TestHTTPAuthFromEnv(t *testing.T) {
	t.Setenv("VCSVERIFY_HTTP_TOKEN", "tok")
	t.Setenv("VCSVERIFY_HTTP_HOSTS", "GitHub.com, git.example.org")
	t.Setenv("VCSVERIFY_HTTP_USER", "")
	tests := []struct {
		host string
		ok   bool
	}{{"github.com", true}, {"git.example.org", true}, {"evil.example.com", false}, {"github.com.evil", false}}
	for _, tt := range tests {
		user, pass, ok := httpAuthFromEnv(tt.host)
		if ok != tt.ok || (ok && (user != "x-access-token" || pass != "tok")) {
			t.Errorf("httpAuthFromEnv(%q) = %q, %q, %v; want ok %v", tt.host, user, pass, ok, tt.ok)
		}
	}
	t.Setenv("VCSVERIFY_HTTP_USER", "me")
	if user, _, _ := httpAuthFromEnv("github.com"); user != "me" {
		t.Errorf("httpAuthFromEnv user = %q, want me", user)
	}
}

func TestHashHelpAndVersion(t *testing.T) {
	code, out, _ := runHash(t, "hash", "--help")
	if code != exitOK || !strings.Contains(out, "Examples:") || !strings.Contains(out, "--subdir") {
		t.Errorf("hash --help = exit %d, %q", code, out)
	}
	code, out, _ = runHash(t, "--version")
	if code != exitOK || !strings.Contains(out, version) {
		t.Errorf("--version = exit %d, %q", code, out)
	}
}
