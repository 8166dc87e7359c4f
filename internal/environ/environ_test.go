package environ_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/environ"
)

func ptr[T any](v T) *T { return &v }

func TestMerge(t *testing.T) {
	env, err := environ.Merge([]string{"A=1", "B=2", "A=3"}, []string{"C=4"}, &mesospb.Environment{
		Variables: []mesospb.Environment_Variable{{Name: "A", Value: ptr("x")}, {Name: "D", Value: ptr("y=z")}},
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"A=x", "B=2", "A=3", "C=4", "D=y=z"}, env, "the first A replaced in place")

	for _, bad := range []mesospb.Environment_Variable{
		{Name: "A=B", Value: ptr("x")},
		{Name: "", Value: ptr("x")},
		{Name: "S", Type: mesospb.Environment_Variable_SECRET.Enum()},
	} {
		_, err := environ.Merge(nil, nil, &mesospb.Environment{Variables: []mesospb.Environment_Variable{bad}})
		assert.Error(t, err, bad.Name)
	}
}
