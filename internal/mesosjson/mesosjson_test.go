package mesosjson

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
)

// marshal is v's JSON.
func marshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func TestNumbersAsRapidJSON(t *testing.T) {
	for in, want := range map[float64]string{1: "1.0", 0: "0.0", 0.25: "0.25", -3: "-3.0", 1e21: "1e+21", 1e-7: "1e-07", 1700000000.5: "1700000000.5"} {
		assert.Equal(t, want, marshal(t, Double(in)), "%v", in)
	}
}

func TestResources(t *testing.T) {
	rs := resources.MustParse("cpus:2;cpus(dev):1;mem:64;ports:[1-2,4-5];ports(dev):[10-10]")
	rs = rs.AddResource(resources.Resource{Name: "cpus", Type: resources.TypeScalar, Scalar: resources.ScalarOf(0.5), Revocable: true})
	rs = rs.AddResource(resources.NewSet("zones", "a", "b"))
	assert.Equal(t, `{"cpus":3.0,"gpus":0.0,"mem":64.0,"disk":0.0,"cpus_revocable":0.5,"ports":"[1-2, 4-5, 10-10]","zones":"{a, b}"}`,
		marshal(t, ResourcesOf(rs)), "Mesos's seeded scalars first, then the others by name")
}

// Mesos's json(Resources) (src/common/http.cpp) of a message's resources:
// scalars summed (cpus, gpus, mem, disk always present), ranges merged
// and printed with ", ", sets as "{a, b}", revocable ones under
// <name>_revocable.
func TestResourcesOfProto(t *testing.T) {
	scalar := func(name string, v float64) mesospb.Resource {
		return mesospb.Resource{Name: name, Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: v}}
	}
	ranges := func(name string, rs ...[2]uint64) mesospb.Resource {
		r := mesospb.Resource{Name: name, Type: mesospb.Value_RANGES, Ranges: &mesospb.Value_Ranges{}}
		for _, x := range rs {
			r.Ranges.Range = append(r.Ranges.Range, mesospb.Value_Range{Begin: x[0], End: x[1]})
		}
		return r
	}
	revocable := scalar("cpus", 1)
	revocable.Revocable = &mesospb.Resource_RevocableInfo{}
	got := marshal(t, ResourcesOfProto([]mesospb.Resource{
		scalar("cpus", 1.5), scalar("cpus", 0.25), scalar("mem", 64), revocable,
		ranges("ports", [2]uint64{31005, 31009}), ranges("ports", [2]uint64{31000, 31004}, [2]uint64{32000, 32000}),
		{Name: "zones", Type: mesospb.Value_SET, Set: &mesospb.Value_Set{Item: []string{"a", "b"}}},
		{Name: "zones", Type: mesospb.Value_SET, Set: &mesospb.Value_Set{Item: []string{"b", "c"}}},
	}))
	assert.Equal(t, `{"cpus":1.75,"gpus":0.0,"mem":64.0,"disk":0.0,"cpus_revocable":1.0,"ports":"[31000-31009, 32000-32000]","zones":"{a, b, c}"}`, got)
	assert.Equal(t, `{"cpus":0.0,"gpus":0.0,"mem":0.0,"disk":0.0}`, marshal(t, ResourcesOfProto(nil)))
}

// json(Attributes) writes the attributes in their order, ranges as given.
func TestAttributes(t *testing.T) {
	attrs := []mesospb.Attribute{
		{Name: "rack", Type: mesospb.Value_TEXT, Text: &mesospb.Value_Text{Value: "r1"}},
		{Name: "level", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 3}},
		{Name: "slots", Type: mesospb.Value_RANGES, Ranges: &mesospb.Value_Ranges{Range: []mesospb.Value_Range{{Begin: 8, End: 9}, {Begin: 1, End: 4}}}},
		{Name: "zones", Type: mesospb.Value_SET, Set: &mesospb.Value_Set{Item: []string{"b", "a"}}},
	}
	assert.Equal(t, `{"rack":"r1","level":3.0,"slots":"[8-9, 1-4]","zones":"{b, a}"}`, marshal(t, Attributes(attrs)))
	assert.Equal(t, `{}`, marshal(t, Attributes(nil)))
}

func TestTask(t *testing.T) {
	ts := 12.5
	task := &mesospb.Task{
		Name: "t", TaskID: mesospb.TaskID{Value: "t1"}, FrameworkID: mesospb.FrameworkID{Value: "f"},
		AgentID: mesospb.AgentID{Value: "a"}, State: mesospb.TASK_RUNNING.Enum(),
		Resources: resources.MustParse("cpus:1;mem:32").Allocate("dev").ToProto(),
		Statuses: []mesospb.TaskStatus{{State: mesospb.TASK_RUNNING.Enum(), Timestamp: &ts, ContainerStatus: &mesospb.ContainerStatus{
			NetworkInfos: []mesospb.NetworkInfo{{IPAddresses: []mesospb.NetworkInfo_IPAddress{{IPAddress: ptr("10.0.0.3")}}}},
		}}},
		Labels: &mesospb.Labels{Labels: []mesospb.Label{{Key: "k", Value: ptr("v")}}},
	}
	assert.Equal(t, `{"id":"t1","name":"t","framework_id":"f","executor_id":"","slave_id":"a","state":"TASK_RUNNING",`+
		`"resources":{"cpus":1.0,"gpus":0.0,"mem":32.0,"disk":0.0},"role":"dev",`+
		`"statuses":[{"state":"TASK_RUNNING","timestamp":12.5,"container_status":{"network_infos":[{"ip_addresses":[{"ip_address":"10.0.0.3"}]}]}}],`+
		`"labels":[{"key":"k","value":"v"}]}`, marshal(t, TaskOf(task, "other")))

	task.Resources = resources.MustParse("cpus:1").ToProto()
	assert.Equal(t, "other", TaskOf(task, "other").Role, "without an allocation role, the one given")
}

func TestCommand(t *testing.T) {
	assert.Equal(t, `{"argv":[],"uris":[]}`, marshal(t, CommandOf(nil)), "an unset command as the empty message")
	c := &mesospb.CommandInfo{Shell: ptr(false), Value: ptr("x"), Arguments: []string{"x", "-v"}, URIs: []mesospb.CommandInfo_URI{{Value: "http://u"}}}
	assert.Equal(t, `{"shell":false,"value":"x","argv":["x","-v"],"uris":[{"value":"http://u","executable":false}]}`, marshal(t, CommandOf(c)))
}

func TestObjectKeepsOrder(t *testing.T) {
	o := Object{{"b", 1}}
	o.Set("a", Double(2))
	o.Set("c", Object(nil))
	assert.Equal(t, `{"b":1,"a":2.0,"c":{}}`, marshal(t, o))
}

func TestServe(t *testing.T) {
	doc := func() (any, error) { return map[string]int{"a": 1}, nil }
	serve := func(method, target string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		Serve(rec, httptest.NewRequest(method, target, nil), doc)
		return rec
	}
	rec := serve(http.MethodGet, "/x")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	assert.Equal(t, `{"a":1}`, rec.Body.String())

	// JSONP, as libprocess's OK(json, jsonp) writes it.
	rec = serve(http.MethodGet, "/x?jsonp=angular.callbacks._0")
	assert.Equal(t, "text/javascript", rec.Header().Get("Content-Type"))
	assert.Equal(t, `angular.callbacks._0({"a":1})`, rec.Body.String())
	for _, bad := range []string{"alert(1)//", "", "a..b", "a."} {
		assert.Equal(t, http.StatusBadRequest, serve(http.MethodGet, "/x?jsonp="+bad).Code, "only a function name is echoed: %q", bad)
	}

	rec = serve(http.MethodHead, "/x")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	assert.Empty(t, rec.Body.String())
	rec = serve(http.MethodPost, "/x")
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	assert.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))
}

func TestVersion(t *testing.T) {
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(marshal(t, VersionOf("1.11.0"))), &v))
	assert.Equal(t, "1.11.0", v["version"])
	assert.Equal(t, ApronVersion, v["apron_version"])
	assert.IsType(t, "", v["build_date"])
	assert.IsType(t, float64(0), v["build_time"])
	assert.IsType(t, "", v["build_user"])
	assert.Equal(t, marshal(t, BuildOf("1.11.0")), marshal(t, BuildOf("1.11.0").Fields()), "the same fields in the same order")
}

func ptr[T any](v T) *T { return &v }
