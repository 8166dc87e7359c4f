package resources_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/resources"
)

func TestApplyCheckpointed(t *testing.T) {
	static := resources.MustParse("cpus:4;mem:1024;disk:1000;disk(eng):500")
	dyn := resources.Reservation{Type: resources.Dynamic, Role: "db", Principal: "p"}
	reserved := resources.MustParse("cpus:1;disk:200").PushReservation(dyn)
	volume := resources.MustParse("disk:100").PushReservation(dyn)
	volume[0].Disk = &resources.DiskInfo{
		Persistence: &resources.Persistence{ID: "v1"},
		Volume:      &resources.Volume{ContainerPath: "data", Mode: resources.RW},
	}
	// A volume on statically reserved disk, and a refinement of it.
	staticVolume := resources.MustParse("disk(eng):50")
	staticVolume[0].Disk = &resources.DiskInfo{Persistence: &resources.Persistence{ID: "v2"}, Volume: &resources.Volume{ContainerPath: "x", Mode: resources.RW}}
	refined := resources.MustParse("disk(eng):10").PushReservation(resources.Reservation{Type: resources.Dynamic, Role: "eng/ml"})
	ckpt := reserved.Add(volume).Add(staticVolume).Add(refined)
	assert.True(t, ckpt.Equal(ckpt.Checkpointed()), "all of them need checkpointing")
	assert.Empty(t, static.Checkpointed())

	total, err := static.ApplyCheckpointed(ckpt)
	require.NoError(t, err)
	want := resources.MustParse("cpus:3;mem:1024;disk:700;disk(eng):440").Add(ckpt)
	assert.True(t, want.Equal(total), "got %s, want %s", total, want)
	assert.True(t, static.Equal(total.UnapplyCheckpointed()), "unapply gives the static resources back")
	assert.True(t, ckpt.Equal(total.Checkpointed()))

	assert.Equal(t, resources.MustParse("disk(eng):50")[0].String(), staticVolume[0].StripCheckpointed().String())

	_, err = static.ApplyCheckpointed(resources.MustParse("cpus:5").PushReservation(dyn))
	require.ErrorIs(t, err, resources.ErrInsufficient)
	_, err = static.ApplyCheckpointed(resources.MustParse("cpus(eng):1"))
	require.ErrorIs(t, err, resources.ErrInvalid, "a static reservation is not checkpointed")
}
