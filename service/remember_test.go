package service

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The state remembers the spec in force, and a core restarted on it takes
// a new spec only where UpdateSpec would: a refused spec changes nothing,
// a valid change rolls out as it does in process.
func TestSpecRememberedAcrossRestarts(t *testing.T) {
	cases := []struct {
		name   string
		change func(*Spec)
		// refused: NewCore fails with ErrSpecChange; invalid: with
		// ErrInvalidSpec only (the spec is wrong in itself).
		refused, invalid bool
		// rolls: the restarted core kills a running pod to relaunch it
		// with the new configuration; adds: it deploys a new pod.
		rolls, adds bool
	}{
		{name: "same spec"},
		{name: "volume size", change: func(s *Spec) { s.Pods[0].Volumes[0].Size = 200 }, refused: true},
		{name: "volume path", change: func(s *Spec) { s.Pods[0].Volumes[0].Path = "other" }, refused: true},
		{name: "volume added", change: func(s *Spec) {
			s.Pods[0].Volumes = append(s.Pods[0].Volumes, VolumeSpec{Path: "logs", Size: 10})
		}, refused: true},
		{name: "volumes removed", change: func(s *Spec) { s.Pods[0].Volumes = nil }, refused: true},
		{name: "service name", change: func(s *Spec) { s.Name = "other" }, refused: true},
		{name: "role", change: func(s *Spec) { s.Role = "other-role" }, refused: true},
		{name: "principal", change: func(s *Spec) { s.Principal = "other" }, refused: true},
		{name: "pod type renamed", change: func(s *Spec) { s.Pods[0].Name = "other" }, refused: true},
		{name: "invalid spec", change: func(s *Spec) { s.Pods[0].CPUs = 0 }, invalid: true},
		{name: "command", change: func(s *Spec) { s.Pods[0].Command += " # v2" }, rolls: true},
		{name: "resources", change: func(s *Spec) { s.Pods[0].Mem = 256 }, rolls: true},
		{name: "env", change: func(s *Spec) { s.Pods[0].Env = map[string]string{"MODE": "v2"} }, rolls: true},
		{name: "scale up", change: func(s *Spec) { s.Pods[0].Count = 4 }, adds: true},
		{name: "placement", change: func(s *Spec) { s.Pods[0].Placement.MaxPerHost = 1 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, testSpec(), 4)
			s.deployAll()
			require.NotNil(t, s.saved.Spec, "the state remembers the spec")
			assert.JSONEq(t, string(jsonOf(testSpec())), string(jsonOf(s.saved.Spec)))

			next := testSpec()
			if tc.change != nil {
				tc.change(next)
			}
			before := jsonOf(s.saved)
			_, err := NewCore(CoreConfig{Spec: next, State: s.saved, NewID: s.newID})
			switch {
			case tc.refused:
				require.ErrorIs(t, err, ErrSpecChange)
				assert.ErrorIs(t, err, ErrInvalidSpec)
				// In process, UpdateSpec refuses the same.
				assert.ErrorIs(t, s.core.UpdateSpec(next), ErrSpecChange)
				assert.Nil(t, s.core.Ready().State, "nothing changed")
				assert.JSONEq(t, string(before), string(jsonOf(s.saved)))
				return
			case tc.invalid:
				require.ErrorIs(t, err, ErrInvalidSpec)
				assert.NotErrorIs(t, err, ErrSpecChange)
				return
			}
			require.NoError(t, err)
			s.spec = next
			s.restart()
			assert.JSONEq(t, string(jsonOf(next)), string(jsonOf(s.saved.Spec)), "the new spec is remembered")
			assert.Equal(t, tc.rolls, len(killed(s.calls)) > 0, "a running pod is rolled: %v", killed(s.calls))
			if tc.rolls {
				// (A kill decided before the subscription is sent again
				// on it.)
				assert.Equal(t, []string{s.podTask("node-0")}, slices.Compact(killed(s.calls)), "one pod at a time")
			}
			if tc.adds {
				launches := launched(s.offer())
				assert.Equal(t, []string{"node-3"}, launches)
			}
		})
	}
}

// A state saved before the spec was remembered takes any valid spec, and
// remembers it from then on.
func TestSpecRememberedFromOldState(t *testing.T) {
	s := newSim(t, testSpec(), 3)
	s.deployAll()
	s.saved.Spec = nil
	next := testSpec()
	next.Pods[0].Volumes[0].Size = 200
	s.spec = next
	s.restart()
	require.NotNil(t, s.saved.Spec)
	assert.Equal(t, 200.0, s.saved.Spec.Pods[0].Volumes[0].Size)
	back := testSpec()
	_, err := NewCore(CoreConfig{Spec: back, State: s.saved, NewID: s.newID})
	assert.ErrorIs(t, err, ErrSpecChange, "and holds to it")
}

// UpdateSpec in process records the new spec in the state it saves, so
// that a restart with the old one is checked against the new.
func TestUpdateSpecRemembered(t *testing.T) {
	s := newSim(t, testSpec(), 3)
	s.deployAll()
	next := testSpec()
	next.Pods[0].Count = 2
	require.NoError(t, s.core.UpdateSpec(next))
	s.drain()
	var got Spec
	require.NoError(t, json.Unmarshal(jsonOf(s.saved.Spec), &got))
	assert.Equal(t, 2, got.Pods[0].Count)
}

// The refusal names what changed, with the deployed and the new values.
func TestSpecChangeMessage(t *testing.T) {
	st := &State{Spec: testSpec()}
	next := testSpec()
	next.Pods[0].Volumes[0].Size = 300
	err := st.CheckSpec(next)
	require.Error(t, err)
	assert.Equal(t, `service: spec change refused: pod type "node": volumes cannot change once deployed, the pods' data is on them (deployed: data of 100 MB; new: data of 300 MB)`, err.Error())
	assert.NoError(t, (&State{}).CheckSpec(next), "nothing deployed: any valid spec")
	assert.NoError(t, (*State)(nil).CheckSpec(next))
}
