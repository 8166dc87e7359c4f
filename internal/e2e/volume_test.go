package e2e_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/resources"
)

func roleInfo(name, role, principal string) mesospb.FrameworkInfo {
	fi := info(name)
	fi.Role = ptr(role)
	fi.Principal = ptr(principal)
	return fi
}

// offerRes is an offer's resources.
func offerRes(t *testing.T, o mesospb.Offer) resources.Resources {
	t.Helper()
	rs, err := resources.FromProto(o.Resources)
	require.NoError(t, err)
	return rs
}

// takeOffer waits for an offer that satisfies want, declining the others
// with no filter so that they come back.
func (f *framework) takeOffer(ctx context.Context, want func(resources.Resources) bool) mesospb.Offer {
	f.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case offers := <-f.rec.offers:
			var found *mesospb.Offer
			for i := range offers {
				if found == nil && want(offerRes(f.t, offers[i])) {
					found = &offers[i]
					continue
				}
				_ = f.driver.DeclineOffer(ctx, []mesospb.OfferID{offers[i].ID}, &mesospb.Filters{RefuseSeconds: ptr(0.0)})
			}
			if found != nil {
				return *found
			}
		case <-deadline:
			f.t.Fatal("no offer as wanted")
		}
	}
}

// watcher declines every offer a framework gets, after checking it.
type watcher struct {
	mu       sync.Mutex
	reserved []string // offers holding reserved resources
	sawAll   bool     // an offer held the whole agent, unreserved
}

func (w *watcher) run(ctx context.Context, f *framework, all resources.Resources) {
	for {
		select {
		case <-ctx.Done():
			return
		case offers := <-f.rec.offers:
			for _, o := range offers {
				rs, err := resources.FromProto(o.Resources)
				w.mu.Lock()
				if err == nil && !rs.Reserved().Empty() {
					w.reserved = append(w.reserved, rs.String())
				}
				if err == nil && rs.Unallocated().Contains(all) {
					w.sawAll = true
				}
				w.mu.Unlock()
				_ = f.driver.DeclineOffer(ctx, []mesospb.OfferID{o.ID}, &mesospb.Filters{RefuseSeconds: ptr(0.2)})
			}
		}
	}
}

// reset forgets the whole-agent offers seen so far: those came before a
// reservation, and the check is that the agent comes back whole after it.
func (w *watcher) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sawAll = false
}

// check waits until the framework watched was offered the whole agent,
// unreserved, since the last reset, and checks it was never offered
// reserved resources.
func (w *watcher) check(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.sawAll
	}, wait, 10*time.Millisecond, "the other role is offered the whole agent, unreserved")
	w.mu.Lock()
	defer w.mu.Unlock()
	assert.Empty(t, w.reserved, "offers to another role held reserved resources")
}

// declineAll declines, for an hour, every offer f gets until ctx ends.
func (f *framework) declineAll(ctx context.Context) {
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case offers := <-f.rec.offers:
				for _, o := range offers {
					_ = f.driver.DeclineOffer(ctx, []mesospb.OfferID{o.ID}, &mesospb.Filters{RefuseSeconds: ptr(3600.0)})
				}
			}
		}
	}()
}

// TestPersistentVolumeSurvivesTasks: a framework of role db reserves
// resources and creates a persistent volume in the ACCEPT that launches a
// task writing in it; the volume is offered back to db after the task,
// and a second task reads what the first wrote; DESTROY and UNRESERVE
// return everything to everyone. A framework of another role, declining
// all along, never sees the reservation.
func TestPersistentVolumeSurvivesTasks(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		const agentRes = "cpus:2;mem:1024;disk:1000"
		c := startCluster(t, tr, 1, agentRes, master.Config{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		other := c.subscribe(roleInfo("other", "other", "other"))
		w := &watcher{}
		go w.run(ctx, other, resources.MustParse(agentRes))
		db := c.subscribe(roleInfo("db", "db", "db-principal"))

		plain := resources.MustParse("cpus:1;mem:128;disk:100")
		reserved := plain.PushReservation(resources.Reservation{Type: resources.Dynamic, Role: "db", Principal: "db-principal"})
		volume := reserved.Named("disk")
		volume[0].Disk = &resources.DiskInfo{
			Persistence: &resources.Persistence{ID: "vol1", Principal: "db-principal"},
			Volume:      &resources.Volume{ContainerPath: "data", Mode: resources.RW},
		}
		uses := reserved.Filter(func(r resources.Resource) bool { return r.Name != "disk" }).Add(volume)
		task := func(id string, o mesospb.Offer, cmd string) mesospb.TaskInfo {
			ti := shellTask(id, o, cmd, 0, 0)
			ti.Resources = uses.ToProto()
			return ti
		}
		op := func(typ mesospb.Offer_Operation_Type) mesospb.Offer_Operation {
			return mesospb.Offer_Operation{Type: typ.Enum()}
		}

		// RESERVE + CREATE + LAUNCH in one ACCEPT.
		o := db.takeOffer(ctx, func(rs resources.Resources) bool { return rs.Unallocated().Contains(plain) })
		reserve, create, launch := op(mesospb.Offer_Operation_RESERVE), op(mesospb.Offer_Operation_CREATE), op(mesospb.Offer_Operation_LAUNCH)
		reserve.Reserve = &mesospb.Offer_Operation_Reserve{Resources: reserved.ToProto()}
		create.Create = &mesospb.Offer_Operation_Create{Volumes: volume.ToProto()}
		launch.Launch = &mesospb.Offer_Operation_Launch{TaskInfos: []mesospb.TaskInfo{task("write", o, "echo world > data/hello")}}
		require.NoError(t, db.driver.AcceptOffers(ctx, []mesospb.OfferID{o.ID}, []mesospb.Offer_Operation{reserve, create, launch}, &mesospb.Filters{RefuseSeconds: ptr(0.0)}))
		db.waitState("write", mesospb.TASK_FINISHED)
		hello := filepath.Join(c.agentWorkDir(0), "volumes", "roles", "db", "vol1", "hello")
		b, err := os.ReadFile(hello)
		require.NoError(t, err)
		assert.Equal(t, "world\n", string(b))

		// The volume comes back to db; a second task reads the data.
		hasVolume := func(rs resources.Resources) bool {
			for _, v := range rs.PersistentVolumes() {
				if v.Disk.Persistence.ID == "vol1" {
					return rs.Unallocated().Contains(reserved.Filter(func(r resources.Resource) bool { return r.Name != "disk" }))
				}
			}
			return false
		}
		o = db.takeOffer(ctx, hasVolume)
		launch.Launch = &mesospb.Offer_Operation_Launch{TaskInfos: []mesospb.TaskInfo{task("read", o, `test "$(cat data/hello)" = world`)}}
		require.NoError(t, db.driver.AcceptOffers(ctx, []mesospb.OfferID{o.ID}, []mesospb.Offer_Operation{launch}, &mesospb.Filters{RefuseSeconds: ptr(0.0)}))
		db.waitState("read", mesospb.TASK_FINISHED)

		// DESTROY + UNRESERVE: the data goes, and everything is anyone's.
		o = db.takeOffer(ctx, hasVolume)
		destroy, unreserve := op(mesospb.Offer_Operation_DESTROY), op(mesospb.Offer_Operation_UNRESERVE)
		destroy.Destroy = &mesospb.Offer_Operation_Destroy{Volumes: volume.ToProto()}
		unreserve.Unreserve = &mesospb.Offer_Operation_Unreserve{Resources: reserved.ToProto()}
		require.NoError(t, db.driver.SuppressOffers(ctx))
		w.reset() // the reservation holds: other cannot be offered the whole agent until the UNRESERVE
		require.NoError(t, db.driver.AcceptOffers(ctx, []mesospb.OfferID{o.ID}, []mesospb.Offer_Operation{destroy, unreserve}, &mesospb.Filters{RefuseSeconds: ptr(3600.0)}))
		db.declineAll(ctx)
		require.Eventually(t, func() bool {
			_, err := os.Stat(filepath.Dir(hello))
			return os.IsNotExist(err)
		}, wait, 10*time.Millisecond, "the destroyed volume's directory is removed")
		w.check(t)
	})
}
