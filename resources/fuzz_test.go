package resources

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// FuzzParse checks that Parse never panics and that whatever it accepts is
// valid, normalized and survives a round trip: through String for the text
// form, through ToProto and JSON for the JSON form (which can say things
// the text form cannot).
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		"cpus:4;mem:4096;disk:10000;ports:[31000-32000,35000-36000];gpus:0;cpus(analytics):2;zones:{a,b}",
		"cpus(*):1;cpus(eng/backend):0.5;mem:1e3",
		"ports:[1-2,3-4,10-5]",
		"zones:{a,,b};zones:{c}",
		"cpus:1;cpus:[1-2]",
		"cpus(eng):-1",
		"name with space (role) : 1 2",
		`[{"name":"cpus","type":"SCALAR","scalar":{"value":4}}]`,
		`[{"name":"disk","type":"SCALAR","scalar":{"value":100},"disk":{"source":{"type":"MOUNT","mount":{"root":"/m"}}}}]`,
		`[{"name":"cpus","type":"SCALAR","scalar":{"value":1},"reservations":[{"type":"STATIC","role":"a"},{"type":"DYNAMIC","role":"a/b"}]}]`,
		`[{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":1,"end":2}]},"role":"eng"}]`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		rs, err := Parse(text)
		if err != nil {
			return
		}
		if err := rs.Validate(); err != nil {
			t.Fatalf("Parse(%q) = %v, which is invalid: %v", text, rs, err)
		}
		for i := range rs {
			if rs[i].IsEmpty() || !rs[i].Ranges.IsNormalized() || !rs[i].Set.IsNormalized() {
				t.Fatalf("Parse(%q) = %v, not normalized", text, rs)
			}
			for j := range i {
				if rs[j].mergeable(&rs[i]) {
					t.Fatalf("Parse(%q) = %v, unmerged entries", text, rs)
				}
			}
		}

		if trimmed := strings.TrimSpace(text); strings.HasPrefix(trimmed, "[") && json.Valid([]byte(trimmed)) {
			checkJSONRoundTrip(t, text, rs)
			return
		}
		again, err := Parse(rs.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %q, which does not parse: %v", text, rs, err)
		}
		if !again.Equal(rs) {
			t.Fatalf("Parse(%q) = %q, but that parses as %q", text, rs, again)
		}
	})
}

func checkJSONRoundTrip(t *testing.T, text string, rs Resources) {
	ps := rs.ToProto()
	parts := make([]string, len(ps))
	for i := range ps {
		b, err := codec.MarshalJSON(&ps[i])
		if err != nil {
			t.Fatalf("Parse(%q): MarshalJSON: %v", text, err)
		}
		parts[i] = string(b)
	}
	again, err := Parse("[" + strings.Join(parts, ",") + "]")
	if err != nil {
		t.Fatalf("Parse(%q) = %v, whose JSON does not parse: %v", text, rs, err)
	}
	if !again.Equal(rs) {
		t.Fatalf("Parse(%q) = %v, but its JSON parses as %v", text, rs, again)
	}
}

// FuzzFromProto checks that FromProto never panics on any decodable
// message, and that what it accepts converts back without loss.
func FuzzFromProto(f *testing.F) {
	for _, r := range []Resources{
		MustParse("cpus:4;mem(eng):4096;ports:[1-2,5-9];zones:{a}"),
		New(volume("v", 10, true), mountDisk("/m", 5), reserved(NewScalar("cpus", 1), static("a"), dynamic("a/b"))),
	} {
		for _, p := range r.ToProto() {
			b, err := p.Marshal()
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p mesospb.Resource
		if err := p.Unmarshal(data); err != nil {
			return
		}
		rs, err := FromProto([]mesospb.Resource{p})
		if err != nil {
			return
		}
		if err := rs.Validate(); err != nil {
			t.Fatalf("FromProto accepted an invalid %v: %v", rs, err)
		}
		back, err := FromProto(rs.ToProto())
		if err != nil || !back.Equal(rs) {
			t.Fatalf("round trip of %v: %v, %v", rs, back, err)
		}
	})
}
