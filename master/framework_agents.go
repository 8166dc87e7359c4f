package master

import "slices"

// frameworkAgents returns, sorted, the IDs of the agents that hold
// anything of fw: its executors, or its tasks (live, or terminal with an
// update not yet acknowledged). A SUBSCRIBE of fw sends each of them
// UPDATE_FRAMEWORK: as Mesos's agent (Slave::updateFramework), an agent
// that gets it resends the framework's pending status updates at once
// instead of at the end of its retry backoff. Mesos's master
// (Master::sendFrameworkUpdates) broadcasts to every registered agent;
// only these can hold updates for fw, and command tasks have no executor
// in the master, so fw.executors alone would miss their agents.
func (c *core) frameworkAgents(fw *framework) []string {
	seen := make(map[string]bool, len(fw.executors))
	var ids []string
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for id, m := range fw.executors {
		if len(m) > 0 {
			add(id)
		}
	}
	for _, t := range fw.tasks {
		add(t.agent)
	}
	slices.Sort(ids)
	return ids
}
