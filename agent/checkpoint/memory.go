package checkpoint

import (
	"sort"
	"sync"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// Memory is a Store that keeps everything in memory: an agent under test
// or in a simulation checkpoints into it, and a restarted one recovers
// from the same Memory. Everything it keeps is a copy, as a store on disk
// keeps an encoding: the caller may change what it passed in or got back.
// Its zero value is an empty store; it is safe for concurrent use.
type Memory struct {
	mu         sync.Mutex
	agentID    string
	resources  []byte // internal Event.CheckpointResources, encoded; nil: none
	frameworks map[string][]byte
	tasks      map[taskKey]*memTask
}

type taskKey struct{ framework, task string }

// memTask is a task's entry: its task, if put, and its stream.
type memTask struct {
	task    *Task
	updates [][]byte // encoded Call.StatusUpdate
	acked   [][]byte
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{} }

// AgentID implements Store.
func (m *Memory) AgentID() (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.agentID, nil
}

// SetAgentID implements Store.
func (m *Memory) SetAgentID(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.agentID = id
	return nil
}

// Resources implements Store.
func (m *Memory) Resources() ([]mesospb.Resource, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.resources == nil {
		return nil, nil
	}
	var c internalpb.Event_CheckpointResources
	if err := c.Unmarshal(m.resources); err != nil {
		return nil, err
	}
	return c.Resources, nil
}

// SetResources implements Store.
func (m *Memory) SetResources(rs []mesospb.Resource) error {
	b, err := (&internalpb.Event_CheckpointResources{Resources: rs}).Marshal()
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.resources = append([]byte{}, b...)
	return nil
}

// PutFramework implements Store.
func (m *Memory) PutFramework(info *mesospb.FrameworkInfo) error {
	b, err := info.Marshal()
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.frameworks == nil {
		m.frameworks = map[string][]byte{}
	}
	m.frameworks[info.GetID().GetValue()] = b
	return nil
}

// RemoveFramework implements Store.
func (m *Memory) RemoveFramework(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.frameworks, id)
	return nil
}

// PutTask implements Store.
func (m *Memory) PutTask(t *Task) error {
	c, err := cloneTask(t)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entry(t.FrameworkID, t.Info.TaskID.Value).task = c
	return nil
}

// AppendUpdate implements Store.
func (m *Memory) AppendUpdate(framework, task string, u *internalpb.Call_StatusUpdate) error {
	b, err := u.Marshal()
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entry(framework, task)
	e.updates = append(e.updates, b)
	return nil
}

// AppendAck implements Store.
func (m *Memory) AppendAck(framework, task string, uuid []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entry(framework, task)
	e.acked = append(e.acked, append([]byte{}, uuid...))
	return nil
}

// RemoveTask implements Store.
func (m *Memory) RemoveTask(framework, task string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.tasks, taskKey{framework, task})
	return nil
}

// entry returns a task's entry, made if need be. m.mu is held.
func (m *Memory) entry(framework, task string) *memTask {
	if m.tasks == nil {
		m.tasks = map[taskKey]*memTask{}
	}
	k := taskKey{framework, task}
	e := m.tasks[k]
	if e == nil {
		e = &memTask{}
		m.tasks[k] = e
	}
	return e
}

// Load implements Store. Nothing in memory is damaged, so warn is not
// called.
func (m *Memory) Load(warn func(msg string, args ...any)) (*State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := &State{}
	for _, b := range m.frameworks {
		var info mesospb.FrameworkInfo
		if err := info.Unmarshal(b); err != nil {
			return nil, err
		}
		st.Frameworks = append(st.Frameworks, info)
	}
	for k, e := range m.tasks {
		if e.task != nil {
			c, err := cloneTask(e.task)
			if err != nil {
				return nil, err
			}
			st.Tasks = append(st.Tasks, *c)
		}
		if len(e.updates) == 0 {
			continue
		}
		s := Stream{FrameworkID: k.framework, TaskID: k.task}
		for _, b := range e.updates {
			u := &internalpb.Call_StatusUpdate{}
			if err := u.Unmarshal(b); err != nil {
				return nil, err
			}
			s.Updates = append(s.Updates, u)
		}
		for _, a := range e.acked {
			s.Acked = append(s.Acked, append([]byte{}, a...))
		}
		st.Streams = append(st.Streams, s)
	}
	Sort(st)
	return st, nil
}

// Wipe implements Store.
func (m *Memory) Wipe() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.agentID, m.resources, m.frameworks, m.tasks = "", nil, nil, nil
	return nil
}

// Close implements Store; a Memory holds nothing open.
func (m *Memory) Close() error { return nil }

// cloneTask copies a task through its encoding, as a store on disk would.
func cloneTask(t *Task) (*Task, error) {
	c := *t
	c.Group = append([]string(nil), t.Group...)
	b, err := t.Info.Marshal()
	if err != nil {
		return nil, err
	}
	c.Info = mesospb.TaskInfo{}
	if err := c.Info.Unmarshal(b); err != nil {
		return nil, err
	}
	if b, err = t.Executor.Marshal(); err != nil {
		return nil, err
	}
	c.Executor = mesospb.ExecutorInfo{}
	if err := c.Executor.Unmarshal(b); err != nil {
		return nil, err
	}
	return &c, nil
}

// Sort puts a State's lists in the order Load returns them in: by
// framework ID, then task ID. Stores use it.
func Sort(st *State) {
	sort.SliceStable(st.Frameworks, func(i, j int) bool {
		return st.Frameworks[i].GetID().GetValue() < st.Frameworks[j].GetID().GetValue()
	})
	sort.SliceStable(st.Tasks, func(i, j int) bool {
		a, b := st.Tasks[i], st.Tasks[j]
		if a.FrameworkID != b.FrameworkID {
			return a.FrameworkID < b.FrameworkID
		}
		return a.Info.TaskID.Value < b.Info.TaskID.Value
	})
	sort.SliceStable(st.Streams, func(i, j int) bool {
		a, b := st.Streams[i], st.Streams[j]
		if a.FrameworkID != b.FrameworkID {
			return a.FrameworkID < b.FrameworkID
		}
		return a.TaskID < b.TaskID
	})
}
