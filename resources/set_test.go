package resources

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSet(t *testing.T) {
	assert.Equal(t, Set{"a", "b", "c"}, SetOf("c", "a", "b", "a"))
	assert.Nil(t, SetOf())
	ab, bc := SetOf("a", "b"), SetOf("b", "c")
	assert.Equal(t, Set{"a", "b", "c"}, ab.Add(bc))
	assert.Equal(t, Set{"a"}, ab.Subtract(bc))
	assert.Equal(t, Set(nil), ab.Subtract(ab))
	assert.Equal(t, ab, ab.Subtract(SetOf("x")))
	assert.True(t, ab.Contains(SetOf("a")))
	assert.True(t, ab.Contains(nil))
	assert.False(t, ab.Contains(bc))
	assert.True(t, ab.Has("b"))
	assert.False(t, ab.Has("c"))
	assert.True(t, ab.IsNormalized())
	assert.False(t, Set{"b", "a"}.IsNormalized())
	assert.False(t, Set{"a", "a"}.IsNormalized())
	assert.Equal(t, "{a,b}", ab.String())
	assert.Equal(t, Set{"a", "b"}, ab, "inputs untouched")
	assert.Equal(t, Set{"b", "c"}, bc, "inputs untouched")
}
