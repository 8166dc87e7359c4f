package codec

import (
	"reflect"
	"testing"

	"github.com/gogo/protobuf/proto"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/agentpb"
	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
)

// TestEveryMessageHasAPlan walks every message reachable from the APIs'
// top-level messages and checks the JSON codec understands each field, so no
// message fails only when a client first sends it.
func TestEveryMessageHasAPlan(t *testing.T) {
	roots := []proto.Message{
		&schedulerpb.Call{}, &schedulerpb.Event{}, &schedulerpb.Response{},
		&executorpb.Call{}, &executorpb.Event{},
		&masterpb.Call{}, &masterpb.Response{}, &masterpb.Event{},
		&agentpb.Call{}, &agentpb.Response{}, &agentpb.ProcessIO{},
		&internalpb.Call{}, &internalpb.Event{},
		&mesospb.Task{}, &mesospb.ResourceUsage{}, &mesospb.Operation{},
	}
	seen := map[reflect.Type]bool{}
	var walk func(typ reflect.Type)
	walk = func(typ reflect.Type) {
		if seen[typ] {
			return
		}
		seen[typ] = true
		p, err := planOf(typ)
		require.NoError(t, err)
		for _, f := range p.fields {
			walkField(&f, walk)
		}
	}
	for _, r := range roots {
		walk(reflect.TypeOf(r).Elem())
	}
	require.Greater(t, len(seen), 300, "the walk reached the messages")
}

func walkField(f *field, walk func(reflect.Type)) {
	switch f.kind {
	case kindMessage:
		walk(f.elem)
	case kindMap:
		walkField(f.val, walk)
	}
}
