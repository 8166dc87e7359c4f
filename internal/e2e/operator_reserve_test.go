package e2e_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/resources"
)

// byOperator returns rs reserved to role by the operator "ops", labelled.
func byOperator(text, role string) resources.Resources {
	return resources.MustParse(text).PushReservation(resources.Reservation{
		Type: resources.Dynamic, Role: role, Principal: "ops", Labels: []resources.Label{{Key: "owner", Value: "dba"}},
	})
}

// TestOperatorReservation: the operator reserves cpus and mem for role db
// over the operator API; a framework of role db is offered them, with the
// operator's principal and labels, a framework of another role never is,
// and UNRESERVE_RESOURCES returns them to everyone.
func TestOperatorReservation(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		const agentRes = "cpus:2;mem:1024;disk:1000"
		c := startCluster(t, tr, 1, agentRes, master.Config{})
		op := c.operatorClient(t, tr)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		other := c.subscribe(roleInfo("other", "other", "other"))
		w := &watcher{}
		go w.run(ctx, other, resources.MustParse(agentRes))
		agentID := mesospb.AgentID{Value: c.agents[0].ID()}

		// other is likely holding the whole agent: the offer is rescinded.
		reserved := byOperator("cpus:1;mem:256", "db")
		resp, err := op(&masterpb.Call{Type: masterpb.Call_RESERVE_RESOURCES.Enum(),
			ReserveResources: &masterpb.Call_ReserveResources{AgentID: agentID, Resources: reserved.ToProto()}})
		require.NoError(t, err)
		require.Nil(t, resp)

		db := c.subscribe(roleInfo("db", "db", "db-principal"))
		o := db.takeOffer(ctx, func(rs resources.Resources) bool { return rs.Reserved().Unallocated().Contains(reserved) })
		for _, r := range o.Resources {
			if len(r.Reservations) > 0 {
				assert.Equal(t, "ops", r.Reservations[0].GetPrincipal())
				assert.Equal(t, "dba", r.Reservations[0].Labels.Labels[0].GetValue())
			}
		}

		// db holds its offer and wants no more; UNRESERVE rescinds the
		// offer, and other gets the whole agent.
		require.NoError(t, db.driver.SuppressOffers(ctx))
		db.declineAll(ctx)
		w.reset() // the reservation holds: other cannot be offered the whole agent until the UNRESERVE
		resp, err = op(&masterpb.Call{Type: masterpb.Call_UNRESERVE_RESOURCES.Enum(),
			UnreserveResources: &masterpb.Call_UnreserveResources{AgentID: agentID, Resources: reserved.ToProto()}})
		require.NoError(t, err)
		require.Nil(t, resp)
		select {
		case id := <-db.rec.rescinded:
			assert.Equal(t, o.ID, id)
		case <-time.After(wait):
			t.Fatal("db's offer was not rescinded")
		}
		w.check(t)
	})
}

// TestOperatorVolumes: the operator reserves disk and creates a persistent
// volume on it over the operator API; a task of role db writes in it; the
// operator destroys it, and its directory goes.
func TestOperatorVolumes(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		c := startCluster(t, tr, 1, "cpus:2;mem:1024;disk:1000", master.Config{})
		op := c.operatorClient(t, tr)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		agentID := mesospb.AgentID{Value: c.agents[0].ID()}
		apply := func(call *masterpb.Call) {
			t.Helper()
			resp, err := op(call)
			require.NoError(t, err)
			require.Nil(t, resp)
		}

		disk := byOperator("disk:100", "db")
		apply(&masterpb.Call{Type: masterpb.Call_RESERVE_RESOURCES.Enum(),
			ReserveResources: &masterpb.Call_ReserveResources{AgentID: agentID, Resources: disk.ToProto()}})
		volume := byOperator("disk:100", "db")
		volume[0].Disk = &resources.DiskInfo{
			Persistence: &resources.Persistence{ID: "vol1", Principal: "ops"},
			Volume:      &resources.Volume{ContainerPath: "data", Mode: resources.RW},
		}
		apply(&masterpb.Call{Type: masterpb.Call_CREATE_VOLUMES.Enum(),
			CreateVolumes: &masterpb.Call_CreateVolumes{AgentID: agentID, Volumes: volume.ToProto()}})
		dir := filepath.Join(c.agentWorkDir(0), "volumes", "roles", "db", "vol1")
		require.Eventually(t, func() bool { _, err := os.Stat(dir); return err == nil }, wait, 10*time.Millisecond, "the agent makes the volume")

		// A task of db writes in the volume.
		db := c.subscribe(roleInfo("db", "db", "db-principal"))
		hasVolume := func(rs resources.Resources) bool { return rs.Unallocated().Contains(volume) }
		o := db.takeOffer(ctx, hasVolume)
		task := shellTask("write", o, "echo hi > data/f", 0.1, 32)
		uses, err := resources.FromProto(task.Resources)
		require.NoError(t, err)
		task.Resources = uses.Add(volume).ToProto()
		require.NoError(t, db.driver.LaunchTasks(ctx, []mesospb.OfferID{o.ID}, []mesospb.TaskInfo{task}, &mesospb.Filters{RefuseSeconds: ptr(0.0)}))
		db.waitState("write", mesospb.TASK_FINISHED)
		b, err := os.ReadFile(filepath.Join(dir, "f"))
		require.NoError(t, err)
		assert.Equal(t, "hi\n", string(b))

		// The volume is offered to db again; DESTROY_VOLUMES takes it from
		// the offer, and the agent removes it.
		db.takeOffer(ctx, hasVolume)
		require.NoError(t, db.driver.SuppressOffers(ctx))
		db.declineAll(ctx)
		apply(&masterpb.Call{Type: masterpb.Call_DESTROY_VOLUMES.Enum(),
			DestroyVolumes: &masterpb.Call_DestroyVolumes{AgentID: agentID, Volumes: volume.ToProto()}})
		require.Eventually(t, func() bool { _, err := os.Stat(dir); return os.IsNotExist(err) }, wait, 10*time.Millisecond, "the destroyed volume's directory is removed")
		apply(&masterpb.Call{Type: masterpb.Call_UNRESERVE_RESOURCES.Enum(),
			UnreserveResources: &masterpb.Call_UnreserveResources{AgentID: agentID, Resources: disk.ToProto()}})
		resp, err := op(&masterpb.Call{Type: masterpb.Call_GET_AGENTS.Enum()})
		require.NoError(t, err)
		total, err := resources.FromProto(resp.GetAgents.Agents[0].TotalResources)
		require.NoError(t, err)
		assert.Empty(t, total.Reserved(), "total %s", total)
		assert.True(t, total.Contains(resources.MustParse("cpus:2;mem:1024;disk:1000")), "total %s", total)
	})
}
