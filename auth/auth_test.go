package auth_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/auth/authtest"
)

func TestLocalConformance(t *testing.T) {
	authtest.Run(t, func(t *testing.T, acls *auth.ACLs) auth.Authorizer { return auth.NewLocal(acls) })
}

func TestParseACLsRefuses(t *testing.T) {
	for name, doc := range map[string]string{
		"not JSON":               `{`,
		"misspelled kind":        `{"register_framework": []}`,
		"unknown field":          `{"run_tasks": [{"principals": {"type": "ANY"}, "roles": {"type": "ANY"}}]}`,
		"missing object":         `{"run_tasks": [{"principals": {"type": "ANY"}}]}`,
		"missing principals":     `{"run_tasks": [{"users": {"type": "ANY"}}]}`,
		"bad entity type":        `{"run_tasks": [{"principals": {"type": "ALL"}, "users": {"type": "ANY"}}]}`,
		"unknown entity field":   `{"run_tasks": [{"principals": {"value": ["a"]}, "users": {"type": "ANY"}}]}`,
		"SOME agents":            `{"register_agents": [{"principals": {"type": "ANY"}, "agents": {"values": ["x"]}}]}`,
		"unauthorizable path":    `{"get_endpoints": [{"principals": {"type": "ANY"}, "paths": {"values": ["/state"]}}]}`,
		"permissive not boolean": `{"permissive": "no"}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := auth.ParseACLs([]byte(doc))
			assert.Error(t, err)
		})
	}
}

func TestReadACLsFileAndInline(t *testing.T) {
	doc := `{"permissive": false, "run_tasks": [{"principals": {"values": ["a"]}, "users": {"type": "ANY"}}]}`
	path := filepath.Join(t.TempDir(), "acls.json")
	require.NoError(t, os.WriteFile(path, []byte(doc), 0o600))
	for _, flag := range []string{path, "file://" + path, doc} {
		acls, err := auth.ReadACLs(flag)
		require.NoError(t, err, flag)
		assert.False(t, acls.Permissive)
		assert.Len(t, acls.Rules["run_tasks"], 1)
	}
}

func TestParseCredentials(t *testing.T) {
	want := []auth.Credential{{Principal: "a", Secret: "s1"}, {Principal: "b", Secret: "s 2"}}
	got, err := auth.ParseCredentials([]byte(`{"credentials": [{"principal": "a", "secret": "s1"}, {"principal": "b", "secret": "s 2"}]}`))
	require.NoError(t, err)
	assert.Equal(t, want, got)

	got, err = auth.ParseCredentials([]byte("# comment\na s1\n\n  c\ts3  \n"))
	require.NoError(t, err)
	assert.Equal(t, []auth.Credential{{Principal: "a", Secret: "s1"}, {Principal: "c", Secret: "s3"}}, got)

	for name, doc := range map[string]string{
		"empty":           "  \n",
		"duplicate":       "a x\na y\n",
		"three fields":    "a b c\n",
		"no principal":    `{"credentials": [{"secret": "s"}]}`,
		"unknown field":   `{"credentials": [{"principal": "a", "secrets": "s"}]}`,
		"broken JSON":     `{"credentials": [`,
		"no credentials":  `{"credentials": []}`,
		"one field lines": "a\n",
	} {
		_, err := auth.ParseCredentials([]byte(doc))
		assert.Error(t, err, name)
	}
}

func TestReadCredential(t *testing.T) {
	dir := t.TempDir()
	for name, doc := range map[string]string{
		"json":      `{"principal": "agent", "secret": "pw"}`,
		"line":      "agent pw\n",
		"list of 1": `{"credentials": [{"principal": "agent", "secret": "pw"}]}`,
	} {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(doc), 0o600))
		c, err := auth.ReadCredential(path)
		require.NoError(t, err, name)
		assert.Equal(t, auth.Credential{Principal: "agent", Secret: "pw"}, c, name)
	}
	path := filepath.Join(dir, "two")
	require.NoError(t, os.WriteFile(path, []byte("a x\nb y\n"), 0o600))
	_, err := auth.ReadCredential(path)
	assert.Error(t, err)
}

func TestCredentialHidesSecret(t *testing.T) {
	c := auth.Credential{Principal: "a", Secret: "hunter2"}
	for _, s := range []string{c.String(), (&c).GoString()} {
		assert.NotContains(t, s, "hunter2")
	}
}

func TestBasicAuthenticate(t *testing.T) {
	h := auth.Authenticate(auth.NewBasic([]auth.Credential{{Principal: "ops", Secret: "pw"}}), auth.RealmMasterReadWrite,
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := auth.PrincipalFrom(r.Context())
			assert.True(t, ok)
			_, _ = w.Write([]byte(p))
		}))
	for _, c := range []struct {
		name       string
		user, pass string
		basic      bool
		code       int
	}{
		{name: "none", code: http.StatusUnauthorized},
		{name: "wrong secret", basic: true, user: "ops", pass: "nope", code: http.StatusUnauthorized},
		{name: "unknown principal", basic: true, user: "who", pass: "pw", code: http.StatusUnauthorized},
		{name: "empty secret", basic: true, user: "ops", code: http.StatusUnauthorized},
		{name: "right", basic: true, user: "ops", pass: "pw", code: http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if c.basic {
				r.SetBasicAuth(c.user, c.pass)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			require.Equal(t, c.code, w.Code)
			if c.code == http.StatusUnauthorized {
				assert.Equal(t, `Basic realm="mesos-master-readwrite"`, w.Header().Get("WWW-Authenticate"))
				assert.Equal(t, "401 Unauthorized\n", w.Body.String(), "a refusal says nothing about what was wrong")
			} else {
				assert.Equal(t, "ops", w.Body.String())
			}
		})
	}
}

func TestNilAuthenticatorLetsThrough(t *testing.T) {
	called := false
	h := auth.Authenticate(nil, "r", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, ok := auth.PrincipalFrom(r.Context())
		assert.False(t, ok)
		called = true
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	assert.True(t, called)
}

func TestUnknownActionIsRefused(t *testing.T) {
	ok, err := auth.Authorized(t.Context(), auth.NewLocal(nil), auth.Subject{Principal: "a"}, auth.ActionUnknown, nil)
	require.NoError(t, err)
	assert.False(t, ok)
	for _, a := range auth.Actions() {
		assert.NotContains(t, a.String(), "Action(", "every action has Mesos's name")
	}
}

func TestApprovers(t *testing.T) {
	var none auth.Approvers
	assert.NoError(t, none.Check(auth.RunTask, nil, "run"), "no authorizer allows everything")

	acls, err := auth.ParseACLs([]byte(`{"permissive": false, "run_tasks": [{"principals": {"values": ["a"]}, "users": {"type": "ANY"}}]}`))
	require.NoError(t, err)
	ap, err := auth.GetApprovers(t.Context(), auth.NewLocal(acls), auth.Subject{Principal: "a"}, auth.RunTask)
	require.NoError(t, err)
	assert.True(t, ap.Allows(auth.RunTask, nil))
	err = ap.Check(auth.TeardownFramework, nil, "tear down f")
	assert.ErrorIs(t, err, auth.ErrForbidden, "an approver not asked for refuses")
	assert.Contains(t, err.Error(), "Not authorized to tear down f (TEARDOWN_FRAMEWORK)")
}
