package resources

import (
	"errors"
	"testing"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sp(s string) *string { return &s }

func scalarProto(name string, v float64) mesospb.Resource {
	return mesospb.Resource{Name: name, Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: v}}
}

func resType(t mesospb.Resource_ReservationInfo_Type) *mesospb.Resource_ReservationInfo_Type {
	return &t
}

func TestFromProtoReservationFormats(t *testing.T) {
	labels := &mesospb.Labels{Labels: []mesospb.Label{{Key: "k", Value: sp("v")}}}
	withRole := func(p mesospb.Resource, role string, res *mesospb.Resource_ReservationInfo) mesospb.Resource {
		p.Role, p.Reservation = sp(role), res
		return p
	}
	withStack := func(p mesospb.Resource, stack ...mesospb.Resource_ReservationInfo) mesospb.Resource {
		p.Reservations = stack
		return p
	}
	staticInfo := func(role string) mesospb.Resource_ReservationInfo {
		return mesospb.Resource_ReservationInfo{Type: resType(mesospb.Resource_ReservationInfo_STATIC), Role: sp(role)}
	}
	dynInfo := func(role string) mesospb.Resource_ReservationInfo {
		return mesospb.Resource_ReservationInfo{Type: resType(mesospb.Resource_ReservationInfo_DYNAMIC), Role: sp(role),
			Principal: sp("p"), Labels: labels}
	}
	wantDyn := Reservation{Type: Dynamic, Role: "eng", Principal: "p", Labels: []Label{{"k", "v"}}}
	cpus := scalarProto("cpus", 1)

	for _, tc := range []struct {
		name string
		in   mesospb.Resource
		want []Reservation
	}{
		{"unset role", cpus, nil},
		{"role *", withRole(cpus, "*", nil), nil},
		{"pre static", withRole(cpus, "eng", nil), []Reservation{static("eng")}},
		{"pre dynamic", withRole(cpus, "eng", &mesospb.Resource_ReservationInfo{Principal: sp("p"), Labels: labels}),
			[]Reservation{wantDyn}},
		{"post static", withStack(cpus, staticInfo("eng")), []Reservation{static("eng")}},
		{"post dynamic", withStack(cpus, dynInfo("eng")), []Reservation{wantDyn}},
		{"post refined", withStack(cpus, staticInfo("eng"), mesospb.Resource_ReservationInfo{
			Type: resType(mesospb.Resource_ReservationInfo_DYNAMIC), Role: sp("eng/web")}),
			[]Reservation{static("eng"), {Type: Dynamic, Role: "eng/web"}}},
		{"endpoint static", withRole(withStack(cpus, staticInfo("eng")), "eng", nil), []Reservation{static("eng")}},
		{"endpoint dynamic", withRole(withStack(cpus, dynInfo("eng")), "eng",
			&mesospb.Resource_ReservationInfo{Principal: sp("p"), Labels: labels}), []Reservation{wantDyn}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromProto([]mesospb.Resource{tc.in})
			require.NoError(t, err)
			require.Len(t, got, 1)
			assert.Equal(t, tc.want, got[0].Reservations)
		})
	}

	for _, tc := range []struct {
		name string
		in   mesospb.Resource
		msg  string
	}{
		{"pre bad role", withRole(cpus, "a b", nil), "invalid role"},
		{"pre dynamic *", withRole(cpus, "*", &mesospb.Resource_ReservationInfo{}), `role "*" cannot be dynamically reserved`},
		{"pre dynamic with type", withRole(cpus, "eng", &mesospb.Resource_ReservationInfo{
			Type: resType(mesospb.Resource_ReservationInfo_DYNAMIC)}), "must not set type or role"},
		{"post no type", withStack(cpus, mesospb.Resource_ReservationInfo{Role: sp("eng")}), "has no type"},
		{"post no role", withStack(cpus, mesospb.Resource_ReservationInfo{
			Type: resType(mesospb.Resource_ReservationInfo_STATIC)}), "has no role"},
		{"post unknown type", withStack(cpus, mesospb.Resource_ReservationInfo{
			Type: resType(mesospb.Resource_ReservationInfo_UNKNOWN), Role: sp("eng")}), "unsupported type UNKNOWN"},
		{"post *", withStack(cpus, staticInfo("*")), `role "*" cannot be reserved`},
		{"post not nested", withStack(cpus, staticInfo("eng"), dynInfo("ops")), `"ops" does not refine "eng"`},
		{"post static refinement", withStack(cpus, staticInfo("eng"), staticInfo("eng/a")), "must be DYNAMIC"},
		{"mixed role mismatch", withRole(withStack(cpus, staticInfo("eng")), "ops", nil), "does not match"},
		{"mixed static with reservation", withRole(withStack(cpus, staticInfo("eng")), "eng",
			&mesospb.Resource_ReservationInfo{}), "must not be set for a STATIC"},
		{"mixed dynamic half", withRole(withStack(cpus, dynInfo("eng")), "eng", nil), "both set or both unset"},
		{"mixed principal", withRole(withStack(cpus, dynInfo("eng")), "eng",
			&mesospb.Resource_ReservationInfo{Principal: sp("q"), Labels: labels}), "principal"},
		{"mixed labels", withRole(withStack(cpus, dynInfo("eng")), "eng",
			&mesospb.Resource_ReservationInfo{Principal: sp("p")}), "labels"},
		{"mixed refined", withRole(withStack(cpus, staticInfo("eng"), dynInfo("eng/a")), "eng/a", nil),
			"must not be set with refined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromProto([]mesospb.Resource{tc.in})
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrInvalid), "%v", err)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}

func TestFromProtoValues(t *testing.T) {
	got, err := FromProto([]mesospb.Resource{
		scalarProto("cpus", 0.1),
		scalarProto("cpus", 0.2),
		scalarProto("mem", 0),
		{Name: "ports", Type: mesospb.Value_RANGES, Ranges: &mesospb.Value_Ranges{Range: []mesospb.Value_Range{{Begin: 5, End: 6}, {Begin: 1, End: 4}}}},
		{Name: "zones", Type: mesospb.Value_SET, Set: &mesospb.Value_Set{Item: []string{"b", "a"}}},
	})
	require.NoError(t, err)
	assert.Equal(t, "cpus:0.3;ports:[1-6];zones:{a,b}", got.String())

	nan := scalarProto("cpus", 0)
	nan.Scalar.Value = nan.Scalar.Value / nan.Scalar.Value
	for _, tc := range []struct {
		in  mesospb.Resource
		msg string
	}{
		{scalarProto("", 1), "empty name"},
		{scalarProto("cpus", -0.5), "negative scalar"},
		{nan, "NaN"},
		{scalarProto("cpus", 1e300), "larger than"},
		{mesospb.Resource{Name: "x", Type: mesospb.Value_TEXT}, "unsupported type TEXT"},
		{mesospb.Resource{Name: "x", Type: 9}, "unsupported type"},
		{mesospb.Resource{Name: "x", Type: mesospb.Value_RANGES}, "must have ranges"},
		{mesospb.Resource{Name: "x", Type: mesospb.Value_RANGES, Ranges: &mesospb.Value_Ranges{
			Range: []mesospb.Value_Range{{Begin: 3, End: 1}}}}, "inverted range"},
		{mesospb.Resource{Name: "x", Type: mesospb.Value_RANGES, Ranges: &mesospb.Value_Ranges{
			Range: []mesospb.Value_Range{{Begin: 5, End: 10}, {Begin: 1, End: 5}}}}, "overlapping ranges"},
		{mesospb.Resource{Name: "x", Type: mesospb.Value_SET}, "must have a set"},
		{mesospb.Resource{Name: "x", Type: mesospb.Value_SET, Set: &mesospb.Value_Set{Item: []string{"a", "a"}}}, "duplicate"},
		{mesospb.Resource{Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 1},
			Disk: &mesospb.Resource_DiskInfo{}}, "not \"disk\""},
		{mesospb.Resource{Name: "disk", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 1},
			Disk: &mesospb.Resource_DiskInfo{Source: &mesospb.Resource_DiskInfo_Source{}}}, "unknown disk source type"},
		{mesospb.Resource{Name: "disk", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 1},
			Disk: &mesospb.Resource_DiskInfo{Volume: &mesospb.Volume{Mode: mesospb.Volume_Mode(-1).Enum()}}}, "unknown volume mode"},
		{mesospb.Resource{Name: "disk", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 1},
			Shared: &mesospb.Resource_SharedInfo{}}, "only persistent volumes"},
	} {
		_, err := FromProto([]mesospb.Resource{tc.in})
		require.Error(t, err, "%v", tc.in.String())
		assert.True(t, errors.Is(err, ErrInvalid), "%v", err)
		assert.Contains(t, err.Error(), tc.msg)
	}
	_, err = FromProto([]mesospb.Resource{scalarProto("x", 1), {Name: "x", Type: mesospb.Value_SET, Set: &mesospb.Value_Set{}}})
	assert.NoError(t, err, "an empty set is dropped, so there is no type clash")
	_, err = FromProto([]mesospb.Resource{scalarProto("x", 1), {Name: "x", Type: mesospb.Value_SET, Set: &mesospb.Value_Set{Item: []string{"a"}}}})
	assert.ErrorContains(t, err, "used as both")

	r, err := ResourceFromProto(&mesospb.Resource{Name: "mem", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 0}})
	require.NoError(t, err)
	assert.True(t, r.IsEmpty())
	_, err = ResourceFromProto(&mesospb.Resource{Name: "mem"})
	assert.ErrorIs(t, err, ErrInvalid)
}

func TestToProto(t *testing.T) {
	full := New(
		NewScalar("cpus", 0.1),
		NewRanges("ports", Range{1, 2}, Range{10, 20}),
		NewSet("zones", "a", "b"),
		reserved(NewScalar("cpus", 2), static("eng")),
		reserved(NewScalar("cpus", 3), Reservation{Type: Dynamic, Role: "eng", Principal: "p", Labels: []Label{{"k", "v"}, {"e", ""}}}),
		reserved(NewScalar("cpus", 4), static("eng"), dynamic("eng/web")),
		Resource{Name: "mem", Scalar: 100, Revocable: true, AllocationRole: "eng", ProviderID: "rp1"},
		volume("v", 10, true),
		volume("v", 10, true),
		Resource{Name: "disk", Scalar: 5000, Disk: &DiskInfo{Source: &DiskSource{
			Type: SourceRaw, Vendor: "csi", ID: "vol-1", Profile: "fast", Metadata: []Label{{"m", "1"}}}}},
		Resource{Name: "disk", Scalar: 5000, Disk: &DiskInfo{Source: &DiskSource{Type: SourcePath, Root: "/p"},
			Volume: &Volume{ContainerPath: "x", HostPath: "/h", Mode: RO}}},
		mountDisk("/m", 100),
	)
	require.NoError(t, full.Validate())

	ps := full.ToProto()
	require.Len(t, ps, len(full))
	assert.Equal(t, 0.1, ps[0].Scalar.Value)
	assert.Nil(t, ps[0].Role, "post-refinement leaves the old fields unset")
	assert.Empty(t, ps[0].Reservations)
	assert.Equal(t, "eng/web", ps[5].Reservations[1].GetRole())

	back, err := FromProto(ps)
	require.NoError(t, err)
	assert.True(t, full.Equal(back), "%v\n%v", full, back)
	assert.Equal(t, full, back, "nothing is lost, volumes included")

	// Through the wire: protobuf bytes and JSON.
	for i := range ps {
		b, err := ps[i].Marshal()
		require.NoError(t, err)
		var p mesospb.Resource
		require.NoError(t, p.Unmarshal(b))
		j, err := codec.MarshalJSON(&ps[i])
		require.NoError(t, err)
		var q mesospb.Resource
		require.NoError(t, codec.UnmarshalJSON(j, &q))
		for _, x := range []mesospb.Resource{p, q} {
			r, err := ResourceFromProto(&x)
			require.NoError(t, err)
			assert.Equal(t, full[i], r)
		}
	}

	pre, err := full.ToProtoFormat(PreRefinement)
	require.Error(t, err, "the refined reservation cannot be written")
	assert.ErrorIs(t, err, ErrInvalid)
	assert.Nil(t, pre)

	notRefined := full.Filter(func(r Resource) bool { return !r.HasRefinedReservations() })
	pre, err = notRefined.ToProtoFormat(PreRefinement)
	require.NoError(t, err)
	assert.Equal(t, "*", pre[0].GetRole())
	assert.NotNil(t, pre[0].Role, "unreserved is written as role \"*\"")
	assert.Equal(t, "eng", pre[3].GetRole())
	assert.Nil(t, pre[3].Reservation)
	assert.Equal(t, "eng", pre[4].GetRole())
	assert.Equal(t, "p", pre[4].Reservation.GetPrincipal())
	assert.Nil(t, pre[4].Reservation.Role)
	for _, p := range pre {
		assert.Empty(t, p.Reservations)
	}
	back, err = FromProto(pre)
	require.NoError(t, err)
	assert.True(t, notRefined.Equal(back))

	endpoint, err := full.ToProtoFormat(Endpoint)
	require.NoError(t, err)
	assert.Equal(t, "eng", endpoint[4].GetRole())
	assert.Len(t, endpoint[4].Reservations, 1)
	assert.Nil(t, endpoint[5].Role, "refined: only the stack")
	back, err = FromProto(endpoint)
	require.NoError(t, err)
	assert.True(t, full.Equal(back))

	none, err := Resources(nil).ToProtoFormat(Endpoint)
	require.NoError(t, err)
	assert.Nil(t, none)
	assert.Equal(t, "cpus", NewScalar("cpus", 1).ToProto().Name)

	// The messages do not share memory with the Resources.
	ps[2].Set.Item[0] = "changed"
	assert.Equal(t, Set{"a", "b"}, full[2].Set)
}
